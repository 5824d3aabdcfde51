"""``finpulse bench sentiment``: every backend measured in one run, figures and chart written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_bench_measures_every_backend_in_one_run(tiny_artifacts: Path, tmp_path: Path) -> None:
    from finpulse.bench.sentiment import BACKENDS, run_bench, write_bench
    from finpulse.export.testing import synthetic_examples
    from finpulse.settings import ModelSettings

    texts = [e.text for e in synthetic_examples(16, seed=2)]
    root = tiny_artifacts / "sentiment"
    report = run_bench(root / "model", root / "onnx", ModelSettings(providers=["cpu"]), texts, repeats=2,
                       batch_sizes=(1, 8), threads=1)
    got = {(r["backend"], r["batch_size"]) for r in report["results"]}
    assert got == {(b, n) for b in BACKENDS for n in (1, 8)}
    for r in report["results"]:
        assert len(r["runs"]) == 2 and r["seq_per_s"] > 0
    assert set(report["ratios"]) == {f"{b}/torch-fp32" for b in BACKENDS[1:]}
    assert report["allow_spinning"] is False and report["denormal_as_zero"] is True
    json_path, png_path = write_bench(report, tmp_path / "bench")
    assert json.loads(json_path.read_text())["texts"] == 16 and png_path.stat().st_size > 0
