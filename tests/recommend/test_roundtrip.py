"""The click → recommendation round-trip benchmark: its feed timing, its CPU accounting, and one short run on the
real embedded servers (the benchmark's own worker, clicks produced to Kafka, feeds read back)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from finpulse.recommend.events import RecommendationList
from finpulse.recommend.roundtrip import CpuPerClick, FeedTimes, bench_roundtrip, candidate_dim
from finpulse.runtime.card import ModelCard
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
def test_a_short_run_reads_back_a_feed_for_every_click(stack: Any, tiny_sentiment_dir: Path) -> None:
    data = stack.settings.model_dump()
    data["model"].update(sentiment_dir=tiny_sentiment_dir, sentiment_variant="fp32")
    settings = Settings.model_validate(data)
    assert candidate_dim(settings) == ModelCard.read(tiny_sentiment_dir).data["embedding_dim"]

    lines = bench_roundtrip(settings, rate=20.0, duration_s=3.0, candidates=100)

    assert lines[0] == "worker roles: news, alerts, recommend"
    found = re.search(r"(\d+) clicks in .* (\d+) feeds back in .* p99 (\d+) ms", lines[1])
    assert found is not None, lines
    sent, back = int(found.group(1)), int(found.group(2))
    assert sent == 60
    assert back >= 0.99 * sent
    cpu = re.search(r"worker (\d+\.\d+)", lines[3])
    assert cpu is not None and float(cpu.group(1)) > 0, lines
