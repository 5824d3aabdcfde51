"""The click → recommendation round-trip benchmark: its feed timing, its CPU accounting, and one short run on the
real embedded servers (the benchmark's own worker, clicks produced to Kafka, feeds read back)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from finpulse.bench.roundtrip import CpuPerClick, FeedTimes, RoundTrip, bench_roundtrip, candidate_dim
from finpulse.bench.roundtrip_report import write_report
from finpulse.contracts.events import RecommendationList
from finpulse.export.runtime.card import ModelCard
from finpulse.settings import Settings


def test_feed_times_measure_from_the_accepted_click_and_skip_lists_without_one() -> None:
    received = datetime(2026, 12, 2, 4, 0, 0, tzinfo=UTC)
    triggered = RecommendationList(user_id="u1", items=[], model_version="m", clicks_seen=1, trigger_received_at=received,
                                   generated_at=received + timedelta(milliseconds=120))
    untriggered = RecommendationList(user_id="u2", items=[], model_version="m", clicks_seen=0)
    times = FeedTimes()
    times.add(triggered.to_bytes(), read_at=received.timestamp() + 0.5)
    times.add(untriggered.to_bytes(), read_at=received.timestamp() + 9.0)
    assert times.latencies == pytest.approx([0.5])
    assert times.to_emit == pytest.approx([0.12])


def test_cpu_per_click_divides_each_process_and_the_machine() -> None:
    share = CpuPerClick.between({"worker": 10.0, "broker": 4.0, "gone": 1.0}, {"worker": 14.0, "broker": 5.0},
                                clicks=1000, elapsed_s=5.0, cores=2)
    assert share.per_process_ms == pytest.approx({"worker": 4.0, "broker": 1.0})
    # 5 CPU s in 5 s on 2 cores
    assert share.line().endswith("together 5.00 (= 50% of 2 cores)")


@pytest.mark.integration
@pytest.mark.slow
def test_a_short_run_reads_back_a_feed_for_every_click(stack: Any, tiny_onnx_dir: Path) -> None:
    data = stack.settings.model_dump()
    data["model"].update(sentiment_dir=tiny_onnx_dir, sentiment_variant="fp32")
    settings = Settings.model_validate(data)
    assert candidate_dim(settings) == ModelCard.read(tiny_onnx_dir).data["embedding_dim"]

    run = bench_roundtrip(settings, rate=20.0, duration_s=3.0, candidates=100)

    assert run.roles == ["news", "alerts", "recommend"]
    assert run.sent == 60
    assert run.latency_ms["n"] >= 0.99 * run.sent
    assert run.cpu.per_process_ms["worker"] > 0
    lines = run.lines()
    assert lines[0] == "worker roles: news, alerts, recommend"
    assert re.search(r"60 clicks in .* \d+ feeds back in .* p99 \d+ ms", lines[1]), lines


def test_the_report_keeps_every_run_and_draws_them(tmp_path: Path) -> None:
    cpu = CpuPerClick({"worker": 4.0, "broker": 3.0, "search server": 4.5}, clicks=6000, elapsed_s=35.0, cores=2)
    runs = [
        RoundTrip(roles, rate, int(rate * 30), 30.0, "produced straight to Kafka", 0, int(rate * 10), 2000,
                  {"n": rate * 30, "p50_ms": p99 / 3, "p99_ms": p99, "max_ms": p99 * 1.1},
                  {"n": rate * 30, "p50_ms": p99 / 3.2, "p99_ms": p99 * 0.98, "max_ms": p99}, 35.0, cpu)
        for rate, roles, p99 in [(100.0, ["news", "alerts", "recommend"], 900.0), (200.0, ["recommend"], 12_000.0)]
    ]

    paths = write_report(runs, tmp_path / "out")

    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert [run["label"] for run in data["runs"]] == ["100/s, news+alerts+recommend", "200/s, recommend"]
    assert data["runs"][1]["cpu"]["per_process_ms"]["search server"] == 4.5
    assert data["meta"]["target_p99_ms"] == 1000.0
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
