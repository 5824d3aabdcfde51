"""``news.scored`` → Elasticsearch, in bulk, offsets acknowledged only after Elasticsearch acknowledged.

``stream.take_events`` acknowledges a batch's events only when the loop body has finished with it,
and :meth:`BulkWriter.write` returns only when every document of the batch is in Elasticsearch or
refused for good, so a crash or an outage can re-deliver documents but never lose them; their ``_id``
(the article id) makes the re-delivery overwrite, not duplicate. A document Elasticsearch refuses for
good (a mapping error) goes to ``news.index.dlq`` with its record, status and reason, and the batch is
acknowledged: one poison record never blocks its partition.

The publication time picks the monthly index; it is clamped into a sane range around the time the record
was written to ``news.scored`` (``stream.published_max_age_days``, ``stream.published_max_ahead_s``), so a
feed's 1970 placeholder does not open an index per month and an article dated 2099 does not top the news by
date. The record's write time, not the clock, is the reference: a re-delivered record picks the same index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from finpulse.contracts.codecs import Err, decode
from finpulse.contracts.exceptions import SerializationBug
from finpulse.contracts.records import ScoredArticle, clamp_published
from finpulse.settings import Settings, StreamSettings
from finpulse.streams.agents.dead_letters import dead_letter_rejections
from finpulse.streams.channels import StreamTopics, batches
from finpulse.streams.metrics import StreamMetrics
from finpulse.streams.sinks.bulk import BulkWriter, Doc

logger = logging.getLogger(__name__)

AGENT = "index"


def news_index(prefix: str, when: datetime) -> str:
    """Monthly news index behind the ``<prefix>-news`` alias."""
    return f"{prefix}-news-{when:%Y.%m}"


def news_document(article: ScoredArticle, published_at: datetime | None = None) -> dict[str, Any]:
    """The article's document; ``published_at`` (the clamped publication time), when given, is written in place of
    the one the record carries."""
    doc = article.model_dump(mode="json", exclude={"schema_version"})
    if doc.get("embedding") is None:
        doc.pop("embedding", None)
    if published_at is not None and article.published_at is not None:
        doc["published_at"] = published_at.isoformat()
    return doc


def written_at(event: Any) -> datetime:
    """When the record was written to its topic (its Kafka timestamp; now when it carries none)."""
    stamp = event.message.timestamp
    return datetime.fromtimestamp(stamp, UTC) if stamp and stamp > 0 else datetime.now(UTC)


def sane_published(article: ScoredArticle, event: Any, stream: StreamSettings) -> datetime:
    """The article's publication (else fetch) time, clamped around the time its record was written."""
    return clamp_published(article.published_at or article.fetched_at, written_at(event),
                           timedelta(days=stream.published_max_age_days), timedelta(seconds=stream.published_max_ahead_s))


def register(
    app: Any,
    topics: StreamTopics,
    settings: Settings,
    metrics: StreamMetrics,
    writer_factory: Callable[[], BulkWriter],
) -> None:
    """Add the Elasticsearch indexing agent to ``app``."""
    prefix = settings.elasticsearch.index_prefix

    @app.agent(topics.news_scored, name="finpulse.index")
    async def index(stream: Any) -> None:
        writer = writer_factory()
        try:
            await _index_batches(stream, writer)
        finally:
            await writer.close()

    async def _index_batches(stream: Any, writer: BulkWriter) -> None:
        async with batches(stream, settings.stream.index_batch_size, settings.stream.index_wait_s) as taken:
            async for events in taken:
                metrics.events_in.labels(AGENT).inc(len(events))
                docs: list[Doc] = []
                sources: dict[tuple[str, str], Any] = {}
                for event in events:
                    result = decode(event.value, ScoredArticle, 64 * 1024 * 1024)
                    if isinstance(result, Err):
                        # news.scored is written by finpulse alone: an unreadable record is our bug.
                        raise SerializationBug(f"unreadable record on {event.message.topic}: {result.reason}")
                    article = result.value
                    when = sane_published(article, event, settings.stream)
                    doc = Doc(news_index(prefix, when), article.id, news_document(article, when))
                    docs.append(doc)
                    sources[(doc.index, doc.id)] = event
                metrics.batch_size.labels(AGENT).observe(len(docs))
                written = await writer.write(docs)
                await dead_letter_rejections(topics.news_index_dlq, written.rejected, sources, metrics)
                metrics.events_out.labels(AGENT).inc(len(sources) - len(written.rejected))
