"""Agent ``finpulse.recommend.candidates``: every scored article becomes a ranking candidate.

The article's unit embedding (carried from a shared encoder pass, else computed by the recommendation news encoder
and then also added to the article's news document, :mod:`finpulse.streams.sinks.es_vectors`) becomes its news
vector (category-aware when the model learned categories) and enters the bounded ``recommend-candidates``
GlobalTable (freshness window and maximum count from settings; the vector packed as base64,
:mod:`finpulse.contracts.packing`), mirrored in memory as the :class:`~finpulse.export.runtime.ranking.CandidatePool`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from finpulse.contracts.codecs import Err, decode
from finpulse.contracts.exceptions import SerializationBug
from finpulse.contracts.packing import pack_vector
from finpulse.contracts.records import ScoredArticle
from finpulse.export.runtime.vectors import rounded_rows
from finpulse.streams.agents.recommend import POOL_SYNC_INTERVAL_S, RecommendParts
from finpulse.streams.channels import batches, in_event

logger = logging.getLogger(__name__)

MAX_SCORED_RECORD_BYTES = 64 * 1024 * 1024


@dataclass
class Embedded:
    """A batch's articles with a vector, split into the fresh ones and the vector updates for the news index."""

    fresh: list[tuple[Any, ScoredArticle, float]] = field(default_factory=list)  # (event, article, published epoch)
    embeddings: list[np.ndarray] = field(default_factory=list)
    updates: list[Any] = field(default_factory=list)  # VectorUpdate


def register(parts: RecommendParts) -> None:
    """Add the candidate agent and the timer that keeps the pool and the vector store in step."""
    agent = CandidateAgent(parts)
    parts.app.agent(parts.topics.news_scored, name="finpulse.recommend.candidates")(agent.run)

    @parts.app.timer(interval=POOL_SYNC_INTERVAL_S)
    async def sync_candidates() -> None:
        if parts.service._model is not None:
            parts.ensure_pool()
        if parts.service.vector_store is not None:
            await parts.service.vector_store.flush()


class CandidateAgent:
    def __init__(self, parts: RecommendParts) -> None:
        self.parts = parts
        self.warned = False

    async def run(self, stream: Any) -> None:
        from finpulse.streams.sinks.elasticsearch import make_async_es_client
        from finpulse.streams.sinks.es_vectors import VectorStore

        store = VectorStore(make_async_es_client(self.parts.settings.elasticsearch))
        self.parts.service.vector_store = store
        try:
            await self._consume(stream, store)
        finally:
            await store.close()

    async def _consume(self, stream: Any, store: Any) -> None:
        parts, metrics = self.parts, self.parts.metrics
        parts.sync_pool()
        async with batches(stream, parts.settings.stream.batch_size, parts.settings.stream.batch_wait_s) as taken:
            async for events in taken:
                metrics.events_in.labels("recommend.candidates").inc(len(events))
                articles = [(event, _decoded(event)) for event in events]
                embedded = await self._embed(articles)
                self._add_fresh(embedded)
                if articles:
                    self._evict(articles[-1][0], time.time())
                if embedded.updates:
                    await store.add(embedded.updates)  # the article's document in the news index gets its embedding
                metrics.events_out.labels("recommend.candidates").inc(len(articles))

    async def _embed(self, articles: list[tuple[Any, ScoredArticle]]) -> Embedded:
        """Each article's unit embedding: carried, or computed in one encoder call for the batch's others."""
        from finpulse.streams.agents.index import news_index, sane_published
        from finpulse.streams.sinks.es_vectors import VectorUpdate

        model = self.parts.service.model
        carried = [a.embedding is not None and len(a.embedding) == model.dim for _, a in articles]
        missing = [a.text_for_model() for (_, a), ok in zip(articles, carried, strict=True) if not ok]
        computed = np.zeros((0, model.dim), np.float32)
        if missing and model.encoder is not None:
            loop = asyncio.get_running_loop()
            computed = await loop.run_in_executor(self.parts.executor, model.encoder.embed, missing)
        elif missing and not self.warned:
            logger.warning("articles without an embedding and no news encoder: they are not candidates")
            self.warned = True
        now, j, out = time.time(), 0, Embedded()
        prefix = self.parts.settings.elasticsearch.index_prefix
        for (event, article), ok in zip(articles, carried, strict=True):
            # the same clamped date as the index agent's: the same monthly index, and no article dated in the
            # future stays the freshest candidate
            published = sane_published(article, event, self.parts.settings.stream)
            if ok:
                vector = np.asarray(article.embedding, np.float32)
            elif model.encoder is not None:
                vector = computed[j]
                j += 1
                out.updates.append(VectorUpdate(news_index(prefix, published), article.id,
                                                rounded_rows(vector[None])[0], now))
            else:
                self.parts.metrics.duplicates.labels("recommend.no_embedding").inc()
                continue
            when = published.timestamp()
            if now - when <= self.parts.settings.recommend.freshness_window_s:
                out.fresh.append((event, article, when))
                out.embeddings.append(vector)
        return out

    def _add_fresh(self, embedded: Embedded) -> None:
        """Put the fresh articles into the table and the pool (one matrix operation for their news vectors)."""
        if not embedded.fresh:
            return
        service = self.parts.service
        vectors = service.model.news_vectors(np.stack(embedded.embeddings),
                                             [(a.tickers, a.text_for_model()) for _, a, _ in embedded.fresh])
        for (event, article, when), vector in zip(embedded.fresh, vectors, strict=True):
            value = {
                "v": pack_vector(vector), "t": when, "title": article.title[:500],
                "url": article.url,
                "tickers": list(article.tickers), "p": event.message.partition,
            }
            with in_event(event):
                self.parts.candidates[article.id] = value
            service.add_candidate(article.id, value, vector)

    def _evict(self, event: Any, now: float) -> None:
        """Drop this partition's candidates that left the freshness window, then the oldest over the bound."""
        rec = self.parts.settings.recommend
        partition = event.message.partition
        pool = self.parts.service.candidates
        published = pool.published
        rows = np.flatnonzero(np.isfinite(published) & (now - published > rec.freshness_window_s)).tolist()
        if len(pool) > rec.max_candidates:
            live = np.flatnonzero(np.isfinite(published))
            oldest = live[np.argsort(published[live], kind="stable")[: len(pool) - rec.max_candidates]]
            rows = sorted(set(rows) | set(oldest.tolist()))
        for row in rows:
            if pool.meta[row].get("p") != partition:
                continue  # another partition's row: deleted by an event of that partition (same changelog order)
            aid = pool.ids[row]
            with in_event(event):
                self.parts.candidates.pop(aid, None)
            pool.remove(aid)


def _decoded(event: Any) -> ScoredArticle:
    """A scored record finpulse wrote; one it cannot read back is a bug in our own serialization."""
    result = decode(event.value, ScoredArticle, MAX_SCORED_RECORD_BYTES)
    if isinstance(result, Err):
        raise SerializationBug(f"unreadable record on {event.message.topic}: {result.reason}")
    return result.value
