"""The pipeline benchmark's latency run: one worker under open-loop load at a share of the measured throughput,
publish → scored and publish → indexed latency per load level."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from finpulse.bench.config import BenchConfig
from finpulse.bench.exceptions import BenchTimeout
from finpulse.bench.runs import EsCounter, check_alive, prepare, publish, run_settings, start_workers, wait_count
from finpulse.bench.workers import BenchWorker
from finpulse.contracts.records import NewsArticle
from finpulse.settings import Settings

logger = logging.getLogger(__name__)

WARM_ARTICLES = 50


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan}

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]

    return {"p50": q(0.50), "p95": q(0.95), "p99": q(0.99)}


def latency_run(base: Settings, config: BenchConfig, model_dir: Path, source: Iterator[NewsArticle],
                max_rate: float) -> dict[str, dict[str, float]]:
    """One worker; open-loop load at each level of ``max_rate`` for ``latency_seconds``; publish → indexed latency.

    The publish time is stamped into ``fetched_at`` when each article is sent. "scored" latency is the indexed
    document's ``scored_at`` minus it (exact); "indexed" latency matches the k-th published article of a level
    with the first poll (every 50 ms) that saw k documents of the level in Elasticsearch (arrival order ≈
    publish order; resolution 50 ms).
    """
    settings = run_settings(base, model_dir, config.thread_count, "lat", faust_dir=config.out_dir / "faust")
    prepare(settings)
    counter = EsCounter(settings)
    procs = start_workers(settings, 1, config.out_dir / "logs")
    out: dict[str, dict[str, float]] = {}
    try:
        warm = [next(source) for _ in range(WARM_ARTICLES)]
        publish(settings, warm, retime=True)
        wait_count(counter, len(warm), config.timeout_s, procs)
        run = _LatencyRun(settings, config, counter, procs, base_count=len(warm))
        for level in config.load_levels:
            row = run.level(level, max_rate, source)
            out[f"{level:.2f}"] = row
            logger.info("latency at %.0f%% (%.0f/s): %s", level * 100, row["rate"], row)
        return out
    finally:
        for w in procs:
            w.stop()
        counter.close()


@dataclass
class _LatencyRun:
    """The running worker of a latency run, its document counter, and how many documents are indexed before the
    next level (the warm-up and every earlier level)."""

    settings: Settings
    config: BenchConfig
    counter: EsCounter
    procs: list[BenchWorker]
    base_count: int

    def level(self, level: float, max_rate: float, source: Iterator[NewsArticle]) -> dict[str, float]:
        """Load at ``level`` of ``max_rate`` for ``latency_seconds``: the rate, the articles and the latency quantiles."""
        rate = max(1.0, level * max_rate)
        items = [next(source) for _ in range(max(20, int(rate * self.config.latency_seconds)))]
        polls = self._publish_and_poll(items, rate, level)
        ids = {a.id for a in items}
        scored, indexed = _latencies([d for d in self.counter.docs() if d["id"] in ids], polls, self.base_count)
        self.base_count += len(items)
        row = {"rate": rate, "articles": float(len(items))}
        row.update({f"scored_{k}": v for k, v in _quantiles(scored).items()})
        row.update({f"indexed_{k}": v for k, v in _quantiles(indexed).items()})
        return row

    def _publish_and_poll(self, items: list[NewsArticle], rate: float, level: float) -> list[tuple[float, int]]:
        """Publish ``items`` at ``rate`` from a thread; count the documents every 50 ms until all are indexed.
        Each poll as (epoch s, documents of the run)."""
        polls: list[tuple[float, int]] = []
        done = threading.Event()

        def send() -> None:
            try:
                publish(self.settings, items, rate, True)
            finally:
                done.set()

        publisher = threading.Thread(target=send, name="bench-publisher", daemon=True)
        publisher.start()
        target = self.base_count + len(items)
        deadline = time.monotonic() + self.config.latency_seconds + self.config.timeout_s
        while True:
            count = self.counter.count()
            polls.append((time.time(), count))
            if done.is_set() and count >= target:
                break
            check_alive(self.procs)
            if time.monotonic() > deadline:
                raise BenchTimeout(f"latency run at {level:.0%}: {count - self.base_count} of {len(items)} indexed")
            time.sleep(0.05)
        publisher.join()
        return polls


def _latencies(docs: list[dict[str, Any]], polls: list[tuple[float, int]], base_count: int) -> tuple[list[float], list[float]]:
    """Seconds publish → scored of each document, and publish → indexed of the k-th published one (the first poll
    that saw ``base_count`` + k documents)."""
    published = sorted(datetime.fromisoformat(d["fetched_at"]).timestamp() for d in docs)
    scored = [datetime.fromisoformat(d["scored_at"]).timestamp() - datetime.fromisoformat(d["fetched_at"]).timestamp()
              for d in docs]
    indexed: list[float] = []
    p = 0
    for k, sent in enumerate(published, start=1):
        while p < len(polls) and polls[p][1] - base_count < k:
            p += 1
        if p < len(polls):
            indexed.append(polls[p][0] - sent)
    return scored, indexed
