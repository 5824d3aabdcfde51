"""``news.scored`` → Elasticsearch, in bulk, offsets acknowledged only after Elasticsearch acknowledged.

``stream.take_events`` acknowledges a batch's events only when the loop body has finished with it,
and :meth:`BulkWriter.write` returns only when every document of the batch is in Elasticsearch, so a
crash or an outage can re-deliver documents but never lose them; their ``_id`` (the article id)
makes the re-delivery overwrite, not duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from finpulse.contracts.codecs import Err, decode
from finpulse.contracts.exceptions import SerializationBug
from finpulse.contracts.records import ScoredArticle
from finpulse.settings import Settings
from finpulse.streams.channels import StreamTopics, batches
from finpulse.streams.metrics import StreamMetrics
from finpulse.streams.sinks.bulk import BulkWriter, Doc

logger = logging.getLogger(__name__)

AGENT = "index"


def news_index(prefix: str, when: datetime) -> str:
    """Monthly news index behind the ``<prefix>-news`` alias."""
    return f"{prefix}-news-{when:%Y.%m}"


def news_document(article: ScoredArticle) -> dict[str, Any]:
    doc = article.model_dump(mode="json", exclude={"schema_version"})
    if doc.get("embedding") is None:
        doc.pop("embedding", None)
    return doc


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
                for event in events:
                    result = decode(event.value, ScoredArticle, 64 * 1024 * 1024)
                    if isinstance(result, Err):
                        # news.scored is written by finpulse alone: an unreadable record is our bug.
                        raise SerializationBug(f"unreadable record on {event.message.topic}: {result.reason}")
                    article = result.value
                    when = article.published_at or article.fetched_at
                    docs.append(Doc(news_index(prefix, when), article.id, news_document(article)))
                metrics.batch_size.labels(AGENT).observe(len(docs))
                await writer.write(docs)
                metrics.events_out.labels(AGENT).inc(len(docs))
