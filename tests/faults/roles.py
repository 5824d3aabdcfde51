"""Helpers of the fault tests that run a worker of some roles only, fed straight on its input topic."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from finpulse.contracts.ids import article_id
from finpulse.contracts.records import DeadLetter, ScoredArticle
from finpulse.contracts.topics import topic_name
from finpulse.settings import Settings

from ..streams.harness import consume_all, free_port


def role_settings(stack: Any, name: str, tmp_path: Path, roles: list[str], model_dir: Path,
                  **groups: dict[str, Any]) -> Settings:
    """Settings of one test's worker: its own topics, group, indices, ports and Faust data; ``groups`` override."""
    data = stack.settings.model_dump()
    data["pseudonym_key"] = f"test-pseudonym-key-{name}-0123456789abcdef"  # the worker refuses the default
    data["kafka"].update(topic_prefix=f"{name}.", consumer_group=name)
    data["elasticsearch"].update(index_prefix=name)
    data["model"].update(sentiment_dir=model_dir, sentiment_variant="fp32", intra_op_threads=1)
    (tmp_path / "faust").mkdir(parents=True, exist_ok=True)
    data["stream"].update(web_port=free_port(), metrics_port=free_port(), batch_wait_s=0.05, index_wait_s=0.1,
                          roles=roles, data_dir=tmp_path / "faust")
    data["recommend"].update(shared_encoder=False, model_dir=tmp_path / "no-recommend-model")
    for group, values in groups.items():
        data[group].update(values)
    return Settings.model_validate(data)


def scored(tag: str, i: int, when: datetime, **fields: Any) -> ScoredArticle:
    url = f"https://poison.example/{tag}/{i}"
    values: dict[str, Any] = dict(
        id=article_id(url), url=url, source="poison", title=f"Acme story {tag} {i}", published_at=when,
        tickers=["ACME"], label="neutral", probabilities={"negative": 0.1, "neutral": 0.8, "positive": 0.1},
        negative_score=0.1, model_version="poison-test",
    )
    values.update(fields)
    return ScoredArticle(**values)


def committed(settings: Settings, base_topic: str) -> dict[int, int]:
    """The worker group's committed offset per partition of ``base_topic`` (0 where none)."""
    from kafka import KafkaConsumer, TopicPartition

    topic = topic_name(settings.kafka, base_topic)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.broker_list(), group_id=settings.worker_app_id(),
                             enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        return {p: consumer.committed(TopicPartition(topic, p)) or 0 for p in partitions}
    finally:
        consumer.close()


def indexed(es: Any, pattern: str) -> int:
    """Documents in the indices matching ``pattern`` (refreshed first; 0 while there are none)."""
    es.indices.refresh(index=pattern, ignore_unavailable=True, allow_no_indices=True)
    return int(es.count(index=pattern, ignore_unavailable=True, allow_no_indices=True)["count"])


def letters(settings: Settings, base_topic: str, expect: int, timeout_s: float = 30.0) -> list[DeadLetter]:
    records = consume_all(settings, topic_name(settings.kafka, base_topic), expect, timeout_s)
    return [DeadLetter.model_validate_json(r.value) for r in records]
