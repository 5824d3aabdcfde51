"""A committed offset below the partition's log start (retention deleted records while the worker was down) does not
stall the partition's commits for good: the worker resets to the log start with a WARNING and a metric.

What is simulated: Tansu enforces no retention and has no DeleteRecords (infra/stack/QUIRKS.md), so a private Tansu
runs behind a Kafka-protocol fault proxy (:mod:`.kafka_proxy`) that gives partition 0 of ``news.scored`` a log start
of 10: a Fetch from below 10 is answered OFFSET_OUT_OF_RANGE and ListOffsets(earliest) says 10, as a broker whose
retention deleted offsets 0-9 would. The group's committed offset 5 is written with a real consumer commit.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from finpulse.contracts.topics import NEWS_SCORED, topic_name
from finpulse.settings import Settings

from ..streams.harness import WorkerProcess, wait_for
from .kafka_proxy import KafkaFaultBroker
from .roles import committed, indexed, role_settings, scored
from .support import metric

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

RECORDS, COMMITTED, LOG_START = 20, 5, 10


async def _write_one_per_batch(settings: Settings, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    """Produce to partition 0, one record per batch (the proxy moves the log start at a batch boundary)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for key, value in values:
            await (await producer.send(topic, value, key=key, partition=0))
    finally:
        await producer.stop()


async def _commit(settings: Settings, topic: str, offset: int) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers, group_id=settings.worker_app_id(),
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.commit({tp: OffsetAndMetadata(offset, "")})
    finally:
        await consumer.stop()


def test_a_committed_offset_below_the_log_start_resets_to_it_and_commits_again(
    stack: Any, es_client: Any, tmp_path: Path, unique_name: str, tiny_onnx_dir: Path
) -> None:
    from finpulse.infra.topics_admin import create_topics

    broker = KafkaFaultBroker(tmp_path / "kafka").start()
    try:
        settings = role_settings(stack, unique_name, tmp_path, ["news"], tiny_onnx_dir,
                                 kafka={"bootstrap_servers": broker.bootstrap})
        topic = topic_name(settings.kafka, NEWS_SCORED)
        create_topics(settings)
        now = datetime.now(UTC)
        articles = [scored("retained", i, now - timedelta(seconds=i)) for i in range(RECORDS)]
        asyncio.run(_write_one_per_batch(settings, topic, [(a.id.encode(), a.to_bytes()) for a in articles]))
        asyncio.run(_commit(settings, topic, COMMITTED))
        broker.set_log_start(topic, 0, LOG_START)
        worker = WorkerProcess(settings, tmp_path / "worker.log").start()
        try:
            pattern = f"{unique_name}-news-*"
            wait_for(lambda: indexed(es_client, pattern) >= RECORDS - LOG_START, 240, "the retained records indexed",
                     worker)
            wait_for(lambda: committed(settings, NEWS_SCORED).get(0, 0) >= RECORDS, 60,
                     "partition 0 committed to its end", worker)
            time.sleep(1)
            assert indexed(es_client, pattern) == RECORDS - LOG_START  # offsets 0-9 are gone: never delivered
            assert "below the log start" in worker.log()
            assert metric(settings, "finpulse_offset_resets_total", {"topic": topic}) == 1
            assert worker.alive
        finally:
            worker.stop()
    finally:
        broker.stop()
