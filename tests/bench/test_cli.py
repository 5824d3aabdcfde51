"""``finpulse bench ... --json``: one JSON object on stdout, nothing else there."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_bench_rank_json_is_one_object_on_stdout() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_") or k == "FINPULSE_ENV_FILE"}
    done = subprocess.run([sys.executable, "-m", "finpulse", "bench", "rank", "--candidates", "2000", "--repeats", "50",
                           "--json"], env=env, capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(done.stdout)
    assert report["candidates"] == 2000 and report["users"] == 50 and report["top_k"] == 10
    assert 0 < report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]
