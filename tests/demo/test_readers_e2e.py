"""The demo's readers act on the real embedded servers: simulated readers click through a clicks API process, the
worker (one shared encoder pass, the default) builds their profiles, and every reader who clicked gets a feed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from finpulse.contracts.ids import article_id
from finpulse.contracts.records import NewsArticle
from finpulse.contracts.topics import NEWS_RAW, topic_name
from finpulse.demo.readers import READERS, run_readers, sector_match
from finpulse.settings import Settings, child_process_env

from ..conftest import with_overrides
from ..streams.harness import WorkerProcess, free_port, produce, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HEADLINES = [("XOM", "Exxon lifts crude output"), ("CVX", "Chevron refinery restarts"), ("JPM", "JPMorgan loan book grows"),
             ("BAC", "Bank of America credit card losses rise"), ("NVDA", "Nvidia chip demand surges"),
             ("AMD", "AMD software update ships"), ("PFE", "Pfizer drug trial succeeds"), ("BA", "Boeing deliveries slip")]


def _clicks_api(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = child_process_env(settings)
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "finpulse", "clicks-api"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def test_readers_click_through_the_api_and_every_reader_who_clicked_gets_a_feed(
    pipeline_settings: Settings, tmp_path: Path, es_client: Any
) -> None:
    token = "demo-readers-token"
    settings = with_overrides(pipeline_settings, recommend={"model_dir": tmp_path / "none", "api_token": token,
                                                            "api_host": "127.0.0.1", "api_port": free_port(),
                                                            "debounce_s": 0.2})
    assert settings.recommend.shared_encoder
    now = datetime.now(UTC)
    articles = [NewsArticle(id=article_id(f"https://news.example/readers/{i}"), url=f"https://news.example/readers/{i}",
                            source="e2e", title=f"{title} ({i})", published_at=now, tickers=[ticker])
                for i, (ticker, title) in enumerate(HEADLINES * 5)]
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    api = _clicks_api(settings, tmp_path / "clicks-api.log")
    try:
        produce(settings, topic_name(settings.kafka, NEWS_RAW), [(a.id.encode(), a.to_bytes()) for a in articles])
        index = f"{settings.elasticsearch.index_prefix}-news-*"

        def indexed() -> bool:
            es_client.indices.refresh(index=index, ignore_unavailable=True, allow_no_indices=True)
            return int(es_client.count(index=index, ignore_unavailable=True, allow_no_indices=True)["count"]) >= len(articles)

        wait_for(indexed, 120, "the articles indexed", worker)
        feeds, candidates = run_readers(settings, token, seconds=6.0, rate=10.0)
        assert {a.id for a in candidates} == {a.id for a in articles}  # the readers chose among the scored articles
        assert 0 < len(feeds) <= READERS
        assert all(feed.clicks > 0 and feed.items for feed in feeds)
        assert {str(item["article_id"]) for feed in feeds for item in feed.items} <= {a.id for a in articles}
        matched, base = sector_match(feeds, candidates)
        assert 0.0 <= matched <= 1.0 and 0.0 < base < 1.0
        assert worker.alive and api.poll() is None
    finally:
        if api.poll() is None:
            os.killpg(api.pid, signal.SIGTERM)
            api.wait(30)
        worker.stop()
