"""Fetch-checked highwaters against the embedded broker, whose ListOffsets(LATEST) answers low."""

from __future__ import annotations

import asyncio
from collections import namedtuple

import pytest

from finpulse.infra.topics_admin import admin_config
from finpulse.streams.faust_fixes.highwaters import fetched_highwaters, verify_highwaters

pytestmark = pytest.mark.integration

TP = namedtuple("TP", "topic partition")  # the shape of Faust's TP


async def _produce_and_list(stack, topic: str) -> dict[TP, int]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=False, linger_ms=50)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"first", partition=0)
        # the last batch of partition 0 holds ten records; partition 2 stays empty
        await asyncio.gather(*[await producer.send(topic, b"x", partition=0) for _ in range(10)])
        await asyncio.gather(*[await producer.send(topic, b"y", partition=1) for _ in range(5)])
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(3)])
    finally:
        await consumer.stop()
    return {TP(tp.topic, tp.partition): end for tp, end in ends.items()}


def test_fetched_highwaters_are_the_true_ends(stack, unique_name: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(**admin_config(stack.settings.kafka))
    admin.create_topics([NewTopic(unique_name, 3, 1)])
    admin.close()
    listed = asyncio.run(_produce_and_list(stack, unique_name))
    checked = asyncio.run(fetched_highwaters(stack.settings.kafka, listed))
    assert checked == {TP(unique_name, 0): 11, TP(unique_name, 1): 5, TP(unique_name, 2): 0}
    assert all(checked[tp] >= end for tp, end in listed.items())


def test_verify_highwaters_wraps_a_consumer(stack, unique_name: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(**admin_config(stack.settings.kafka))
    admin.create_topics([NewTopic(unique_name, 3, 1)])
    admin.close()
    listed = asyncio.run(_produce_and_list(stack, unique_name))

    class ListingConsumer:
        async def highwaters(self, *partitions: TP) -> dict[TP, int]:
            return {tp: listed[tp] for tp in partitions}

    consumer = ListingConsumer()
    verify_highwaters(consumer, stack.settings.kafka)
    got = asyncio.run(consumer.highwaters(TP(unique_name, 0), TP(unique_name, 2)))
    assert got == {TP(unique_name, 0): 11, TP(unique_name, 2): 0}
