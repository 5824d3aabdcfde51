"""The clicks API against the embedded Kafka: 202 only after the broker acknowledged, events keyed by user id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from finpulse.contracts.events import ClickEvent
from finpulse.settings import Settings
from finpulse.streams.sources.clicks_api import KafkaEventSink, create_api
from tests.streams.harness import consume_all

pytestmark = [pytest.mark.integration]


def test_202_after_kafka_ack_and_events_keyed_by_user(stack: Any, unique_name: str) -> None:
    data = stack.settings.model_dump()
    data["kafka"]["topic_prefix"] = f"{unique_name}."
    data["recommend"]["api_token"] = "tok"
    settings = Settings.model_validate(data)
    from finpulse.infra.topics_admin import create_topics

    create_topics(settings)
    sink = KafkaEventSink(settings)
    now = datetime.now(UTC).isoformat()
    events = [
        {"user_id": user, "article_id": f"{i:032x}", "event_type": kind, "timestamp": now, "position": i, "session_id": "s"}
        for i, (user, kind) in enumerate([("u1", "impression"), ("u1", "click"), ("u2", "click")])
    ]
    with TestClient(create_api(settings.recommend.model_copy(update={"api_token": SecretStr("tok")}), sink)) as client:
        response = client.post("/v1/events", json={"events": events}, headers={"Authorization": "Bearer tok"})
    assert response.status_code == 202, response.text
    records = consume_all(settings, sink.topic, expect=3, timeout_s=30)
    assert len(records) == 3
    by_user: dict[bytes, list[ClickEvent]] = {}
    partitions: dict[bytes, set[int]] = {}
    for r in records:
        by_user.setdefault(r.key, []).append(ClickEvent.model_validate_json(r.value))
        partitions.setdefault(r.key, set()).add(r.partition)
    assert {k: [e.event_type for e in v] for k, v in by_user.items()} == {b"u1": ["impression", "click"], b"u2": ["click"]}
    assert all(len(p) == 1 for p in partitions.values())
    assert all(e.received_at is not None for v in by_user.values() for e in v)
