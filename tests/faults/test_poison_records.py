"""Records a sink refuses for good go to a dead-letter topic with their status and reason; the worker stays up and
commits past them (no crash loop on one poison record)."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from finpulse.contracts.records import SpikeAlert
from finpulse.contracts.topics import ALERTS, ALERTS_DLQ, NEWS_INDEX_DLQ, NEWS_SCORED, topic_name
from finpulse.infra.topics_admin import create_topics

from ..streams.harness import WorkerProcess, alerts, produce, wait_for
from .roles import committed, indexed, letters, role_settings, scored

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

GOOD = 100


def test_a_document_elasticsearch_refuses_goes_to_the_dlq_and_the_rest_is_indexed(
    stack: Any, es_client: Any, tmp_path: Path, unique_name: str, tiny_onnx_dir: Path
) -> None:
    settings = role_settings(stack, unique_name, tmp_path, ["news"], tiny_onnx_dir)
    # An index made by hand with another mapping: the one article dated in its month cannot be indexed there.
    es_client.indices.create(index=f"{unique_name}-news-2019.03", mappings={"properties": {"source": {"type": "integer"}}})
    now = datetime.now(UTC)
    good = [scored("good", i, now - timedelta(seconds=i)) for i in range(GOOD)]
    bad = scored("bad", 0, datetime(2019, 3, 15, tzinfo=UTC))
    records = [(a.id.encode(), a.to_bytes()) for a in [*good[:50], bad, *good[50:]]]
    create_topics(settings)  # before anything produces: Tansu would create a missing topic with its own partitions
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        produce(settings, topic_name(settings.kafka, NEWS_SCORED), records)
        dead = wait_for(lambda: letters(settings, NEWS_INDEX_DLQ, 1, 3), 240, "the refused document in the DLQ", worker)
        wait_for(lambda: indexed(es_client, f"{unique_name}-news-*") >= GOOD, 120, "the good documents indexed", worker)
        assert len(dead) == 1, dead
        letter = dead[0]
        assert letter.error_type == "elasticsearch_400"
        assert "mapper_parsing_exception" in letter.error and "source" in letter.error
        assert base64.b64decode(letter.value_b64) == bad.to_bytes()
        assert letter.source_topic == topic_name(settings.kafka, NEWS_SCORED)
        wait_for(lambda: sum(committed(settings, NEWS_SCORED).values()) >= GOOD + 1, 60, "every offset committed",
                 worker)
        time.sleep(2)
        assert worker.alive, worker.log()[-3000:]
        assert indexed(es_client, f"{unique_name}-news-*") == GOOD
    finally:
        worker.stop()


def test_an_alert_alerta_refuses_goes_to_the_dlq_and_is_still_indexed(
    stack: Any, es_client: Any, tmp_path: Path, unique_name: str
) -> None:
    # Alerta's reject plugin refuses environments outside ALLOWED_ENVIRONMENTS with 403 (infra/stack/QUIRKS.md). The
    # alerts role loads no sentiment model.
    settings = role_settings(stack, unique_name, tmp_path, ["alerts"], tmp_path / "no-sentiment-model",
                             alerta={"environment": "Staging"}, alerts={"sinks": ["alerta", "log"]})
    key = f"P{unique_name[-6:].upper()}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    alert = SpikeAlert(key=key, status="raise", window_start=start, window_end=start + timedelta(minutes=1), n=20, k=15,
                       share=0.75, baseline=0.1, p_value=1e-9, severity="major")
    create_topics(settings)  # before anything produces: Tansu would create a missing topic with its own partitions
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        produce(settings, topic_name(settings.kafka, ALERTS), [(key.encode(), alert.to_bytes())])
        dead = wait_for(lambda: letters(settings, ALERTS_DLQ, 1, 3), 180, "the refused alert in the DLQ", worker)
        assert len(dead) == 1, dead
        assert dead[0].error_type == "alerta_403"
        assert "environment" in dead[0].error
        assert base64.b64decode(dead[0].value_b64) == alert.to_bytes()
        wait_for(lambda: indexed(es_client, f"{unique_name}-alerts-*") >= 1, 60, "the alert indexed", worker)
        wait_for(lambda: committed(settings, ALERTS).get(0, 0) >= 1, 60, "the alert's offset committed", worker)
        time.sleep(2)
        assert worker.alive, worker.log()[-3000:]
        assert alerts(stack.settings, key) == []
    finally:
        worker.stop()
