"""A produce whose loss would lose data is awaited before its input is acknowledged: when Kafka refuses the
dead-letter record of a bad alert or click, or a user's recommendation list, the input's offset is not committed.

Tansu accepts every produce (it even creates missing topics), so the refusal comes from a Kafka-protocol fault proxy
in front of a private Tansu (:mod:`.kafka_proxy`): the produce answers for one topic say MESSAGE_TOO_LARGE.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from finpulse.contracts.events import ClickEvent
from finpulse.contracts.topics import ALERTS, ALERTS_DLQ, CLICKS, CLICKS_DLQ, RECOMMENDATIONS, topic_name
from finpulse.infra.topics_admin import create_topics

from ..streams.harness import WorkerProcess, produce, wait_for
from .kafka_proxy import KafkaFaultBroker
from .roles import committed, role_settings

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

WATCH_S = 15.0


def _click() -> bytes:
    return ClickEvent(user_id="user-1", article_id="a" * 32, event_type="click", timestamp=datetime.now(UTC),
                      position=0, session_id="s1").to_bytes()


CASES = {
    "alerts.dlq": (["alerts"], ALERTS, ALERTS_DLQ, b"not an alert"),
    "clicks.dlq": (["recommend"], CLICKS, CLICKS_DLQ, b"not a click"),
    "recommendations": (["recommend"], CLICKS, RECOMMENDATIONS, None),
}


@pytest.mark.parametrize("refused", list(CASES))
def test_a_refused_produce_keeps_its_input_uncommitted(stack: Any, tmp_path: Path, unique_name: str, refused: str) -> None:
    roles, source, output, value = CASES[refused]
    broker = KafkaFaultBroker(tmp_path / "kafka").start()
    try:
        # Neither role loads the sentiment model (the recommender falls back to the embeddings articles carry).
        settings = role_settings(stack, unique_name, tmp_path, roles, tmp_path / "no-sentiment-model",
                                 kafka={"bootstrap_servers": broker.bootstrap}, recommend={"debounce_s": 0.0})
        broker.refuse_produce(topic_name(settings.kafka, output))
        create_topics(settings)  # before anything produces: Tansu would create a missing topic with its own partitions
        worker = WorkerProcess(settings, tmp_path / "worker.log").start()
        try:
            # An undecodable record for the DLQ cases, a valid click (which emits the user's feed) for the last one.
            produce(settings, topic_name(settings.kafka, source), [(b"user-1", value if value is not None else _click())])
            wait_for(lambda: broker.refused >= 1, 180, f"the worker's produce to {output}", worker)
            deadline = time.monotonic() + WATCH_S
            while time.monotonic() < deadline:
                offsets = committed(settings, source)
                assert sum(offsets.values()) == 0, f"{source} committed {offsets} although {output} refused the record"
                time.sleep(1)
        finally:
            worker.stop()
    finally:
        broker.stop()
