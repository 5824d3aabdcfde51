"""What the pipeline benchmark's end-to-end and latency runs share: each run's own settings (topics, group,
indices), publishing to ``news.raw``, the worker processes, and counting what Elasticsearch acknowledged."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finpulse.bench.exceptions import BenchError, BenchTimeout
from finpulse.bench.workers import BenchWorker
from finpulse.contracts.records import NewsArticle
from finpulse.settings import Settings

# Short group timings: Tansu completes a join only after about half the session timeout (QUIRKS.md).
BENCH_KAFKA = {"session_timeout_s": 6.0, "heartbeat_interval_s": 1.0, "request_timeout_s": 15.0}


def run_settings(base: Settings, model_dir: Path, threads: int, tag: str, no_recommender: Path | None = None,
                 faust_dir: Path | None = None, shared_recommender: Path | None = None) -> Settings:
    """Settings of one pipeline run: its own topics, group and indices, the benchmarked model.

    ``no_recommender`` (an empty dir) as the recommendation model dir turns the worker's news encoder off;
    ``shared_recommender`` runs that recommendation model over the embeddings of the sentiment pass.
    """
    from finpulse.infra.stack.process import free_port

    data = base.model_dump()
    name = f"bench-{tag}-{uuid.uuid4().hex[:8]}"
    data["kafka"].update(BENCH_KAFKA, topic_prefix=f"{name}.", consumer_group=name)
    data["elasticsearch"]["index_prefix"] = name
    data["model"].update(sentiment_dir=model_dir, sentiment_variant="int8", providers=["cpu"], intra_op_threads=threads)
    data["stream"].update(web_port=free_port(), metrics_port=free_port())
    data["alerts"]["sinks"] = ["log"]
    data["log_level"] = "WARNING"
    if faust_dir is not None and "data_dir" in data["stream"]:  # the worker's Faust data under the bench's output
        faust_dir.mkdir(parents=True, exist_ok=True)
        data["stream"]["data_dir"] = faust_dir
    if no_recommender is not None:
        no_recommender.mkdir(parents=True, exist_ok=True)
        data["recommend"].update(model_dir=no_recommender, shared_encoder=False)
    if shared_recommender is not None:
        data["recommend"].update(model_dir=shared_recommender, shared_encoder=True)
    return Settings.model_validate(data)


def with_ports(settings: Settings) -> Settings:
    """The same run settings with fresh web/metrics ports (a second worker on the same machine)."""
    from finpulse.infra.stack.process import free_port

    data = settings.model_dump()
    data["stream"].update(web_port=free_port(), metrics_port=free_port())
    return Settings.model_validate(data)


class EsCounter:
    def __init__(self, settings: Settings) -> None:
        from finpulse.streams.sinks.elasticsearch import make_es_client

        self.client = make_es_client(settings.elasticsearch)
        self.index = f"{settings.elasticsearch.index_prefix}-news-*"

    def count(self) -> int:
        return int(self.client.count(index=self.index, ignore_unavailable=True, allow_no_indices=True)["count"])

    def docs(self, size: int = 10000) -> list[dict[str, Any]]:
        self.client.indices.refresh(index=self.index, ignore_unavailable=True, allow_no_indices=True)
        body = self.client.search(index=self.index, size=size, source_includes=["id", "fetched_at", "scored_at"])
        return [h["_source"] for h in body["hits"]["hits"]]

    def close(self) -> None:
        self.client.close()


def publish(settings: Settings, items: Sequence[NewsArticle], rate: float | None = None, retime: bool = False) -> Any:
    from finpulse.contracts.topics import NEWS_RAW, topic_name
    from finpulse.streams.sources.producer import make_producer
    from finpulse.streams.sources.replay import Pacer, publish_articles

    producer = make_producer(settings.kafka)
    try:
        pacer = Pacer(rate=rate) if rate else None
        return publish_articles(producer, topic_name(settings.kafka, NEWS_RAW), items, pacer=pacer, retime=retime)
    finally:
        producer.close()


def prepare(settings: Settings) -> None:
    from finpulse.streams.worker import prepare

    prepare(settings)


def start_workers(settings: Settings, count: int, log_dir: Path) -> list[BenchWorker]:
    workers = []
    for i in range(count):
        worker_settings = settings if i == 0 else with_ports(settings)
        workers.append(BenchWorker(worker_settings, log_dir / f"{settings.kafka.consumer_group}-w{i}.log").start())
    return workers


def check_alive(workers: Sequence[BenchWorker]) -> None:
    for w in workers:
        if not w.alive:
            raise BenchError(f"worker {w.pid} exited with {w.proc.returncode if w.proc else None}:\n{w.log_tail()}")


def wait_count(counter: EsCounter, n: int, timeout_s: float, procs: Sequence[BenchWorker]) -> None:
    deadline = time.monotonic() + timeout_s
    while counter.count() < n:
        check_alive(procs)
        if time.monotonic() > deadline:
            raise BenchTimeout(f"fewer than {n} documents after {timeout_s:.0f} s")
        time.sleep(0.1)
