"""Agent ``finpulse.recommend.index``: recommendation feeds into ``<prefix>-recommendations-YYYY.MM``.

One document per (user, article) as the dashboards read them; the user id is replaced by its HMAC-SHA256 pseudonym
(``settings.pseudonym_key``): raw user ids never reach an index. A list with a document Elasticsearch refuses for good
goes to ``recommendations.index.dlq`` with the status and reason, and the batch is acknowledged.
"""

from __future__ import annotations

from typing import Any

from finpulse.contracts.codecs import Err, decode
from finpulse.contracts.events import RecommendationList
from finpulse.contracts.exceptions import SerializationBug
from finpulse.pseudonym import pseudonymise
from finpulse.streams.agents.dead_letters import dead_letter_rejections
from finpulse.streams.agents.recommend import RecommendParts, recommendation_documents, recommendations_index
from finpulse.streams.channels import batches

MAX_LIST_RECORD_BYTES = 16 * 1024 * 1024


def register(parts: RecommendParts) -> None:
    """Add the feed index agent."""
    settings, metrics = parts.settings, parts.metrics
    prefix, key = settings.elasticsearch.index_prefix, settings.pseudonym_key

    async def index_agent(stream: Any) -> None:
        writer = parts.writer_factory()
        try:
            async with batches(stream, settings.stream.index_batch_size, settings.stream.index_wait_s) as taken:
                async for events in taken:
                    docs = []
                    sources: dict[tuple[str, str], Any] = {}
                    for event in events:
                        result = decode(event.value, RecommendationList, MAX_LIST_RECORD_BYTES)
                        if isinstance(result, Err):
                            raise SerializationBug(f"unreadable record on {event.message.topic}: {result.reason}")
                        listing = result.value
                        listed = recommendation_documents(listing, pseudonymise(listing.user_id, key),
                                                          recommendations_index(prefix, listing.generated_at))
                        docs.extend(listed)
                        sources.update({(doc.index, doc.id): event for doc in listed})
                    written = await writer.write(docs)
                    await dead_letter_rejections(parts.topics.recommendations_index_dlq, written.rejected, sources,
                                                 metrics)
                    metrics.events_out.labels("recommend.index").inc(len(docs) - len(written.rejected))
        finally:
            await writer.close()

    parts.app.agent(parts.recommendations, name="finpulse.recommend.index")(index_agent)
