"""Helpers shared by the fault tests: sizes from the environment, articles, counts, Alerta, offsets, metrics."""

from __future__ import annotations

import asyncio
import math
import os
import re
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from finpulse.contracts.ids import article_id
from finpulse.contracts.records import NewsArticle
from finpulse.contracts.topics import NEWS_RAW, topic_name
from finpulse.settings import Settings

from ..streams.harness import alerts, json_if

__all__ = ["alerts", "json_if"]

# In the vocabulary of the tiny trained model (finpulse.export.testing.synthetic_examples): it labels these
# negative and neutral on purpose; the ticker travels in the record's tickers field, the id in the URL.
NEGATIVE = "Globex plunges"
NEUTRAL = "Globex schedules call"


def env_int(name: str, default: int) -> int:
    """A size from ``FINPULSE_FAULT_<NAME>`` (CI can shrink or grow it), else ``default``."""
    return int(os.environ.get(f"FINPULSE_FAULT_{name}", default))


def window_start(window_s: float, ago: timedelta = timedelta(hours=2)) -> datetime:
    now = datetime.now(UTC) - ago
    return datetime.fromtimestamp(math.floor(now.timestamp() / window_s) * window_s, UTC)


def article(tag: str, i: int, when: datetime, negative: bool, tickers: list[str] | None = None) -> NewsArticle:
    title = NEGATIVE if negative else NEUTRAL
    url = f"https://faults.example/{tag}/{i}"
    return NewsArticle(id=article_id(url), url=url, source="faults", title=title, published_at=when, tickers=tickers or [])


def produce_checked(settings: Settings, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> int:
    """Produce ``records`` and fail unless Kafka acknowledged every one (records up to 16 MiB)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.kafka.broker_list(), acks="all", linger_ms=20,
                             batch_size=2**20, max_request_size=16 * 2**20)
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        producer.flush(60)
        for future in futures:
            future.get(30)  # raises the delivery error instead of dropping the record silently
    finally:
        producer.close()
    return len(records)


def encoded(articles: list[NewsArticle]) -> list[tuple[bytes, bytes]]:
    return [(a.id.encode(), a.to_bytes()) for a in articles]


def send(settings: Settings, articles: list[NewsArticle]) -> None:
    produce_checked(settings, topic_name(settings.kafka, NEWS_RAW), list(encoded(articles)))


def send_burst(settings: Settings, records: list[tuple[bytes, bytes]]) -> float:
    """Produce ``records`` to news.raw as large record batches, one partition at a time (aiokafka's batch API,
    same murmur2 key partitioning as the producers of the pipeline); returns the seconds from the first
    batch to Kafka's last acknowledgement. A producer's per-record overhead would cap the burst's rate at
    a few thousand records/s on a loaded machine, below 10x the worker's scoring rate."""
    return asyncio.run(_send_burst(settings, topic_name(settings.kafka, NEWS_RAW), records))


async def _send_burst(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.broker_list(), acks="all",
                                max_batch_size=2**20, max_request_size=16 * 2**20)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        partitioner = DefaultPartitioner()
        by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
        for key, value in records:
            by_partition[partitioner(key, partitions, partitions)].append((key, value))
        started = time.monotonic()
        deliveries = []
        for partition, items in by_partition.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start the next
                    deliveries.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(f"a record of {len(value)} bytes does not fit an empty batch")
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*deliveries)  # raises the delivery error instead of dropping records silently
        return time.monotonic() - started
    finally:
        await producer.stop()


def news_index(settings: Settings) -> str:
    return f"{settings.elasticsearch.index_prefix}-news-*"


def count(es: Any, settings: Settings) -> int:
    index = news_index(settings)
    es.indices.refresh(index=index, ignore_unavailable=True, allow_no_indices=True)
    return int(es.count(index=index, ignore_unavailable=True, allow_no_indices=True)["count"])


def indexed_ids(es: Any, settings: Settings) -> list[str]:
    """Every document id of the test's news indices (scrolls through search_after on the id)."""
    ids: list[str] = []
    after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {"size": 5000, "sort": [{"id": "asc"}], "_source": False}
        if after is not None:
            body["search_after"] = after
        hits = es.search(index=news_index(settings), **body)["hits"]["hits"]
        if not hits:
            return ids
        ids.extend(h["_id"] for h in hits)
        after = hits[-1]["sort"]




def committed_total(settings: Settings, base_topic: str) -> int:
    """Sum over partitions of the group's committed offsets on ``base_topic`` (0 where none)."""
    from kafka import KafkaConsumer, TopicPartition

    topic = topic_name(settings.kafka, base_topic)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.broker_list(), group_id=settings.kafka.consumer_group,
                             enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in partitions)
    finally:
        consumer.close()


def metric(settings: Settings, name: str, labels: dict[str, str] | None = None) -> float:
    """A value from the worker's Prometheus endpoint (0 when the series is absent)."""
    text = httpx.get(f"http://127.0.0.1:{settings.stream.metrics_port}/metrics", timeout=5).text
    want = ",".join(f'{k}="{v}"' for k, v in (labels or {}).items())
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{{re.escape(want)}\}})? ([0-9.eE+-]+)$" if want
                         else rf"^{re.escape(name)} ([0-9.eE+-]+)$", re.M)
    match = pattern.search(text)
    return float(match.group(1)) if match else 0.0


def isolated(settings: Settings, tmp_path: Any, **groups: dict[str, Any]) -> Settings:
    """``settings`` with the worker's Faust data in the test's tmp dir (created), plus ``groups`` overrides."""
    from ..conftest import with_overrides

    stream = dict(groups.pop("stream", {}))
    if "data_dir" in type(settings.stream).model_fields:
        faust = tmp_path / "faust"
        faust.mkdir(parents=True, exist_ok=True)
        stream["data_dir"] = faust
    return with_overrides(settings, stream=stream, **groups)
