"""On the real embedded servers: the worker's tables stay bounded whatever ids arrive.

One worker (every role) gets 10,000 distinct user ids on ``clicks`` and 100,000 distinct cashtags on ``news.raw``
(64 per article, the most an article may carry). Its tables are read back from their changelog topics, which is what
a restarted worker would hold: with idle times longer than the run, each stays under its count cap. The worker is
then restarted with idle times of a few seconds, and every key goes, deleted through the table (a tombstone on the
changelog). Tansu does not compact (infra/stack/QUIRKS.md:
``cleanup.policy`` is accepted but not enforced), so "gone from the changelog after compaction" is checked as what
compaction acts on: a tombstone written for every expired seen id, after its last value. The worker's RSS is sampled
with psutil throughout.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer

from finpulse.contracts.events import ClickEvent
from finpulse.contracts.ids import article_id
from finpulse.contracts.records import NewsArticle
from finpulse.contracts.topics import CLICKS, NEWS_RAW, topic_name
from finpulse.settings import Settings

from ..conftest import StackHandle, with_overrides
from ..faults.support import metric
from .harness import WorkerProcess, free_port, produce, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(2400)]

logger = logging.getLogger(__name__)

USERS = 10_000
CASHTAGS = 100_000
PER_ARTICLE = 64
ARTICLES = math.ceil(CASHTAGS / PER_ARTICLE)
MAX_SPIKE_KEYS = 5_000
MAX_PROFILES = 1_000
MAX_SEEN = 500
LONG_IDLE_S = 3600.0  # phase 1: nothing idles, only the caps bound the tables
SHORT_IDLE_S = 5.0  # phase 2: everything idles
MARKET = b'"market"'  # the table keys are JSON
# What the run may add to the worker's resident memory (peak over the RSS after the warm-up). Measured on a shared
# 2-core host: +54 MiB with the bounds; +167 MiB without them (100,000 spike keys and counted ids, 10,000 profiles).
RSS_GROWTH_LIMIT_MB = 120


def _idle(settings: Settings, idle_s: float) -> Settings:
    return with_overrides(settings, stream={"dedup_ttl_s": idle_s}, spike={"idle_expiry_s": idle_s},
                          recommend={"profile_idle_s": idle_s})


@pytest.fixture
def bounded_settings(stack: StackHandle, unique_name: str, tiny_onnx_dir: Path, tmp_path: Path) -> Settings:
    return with_overrides(
        stack.settings,
        kafka={"topic_prefix": f"{unique_name}.", "consumer_group": unique_name},
        elasticsearch={"index_prefix": unique_name},
        model={"sentiment_dir": tiny_onnx_dir, "sentiment_variant": "fp32", "intra_op_threads": 1},
        stream={"web_port": free_port(), "metrics_port": free_port(), "batch_wait_s": 0.05, "index_wait_s": 0.1,
                "data_dir": tmp_path / "faust", "dedup_ttl_s": LONG_IDLE_S, "dedup_max_ids": MAX_SEEN,
                "sweep_interval_s": 2.0},
        # min_count above any window here: nothing raises (the tiny random model labels at random), and a raised key
        # would rightly stay until it resolves
        spike={"window_s": 60.0, "idle_expiry_s": LONG_IDLE_S, "max_keys": MAX_SPIKE_KEYS, "min_count": 100_000},
        recommend={"debounce_s": 0.2, "model_dir": tmp_path / "no-recommend-model", "shared_encoder": False,
                   "profile_idle_s": LONG_IDLE_S, "max_profiles": MAX_PROFILES},
        alerts={"sinks": ["log"]},
    )


def _tickers(i: int) -> list[str]:
    return [f"T{j:06d}" for j in range(i * PER_ARTICLE, min((i + 1) * PER_ARTICLE, CASHTAGS))]


def _articles(now: datetime) -> list[NewsArticle]:
    out = []
    for i in range(ARTICLES):
        url = f"https://bounds.example/{i}"
        out.append(NewsArticle(id=article_id(url), url=url, source="bounds", title=f"Globex schedules call {i}",
                               published_at=now, tickers=_tickers(i)))
    return out


def _clicks(now: datetime, articles: list[NewsArticle]) -> Iterator[tuple[bytes, bytes]]:
    for u in range(USERS):
        user = f"user-{u:05d}"
        click = ClickEvent(user_id=user, article_id=articles[u % len(articles)].id, event_type="click", timestamp=now,
                           position=0, session_id=f"s-{u}")
        yield user.encode(), click.to_bytes()


def _metric(settings: Settings, name: str, agent: str) -> float:
    try:
        return metric(settings, name, {"agent": agent})
    except httpx.TransportError:  # the worker's metrics port is not up yet
        return 0.0


@dataclass
class Changelog:
    """A table as its changelog topic rebuilds it: the live keys and the keys whose last record is a tombstone."""

    live: set[bytes] = field(default_factory=set)
    tombstoned: set[bytes] = field(default_factory=set)
    records: int = 0


def _changelog(settings: Settings, table: str) -> Changelog:
    """Read ``table``'s changelog to its end (until polls come back empty: Tansu's end offsets run low)."""
    topic = f"{settings.worker_app_id()}-{table}-changelog"
    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka.broker_list(), auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, fetch_max_wait_ms=100,
                             max_partition_fetch_bytes=8 * 2**20)
    out = Changelog()
    empty = 0
    try:
        while empty < 4:
            polled = consumer.poll(timeout_ms=1000, max_records=50_000)
            empty = 0 if polled else empty + 1
            for batch in polled.values():
                for record in batch:
                    out.records += 1
                    if record.value is None:
                        out.live.discard(record.key)
                        out.tombstoned.add(record.key)
                    else:
                        out.live.add(record.key)
                        out.tombstoned.discard(record.key)
    finally:
        consumer.close()
    return out


class RssSampler(threading.Thread):
    """Samples the worker's RSS (psutil) twice a second; ``peak`` in bytes."""

    def __init__(self, worker: WorkerProcess) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.worker, self.stopped = worker, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            self.worker.sample()

    @property
    def peak(self) -> int:
        return self.worker.peak_rss


def test_tables_and_rss_stay_bounded_and_idle_keys_are_deleted_through_the_table(
    bounded_settings: Settings, tmp_path: Path
) -> None:
    settings = bounded_settings
    now = datetime.now(UTC)
    articles = _articles(now)
    assert len({t for a in articles for t in a.tickers}) == CASHTAGS
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    sampler = RssSampler(worker)
    try:
        warm = NewsArticle(id=article_id("https://bounds.example/warm"), url="https://bounds.example/warm",
                           source="bounds", title="warm up", published_at=now, tickers=["WARM"])
        produce(settings, topic_name(settings.kafka, NEWS_RAW), [(warm.id.encode(), warm.to_bytes())])
        wait_for(lambda: _metric(settings, "finpulse_events_out_total", "spikes") >= 2, 300, "the warm-up", worker)
        time.sleep(3)
        baseline = worker.sample()[1]
        sampler.start()
        started = time.monotonic()
        produce(settings, topic_name(settings.kafka, NEWS_RAW), [(a.id.encode(), a.to_bytes()) for a in articles])
        produce(settings, topic_name(settings.kafka, CLICKS), list(_clicks(now, articles)))
        observations = 2 + sum(len(a.tickers) + 1 for a in articles)
        wait_for(lambda: _metric(settings, "finpulse_events_out_total", "spikes") >= observations, 1500,
                 f"{observations} observations counted", worker)
        wait_for(lambda: _metric(settings, "finpulse_events_in_total", "recommend.clicks") >= USERS, 600,
                 f"{USERS} clicks", worker)
        processed_s = time.monotonic() - started
        time.sleep(5)  # the last batches' writes and deletions reach the changelogs
        spike, counted = _changelog(settings, "spike-state"), _changelog(settings, "spike-counted")
        profiles, seen = _changelog(settings, "recommend-profiles"), _changelog(settings, "seen-articles")
        growth_mb = (sampler.peak - baseline) / 2**20
        figures = (f"{CASHTAGS} cashtags, {USERS} users in {processed_s:.0f} s; live keys: spike-state {len(spike.live)}"
                   f" (cap {MAX_SPIKE_KEYS}), spike-counted {len(counted.live)}, recommend-profiles {len(profiles.live)}"
                   f" (cap {MAX_PROFILES}), seen-articles {len(seen.live)} (cap {MAX_SEEN}); RSS baseline "
                   f"{baseline / 2**20:.0f} MiB, peak {sampler.peak / 2**20:.0f} MiB (+{growth_mb:.0f} MiB)")
        logger.info(figures)
        print("\n" + figures)
        assert len(spike.live) <= MAX_SPIKE_KEYS, figures
        assert MARKET in spike.live, "a flood of cashtags does not push the market key out"
        assert len(counted.live) <= MAX_SPIKE_KEYS + len(articles) + 1, figures  # the market key counts every article
        assert len(profiles.live) <= MAX_PROFILES, figures
        assert len(seen.live) <= MAX_SEEN, figures
        assert growth_mb <= RSS_GROWTH_LIMIT_MB, figures

        assert worker.alive
        sampler.stopped.set()
        assert worker.stop() == 0, worker.log_tail()

        # idle keys go, deleted through the table: a tombstone on the changelog after each key's last value
        worker = WorkerProcess(_idle(settings, SHORT_IDLE_S), tmp_path / "worker-2.log").start()

        def all_gone() -> bool:  # the market key stays (never expired)
            return not (_changelog(settings, "spike-state").live - {MARKET} or _changelog(settings, "recommend-profiles").live
                        or _changelog(settings, "seen-articles").live)

        wait_for(all_gone, 300, "every idle key's tombstone", worker)
        seen = _changelog(settings, "seen-articles")
        expired = {json.dumps(a.id).encode() for a in [*articles, warm]}  # the table's keys are JSON
        assert expired <= seen.tombstoned, "every expired seen id has a tombstone after its last value"
        counted = _changelog(settings, "spike-counted")
        assert all(key.startswith(b'"market') for key in counted.live), "the counted ids of deleted keys go with them"
        assert worker.alive
    finally:
        sampler.stopped.set()
        worker.stop()
