"""Replay into the real embedded Kafka (Tansu) and read the records back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from finpulse.contracts.records import NewsArticle
from finpulse.contracts.topics import NEWS_RAW, TOPICS, topic_name
from finpulse.infra.topics_admin import create_topics
from finpulse.settings import Settings
from finpulse.streams.sources.replay import iter_articles, replay_file

pytestmark = pytest.mark.integration

SENT_VALID = Path("/work/shared/data/twitter-financial-news-sentiment/sent_valid.csv")


def _consume(settings: Settings, topic: str, want: int, timeout_s: float = 30.0) -> list[tuple[bytes, bytes]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.broker_list(),
        group_id=f"{topic}-check",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=int(settings.kafka.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.kafka.heartbeat_interval_s * 1000),
    )
    got: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(got) < want and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend((r.key, r.value) for r in records)
        got.extend((r.key, r.value) for records in consumer.poll(timeout_ms=1000).values() for r in records)
    finally:
        consumer.close()
    return got


def test_replay_produces_every_article_keyed_by_id(stack, unique_name: str, tmp_path: Path) -> None:
    if SENT_VALID.is_file():
        source = SENT_VALID
    else:
        source = tmp_path / "news.csv"
        source.write_text("text,label\r\n" + "".join(f"Apple headline {i},1\r\n" for i in range(60)), encoding="utf-8")
    settings = stack.settings.model_copy(update={"kafka": stack.settings.kafka.model_copy(update={"topic_prefix": f"{unique_name}."})})
    create_topics(settings, tuple(spec for spec in TOPICS if spec.name == NEWS_RAW))
    topic = topic_name(settings.kafka, NEWS_RAW)

    stats = replay_file(settings, source, speed=0, limit=50)
    assert (stats.produced, stats.delivered, stats.failed) == (50, 50, 0)
    assert stats.topic == topic

    expected = [a.id for a in iter_articles(source, limit=50)]
    got = _consume(settings, topic, 50)
    assert len(got) == 50
    assert sorted(k.decode() for k, _ in got) == sorted(expected)
    articles = [NewsArticle.model_validate_json(v) for _, v in got]
    assert all(a.id == k.decode() for (k, _), a in zip(got, articles, strict=True))
    assert any(a.tickers for a in articles)
