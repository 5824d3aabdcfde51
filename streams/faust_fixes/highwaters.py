"""Changelog highwaters checked against the brokers' Fetch answers before Faust restores tables.

Faust restores a table by reading its changelog partitions up to the highwater it gets from
ListOffsets(LATEST), then stops. Some brokers answer ListOffsets low: the embedded Tansu broker reports
the end of the last record *batch but one*, so the records of the last batch written before a worker
stopped (often the changelog writes flushed at shutdown) were never restored and the table lost them
(infra/stack/QUIRKS.md). A Fetch response carries each partition's high watermark, which Tansu reports
correctly; here every partition ListOffsets calls non-empty is fetched once from its last listed record
and the larger of the two ends is used. On a broker that answers ListOffsets right this changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from finpulse.infra.kafka_clients import connection_config
from finpulse.settings import KafkaSettings

logger = logging.getLogger(__name__)

Highwaters = Callable[..., Awaitable[Mapping[Any, int]]]

FETCH_WAIT_MS = 100


async def fetched_highwaters(kafka: KafkaSettings, listed: Mapping[Any, int], timeout_s: float = 10.0) -> dict[Any, int]:
    """``listed`` (partition → end offset from ListOffsets) raised to the high watermark a Fetch reports."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    listed_ends = {tp: int(end) if end is not None else 0 for tp, end in listed.items()}
    result = dict(listed_ends)
    to_check = {TopicPartition(tp.topic, tp.partition): tp for tp, end in result.items() if end > 0}
    if not to_check:
        return result
    consumer = AIOKafkaConsumer(
        **connection_config(kafka, f"{kafka.consumer_group}-highwaters", for_aiokafka=True),
        group_id=None, enable_auto_commit=False, fetch_max_wait_ms=FETCH_WAIT_MS,
    )
    await consumer.start()
    try:
        consumer.assign(list(to_check))
        for atp, tp in to_check.items():
            consumer.seek(atp, result[tp] - 1)  # the last record ListOffsets admits to: never empty
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pending = set(to_check)
        while pending and loop.time() < deadline:
            await consumer.getmany(*pending, timeout_ms=200, max_records=1)
            for atp in list(pending):
                watermark = consumer.highwater(atp)
                if watermark is not None:
                    result[to_check[atp]] = max(result[to_check[atp]], int(watermark))
                    pending.discard(atp)
        if pending:
            logger.warning("no Fetch answer for %d changelog partitions in %.0f s; using ListOffsets for them",
                           len(pending), timeout_s)
    finally:
        await consumer.stop()
    raised = {f"{tp.topic}[{tp.partition}]": (listed_ends[tp], end) for tp, end in result.items() if end != listed_ends[tp]}
    if raised:
        logger.info("highwaters raised from ListOffsets to the fetched high watermark: %s", raised)
    return result


def verify_highwaters(consumer: Any, kafka: KafkaSettings) -> None:
    """Make ``consumer.highwaters`` (a Faust consumer) return fetch-checked highwaters."""
    listed: Highwaters = consumer.highwaters

    async def highwaters(*partitions: Any) -> Mapping[Any, int]:
        return await fetched_highwaters(kafka, await listed(*partitions))

    consumer.highwaters = highwaters
