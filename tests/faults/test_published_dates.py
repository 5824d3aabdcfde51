"""Publication dates out of any sane range are clamped before they pick a monthly index: feed entries dated
1970-2015 do not open one index per month, and an article dated 2099 does not top the news by date forever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from finpulse.contracts.topics import NEWS_SCORED, topic_name
from finpulse.infra.topics_admin import create_topics

from ..streams.harness import WorkerProcess, produce, wait_for
from .roles import indexed, role_settings, scored

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

YEARS = range(1970, 2016)


def test_old_and_future_dates_are_clamped_before_they_pick_an_index(
    stack: Any, es_client: Any, tmp_path: Path, unique_name: str, tiny_onnx_dir: Path
) -> None:
    # A year's window (the default is 20 years) so that every one of 1970-2015 lies below it.
    settings = role_settings(stack, unique_name, tmp_path, ["news"], tiny_onnx_dir, stream={"published_max_age_days": 365.0})
    now = datetime.now(UTC)
    old = [scored("old", i, datetime(year, 1 + i % 12, 15, tzinfo=UTC)) for i, year in enumerate(YEARS)]
    future = scored("future", 0, datetime(2099, 1, 1, tzinfo=UTC))
    fresh = [scored("fresh", i, now - timedelta(minutes=i)) for i in range(5)]
    articles = [*old, future, *fresh]
    create_topics(settings)  # before anything produces: Tansu would create a missing topic with its own partitions
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        produce(settings, topic_name(settings.kafka, NEWS_SCORED), [(a.id.encode(), a.to_bytes()) for a in articles])
        pattern = f"{unique_name}-news-*"
        wait_for(lambda: indexed(es_client, pattern) >= len(articles), 240, "every article indexed", worker)
        indices = sorted(es_client.indices.get(index=pattern))
        floor = now - timedelta(days=settings.stream.published_max_age_days)
        assert len(indices) <= 3, f"{len(indices)} monthly indices: {indices}"  # the floor's month, now, now + 1 day
        assert f"{unique_name}-news-{floor:%Y.%m}" in indices
        oldest = es_client.search(index=pattern, size=1, sort=[{"published_at": "asc"}])["hits"]["hits"][0]["_source"]
        assert datetime.fromisoformat(oldest["published_at"]) >= floor - timedelta(minutes=10)
        top = es_client.search(index=pattern, size=1, sort=[{"published_at": "desc"}])["hits"]["hits"][0]["_source"]
        ceiling = datetime.now(UTC) + timedelta(seconds=settings.stream.published_max_ahead_s)
        assert datetime.fromisoformat(top["published_at"]) <= ceiling, top["published_at"]
        assert worker.alive
    finally:
        worker.stop()
