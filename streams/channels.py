"""The Faust topic objects of the app, declared from the one list in ``finpulse/contracts/topics.py``."""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from finpulse.contracts import topics as t
from finpulse.settings import Settings


@dataclass(frozen=True)
class StreamTopics:
    news_raw: Any
    news_raw_dlq: Any
    news_scored: Any
    news_index_dlq: Any
    observations: Any
    ticks: Any
    spike_inputs: Any
    alerts: Any
    alerts_dlq: Any
    recommendations_index_dlq: Any

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
            news_index_dlq=topic(t.NEWS_INDEX_DLQ),
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
            recommendations_index_dlq=topic(t.RECOMMENDATIONS_INDEX_DLQ),
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


async def _held_until_finished(inner: AsyncIterator[Any], batched: bool) -> AsyncGenerator[Any, None]:
    """Re-yield ``inner``, holding one reference on each item's messages until the loop body comes back
    for the next item; only then is that reference released with an ack.

    Faust acks by message refcount: the offset becomes committable when the last holder acks. Faust's own
    ack of an item happens when ``inner`` moves on *or is closed*, and ``Stream.on_stop`` closes it from
    outside (a graceful stop) while the agent may still be writing the item's outputs. With this hold, an
    item whose loop body never finished (stopped, cancelled or crashed half-way) is never acknowledged.
    """
    async for item in inner:
        events = item if batched else [item]
        for event in events:
            event.message.incref()
        yield item
        for event in events:  # reached only when the loop body finished the item
            event.ack()


@asynccontextmanager
async def batches(stream: Any, max_: int, within: float) -> AsyncIterator[AsyncIterator[list[Any]]]:
    """``stream.take_events`` that never acknowledges a batch its loop body did not finish.

    ``take_events`` acknowledges every buffered event when its generator closes, also when the agent
    was cancelled or crashed half-way through the batch, and on a graceful stop ``Stream.on_stop``
    closes it while the agent may still be writing the batch; the consumer then commits those offsets
    on shutdown although their outputs were never written. Here an unfinished batch's
    messages stay unacknowledged, their offsets are not committed, and the next start re-delivers
    them (every output is idempotent).

    Use as ``async with batches(stream, n, wait) as taken: async for events in taken: ...``: leaving
    the block closes both generators at once, in the right order.
    """
    async with _guarded(stream, stream.take_events(max_, within=within), batched=True) as outer:
        yield outer


@asynccontextmanager
async def each_event(stream: Any) -> AsyncIterator[AsyncIterator[Any]]:
    """``stream.events()`` that never acknowledges an event its loop body did not finish (see
    :func:`batches`)."""
    async with _guarded(stream, stream.events(), batched=False) as outer:
        yield outer


@asynccontextmanager
async def _guarded(stream: Any, source: Any, batched: bool) -> AsyncIterator[AsyncIterator[Any]]:
    """Close the guard, then ``source``: the guard's hold must come before Faust's ack on close.

    Then switch the stream's acks off for good. ``take_events`` fills its buffer from a background drainer
    that keeps pulling the events already queued in the channel until the stream itself stops, and closing
    ``take_events`` turns the stream's acks back on: without this, those queued events would be acknowledged
    (and their offsets committed on shutdown) unprocessed.
    """
    try:
        async with aclosing(source) as inner, aclosing(_held_until_finished(inner, batched)) as outer:
            yield outer
    finally:
        stream.enable_acks = False
