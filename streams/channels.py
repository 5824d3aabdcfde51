"""The Faust topic objects of the app, declared from the one list in ``infra/topics.py``."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from finpulse.infra import topics as t
from finpulse.settings import Settings


@dataclass(frozen=True)
class StreamTopics:
    news_raw: Any
    news_raw_dlq: Any
    news_scored: Any
    observations: Any
    ticks: Any
    spike_inputs: Any
    alerts: Any
    alerts_dlq: Any

    @classmethod
    def declare(cls, app: Any, settings: Settings) -> StreamTopics:
        specs = {spec.name: spec for spec in t.TOPICS}

        def topic(base: str) -> Any:
            return app.topic(
                t.topic_name(settings.kafka, base),
                key_serializer="raw",
                value_serializer="raw",
                partitions=specs[base].partitions,
            )

        return cls(
            news_raw=topic(t.NEWS_RAW),
            news_raw_dlq=topic(t.NEWS_RAW_DLQ),
            news_scored=topic(t.NEWS_SCORED),
            observations=topic(t.SENTIMENT_OBSERVATIONS),
            ticks=topic(t.SENTIMENT_TICKS),
            spike_inputs=app.topic(
                t.topic_name(settings.kafka, t.SENTIMENT_OBSERVATIONS),
                t.topic_name(settings.kafka, t.SENTIMENT_TICKS),
                key_serializer="raw",
                value_serializer="raw",
                partitions=specs[t.SENTIMENT_OBSERVATIONS].partitions,
            ),
            alerts=topic(t.ALERTS),
            alerts_dlq=topic(t.ALERTS_DLQ),
        )


@contextmanager
def in_event(event: Any) -> Iterator[None]:
    """Make ``event`` the current event while a table is written.

    Faust routes a table write to the changelog partition of the *current* event; inside
    ``stream.take_events`` no event is current, so each write names its own event here.
    """
    from faust.streams import _current_event

    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
