"""Tansu through real Kafka clients: topics, produce, consume with a consumer group and committed offsets."""

from __future__ import annotations

import time

import pytest

from finpulse.contracts.topics import TOPICS
from finpulse.infra.topics_admin import admin_config, create_topics, list_topics

pytestmark = pytest.mark.integration


def _consume(stack, topic: str, group: str, want: int, timeout_s: float = 30.0) -> list[tuple[bytes, bytes]]:
    from kafka import KafkaConsumer

    kafka = stack.settings.kafka
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka.broker_list(),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=int(kafka.session_timeout_s * 1000),
        heartbeat_interval_ms=int(kafka.heartbeat_interval_s * 1000),
    )
    got: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(got) < want and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend((r.key, r.value) for r in records)
        consumer.commit()
        # nothing more arrives
        extra = consumer.poll(timeout_ms=1000)
        got.extend((r.key, r.value) for records in extra.values() for r in records)
    finally:
        consumer.close()
    return got


def test_produce_and_consume_with_a_consumer_group(stack, unique_name: str) -> None:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(**admin_config(stack.settings.kafka))
    admin.create_topics([NewTopic(unique_name, 2, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    for i in range(20):
        producer.send(unique_name, key=f"k{i % 5}".encode(), value=f"v{i}".encode())
    producer.flush(10)

    first = _consume(stack, unique_name, f"{unique_name}-g", 20)
    assert sorted(v for _, v in first) == sorted(f"v{i}".encode() for i in range(20))

    for i in range(20, 25):
        producer.send(unique_name, key=b"k", value=f"v{i}".encode())
    producer.flush(10)
    producer.close()
    # Same group again: resumes from the committed offsets, so only the five new records arrive.
    second = _consume(stack, unique_name, f"{unique_name}-g", 5)
    assert sorted(v for _, v in second) == sorted(f"v{i}".encode() for i in range(20, 25))


def test_topics_create_is_idempotent_under_the_prefix(stack, unique_name: str) -> None:
    settings = stack.settings.model_copy(
        update={"kafka": stack.settings.kafka.model_copy(update={"topic_prefix": f"{unique_name}."})}
    )
    first = create_topics(settings)
    assert [s.action for s in first] == ["created"] * len(TOPICS)
    assert all(s.name.startswith(f"{unique_name}.") for s in first)
    second = create_topics(settings)
    assert [s.action for s in second] == ["exists"] * len(TOPICS)
    listed = {s.name: s.partitions for s in list_topics(settings)}
    assert listed == {f"{unique_name}.{spec.name}": spec.partitions for spec in TOPICS}
