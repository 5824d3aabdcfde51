"""The live recommendation feed: ``news.scored`` → candidates, ``clicks`` → profiles → ``recommendations``.

* **Candidates** (agent ``finpulse.recommend.candidates``): every scored article gets a unit embedding
  (the one it carries from a shared encoder pass, else the recommendation news encoder's, which is then also
  added to the article's news document in Elasticsearch, :mod:`finpulse.recommend.es_vectors`), turned into its
  news vector (plus its category and subcategory vectors when the model has them) and enters a
  bounded Faust ``GlobalTable`` of recent candidates (freshness window and maximum count from settings; the
  vector packed as one base64 string, :mod:`finpulse.recommend.packing`),
  mirrored in memory as a numpy matrix (:class:`~finpulse.recommend.ranking.CandidatePool`).
* **Profiles** (agent ``finpulse.recommend.clicks``): clicks keyed by user id update the user's profile in
  a Faust table (recent clicked ids, bounded; the user vector of the user tower). A user's top-K is sent to
  ``recommendations`` at most once per debounce interval (the first click at once, later ones when the
  interval has passed): one matrix product over the pool, ``argpartition``, freshness decay, clicked
  articles excluded, MMR. Undecodable click records go to ``clicks.dlq``.
* **Index** (agent ``finpulse.recommend.index``): recommendation lists into ``<prefix>-recommendations-*``,
  one document per (user, article) as the dashboards read them, the user id replaced by its HMAC-SHA256
  pseudonym (``settings.pseudonym_key``): raw user ids never reach an index.
* **View**: ``GET /v1/users/{user_id}/recommendations`` on the worker's web port, answered by the
  partition owner of the user's profile (``app.table_route``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from finpulse.infra import topics as t
from finpulse.recommend.encoder import RecommendModel, model_or_fallback
from finpulse.recommend.events import ClickEvent, RecommendationList, RecommendedItem
from finpulse.recommend.packing import pack_vector, unpack_vector
from finpulse.recommend.profiles import Profile, update_profile
from finpulse.recommend.pseudonym import pseudonymise
from finpulse.recommend.ranking import CandidatePool, RankConfig, top_k
from finpulse.runtime.vectors import rounded_rows
from finpulse.settings import Settings
from finpulse.sinks.bulk import BulkWriter, Doc
from finpulse.streams.channels import StreamTopics, batches, in_event
from finpulse.streams.codecs import Err, dead_letter, decode, encode_checked
from finpulse.streams.exceptions import SerializationBug
from finpulse.streams.metrics import StreamMetrics
from finpulse.streams.records import ScoredArticle

logger = logging.getLogger(__name__)

CANDIDATES_TABLE = "recommend-candidates"
PROFILES_TABLE = "recommend-profiles"
POOL_SYNC_INTERVAL_S = 1.0


def recommendations_index(prefix: str, when: datetime) -> str:
    return f"{prefix}-recommendations-{when:%Y.%m}"


def recommendation_documents(rec: RecommendationList, pseudonym: str, index: str) -> list[Doc]:
    """One document per (user, recommended article); the user is only its pseudonym.

    ``_id`` = pseudonym, list time and rank: a re-delivered list overwrites itself, later lists add history.
    """
    stamp = int(rec.generated_at.timestamp() * 1000)
    docs = []
    for rank, item in enumerate(rec.items, start=1):
        source = {
            "user_id": pseudonym, "article_id": item.article_id, "title": item.title, "url": item.url, "score": item.score,
            "rank": rank,
            "recommended_at": rec.generated_at.isoformat(), "tickers": item.tickers, "model_version": rec.model_version,
            "clicks_seen": rec.clicks_seen,
        }
        if item.published_at is not None:
            source["published_at"] = item.published_at.isoformat()
        docs.append(Doc(index, f"{pseudonym}:{stamp}:{rank}", source))
    return docs


@dataclass
class RecommendService:
    """What the agents and the view share in one worker: the model, the candidate pool, the ranking settings."""

    settings: Settings
    model_factory: Callable[[], RecommendModel]
    _model: RecommendModel | None = None
    pool: CandidatePool | None = None
    ensure_pool: Callable[[], None] = lambda: None
    vector_store: Any = None
    last_emit: dict[str, float] = field(default_factory=dict)
    pending: dict[str, float] = field(default_factory=dict)  # user → trigger received at (epoch)

    @property
    def model(self) -> RecommendModel:
        if self._model is None:
            self._model = self.model_factory()
            self.pool = CandidatePool(self._model.dim, capacity=1024)
        return self._model

    @property
    def candidates(self) -> CandidatePool:
        _ = self.model
        assert self.pool is not None
        return self.pool

    @property
    def config(self) -> RankConfig:
        r = self.settings.recommend
        return RankConfig(r.top_k, r.freshness_window_s, r.freshness_half_life_s, r.mmr_lambda)

    def add_candidate(self, article_id: str, value: dict[str, Any], vector: np.ndarray | None = None) -> None:
        """Put a candidate table row into the pool; ``vector``, when given, is the row's unpacked ``v``."""
        meta = {"title": value.get("title", ""), "url": value.get("url"), "tickers": value.get("tickers", []),
                "p": value.get("p", 0)}
        self.candidates.add(article_id, unpack_vector(value["v"]) if vector is None else vector, float(value["t"]), meta)

    def recommend(self, profile: Profile, now: float) -> list[RecommendedItem]:
        vector = profile.user_vector()
        pool = self.candidates
        if vector is None or len(pool) == 0:
            return []
        items = []
        for ranked in top_k(vector, pool, now, self.config, exclude=profile.clicked):
            meta = pool.meta[ranked.row]
            published = float(pool.published[ranked.row])
            items.append(RecommendedItem(
                article_id=ranked.article_id, score=round(ranked.score, 6), title=str(meta.get("title", ""))[:500],
                url=meta.get("url"),
                tickers=list(meta.get("tickers", [])), published_at=datetime.fromtimestamp(published, UTC),
            ))
        return items


def _load_model(settings: Settings, model_dir: Path) -> RecommendModel:
    """The recommendation model; with a shared encoder the articles arrive embedded by the sentiment pass, so no
    second encoder is loaded and, without a trained model, the fallback ranks the sentiment model's embeddings."""
    if not settings.recommend.shared_encoder:
        return model_or_fallback(model_dir, threads=1)
    from finpulse.runtime.card import ModelCard

    dim = ModelCard.read(settings.model.sentiment_path()).data.get("embedding_dim")
    return model_or_fallback(model_dir, dim=int(dim or 384), threads=1, with_encoder=False)


def register(
    app: Any,
    topics: StreamTopics,
    settings: Settings,
    metrics: StreamMetrics,
    writer_factory: Callable[[], BulkWriter],
    model_factory: Callable[[], RecommendModel] | None = None,
) -> RecommendService:
    """Add the candidate, click and index agents, their tables and the user view to ``app``."""
    rec = settings.recommend
    specs = {spec.name: spec for spec in t.TOPICS}

    def topic(base: str) -> Any:
        return app.topic(t.topic_name(settings.kafka, base), key_serializer="raw", value_serializer="raw",
                         partitions=specs[base].partitions)

    clicks, clicks_dlq, recommendations = topic(t.CLICKS), topic(t.CLICKS_DLQ), topic(t.RECOMMENDATIONS)
    model_dir = settings.recommend_model_path()
    service = RecommendService(settings, model_factory or (lambda: _load_model(settings, model_dir)))
    candidates = app.GlobalTable(
        CANDIDATES_TABLE, default=None, key_type=str,
        partitions=topics.news_scored.partitions, recovery_buffer_size=1, help="article id → embedding and metadata",
    )
    profiles = app.Table(
        # bytes keys (raw, as on the clicks topic), so table_route finds the partition the producer chose
        PROFILES_TABLE, default=None, key_type=bytes, partitions=clicks.partitions,
        help="user id (UTF-8) → recent clicks and user vector",
    )
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finpulse-recommend")

    def sync_pool() -> None:
        """Mirror the table into the pool: rows written by other workers, and rows they deleted."""
        pool = service.candidates
        keys = set()
        for key, value in list(candidates.items()):
            keys.add(key)
            if key not in pool.index and value is not None:
                service.add_candidate(key, value)
        for key in [k for k in pool.index if k not in keys]:
            pool.remove(key)

    @app.agent(topics.news_scored, name="finpulse.recommend.candidates")
    async def candidate_agent(stream: Any) -> None:
        from finpulse.recommend.es_vectors import VectorStore
        from finpulse.sinks.elasticsearch import make_async_es_client

        store = VectorStore(make_async_es_client(settings.elasticsearch))
        service.vector_store = store
        try:
            await _candidates(stream, store)
        finally:
            await store.close()

    async def _candidates(stream: Any, store: Any) -> None:
        from finpulse.recommend.es_vectors import VectorUpdate
        from finpulse.streams.indexing import news_index

        loop = asyncio.get_running_loop()
        model = service.model
        sync_pool()
        warned = False
        prefix = settings.elasticsearch.index_prefix
        async with batches(stream, settings.stream.batch_size, settings.stream.batch_wait_s) as taken:
            async for events in taken:
                metrics.events_in.labels("recommend.candidates").inc(len(events))
                articles: list[tuple[Any, ScoredArticle]] = []
                for event in events:
                    result = decode(event.value, ScoredArticle, 64 * 1024 * 1024)
                    if isinstance(result, Err):
                        raise SerializationBug(f"unreadable record on {event.message.topic}: {result.reason}")
                    articles.append((event, result.value))
                carried = [a.embedding is not None and len(a.embedding) == model.dim for _, a in articles]
                missing = [a.text_for_model() for (_, a), ok in zip(articles, carried, strict=True) if not ok]
                computed = np.zeros((0, model.dim), np.float32)
                if missing and model.encoder is not None:
                    computed = await loop.run_in_executor(executor, model.encoder.embed, missing)
                elif missing and not warned:
                    logger.warning("articles without an embedding and no news encoder: they are not candidates")
                    warned = True
                now = time.time()
                j = 0
                updates = []
                fresh: list[tuple[Any, ScoredArticle, float]] = []
                embeddings: list[np.ndarray] = []
                for (event, article), ok in zip(articles, carried, strict=True):
                    if ok:
                        vector = np.asarray(article.embedding, np.float32)
                    elif model.encoder is not None:
                        vector = computed[j]
                        j += 1
                        updates.append(VectorUpdate(news_index(prefix, article.published_at or article.fetched_at), article.id,
                                                    rounded_rows(vector[None])[0], now))
                    else:
                        metrics.duplicates.labels("recommend.no_embedding").inc()
                        continue
                    when = (article.published_at or article.fetched_at).timestamp()
                    if now - when <= rec.freshness_window_s:
                        fresh.append((event, article, when))
                        embeddings.append(vector)
                if fresh:
                    # one matrix operation for the batch's news vectors (category-aware when the model learned them)
                    vectors = model.news_vectors(np.stack(embeddings),
                                                 [(a.tickers, a.text_for_model()) for _, a, _ in fresh])
                    for (event, article, when), vector in zip(fresh, vectors, strict=True):
                        value = {
                            "v": pack_vector(vector), "t": when, "title": article.title[:500],
                            "url": article.url,
                            "tickers": list(article.tickers), "p": event.message.partition,
                        }
                        with in_event(event):
                            candidates[article.id] = value
                        service.add_candidate(article.id, value, vector)
                if articles:
                    _evict(articles[-1][0], time.time())
                if updates:
                    await store.add(updates)  # the article's document in the news index gets its embedding
                metrics.events_out.labels("recommend.candidates").inc(len(articles))

    def _evict(event: Any, now: float) -> None:
        """Drop this partition's candidates that left the freshness window, then the oldest over the bound."""
        partition = event.message.partition
        pool = service.candidates
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
                candidates.pop(aid, None)
            pool.remove(aid)

    def ensure_pool() -> None:
        """Re-mirror the table when it and the pool disagree (a restart's recovery, another worker's writes)."""
        if len(candidates) != len(service.candidates):
            sync_pool()

    service.ensure_pool = ensure_pool

    async def emit(user_id: str, now: float, trigger: float | None) -> None:
        ensure_pool()
        profile = Profile.load(user_id, profiles.get(user_id.encode()))
        items = service.recommend(profile, now)
        record = RecommendationList(
            user_id=user_id, items=items, model_version=service.model.version, clicks_seen=profile.clicks,
            trigger_received_at=datetime.fromtimestamp(trigger, UTC) if trigger else None,
        )
        await recommendations.send(key=user_id.encode(), value=encode_checked(record))
        service.last_emit[user_id] = now
        metrics.events_out.labels("recommend.clicks").inc()

    @app.agent(clicks, name="finpulse.recommend.clicks")
    async def click_agent(stream: Any) -> None:
        _ = service.model
        async with batches(stream, 500, 0.02) as taken:
            async for events in taken:
                metrics.events_in.labels("recommend.clicks").inc(len(events))
                per_user: dict[str, tuple[Any, list[str], int, float | None]] = {}
                for event in events:
                    message = event.message
                    result = decode(event.value, ClickEvent, 64 * 1024)
                    if isinstance(result, Err):
                        letter = dead_letter(topic=message.topic, partition=message.partition, offset=message.offset,
                                             key=event.key, value=event.value, err=result)
                        await clicks_dlq.send(key=event.key, value=encode_checked(letter))
                        metrics.dlq.labels(message.topic, result.error_type).inc()
                        continue
                    click = result.value
                    last_event, clicked, shown, trigger = per_user.get(click.user_id, (event, [], 0, None))
                    if click.event_type == "click":
                        clicked.append(click.article_id)
                        received = (click.received_at or click.timestamp).timestamp()
                        trigger = received if trigger is None else min(trigger, received)
                    else:
                        shown += 1
                    per_user[click.user_id] = (event, clicked, shown, trigger)
                now = time.time()
                for user_id, (event, clicked, shown, trigger) in per_user.items():
                    profile = Profile.load(user_id, profiles.get(user_id.encode()))
                    updated = update_profile(profile, clicked, shown, service.candidates, service.model.tower,
                                             rec.profile_length, now)
                    with in_event(event):
                        profiles[user_id.encode()] = updated.dump()
                    if not clicked:
                        continue
                    if now - service.last_emit.get(user_id, 0.0) >= rec.debounce_s:
                        await emit(user_id, now, trigger)
                    else:
                        service.pending[user_id] = min(service.pending.get(user_id, trigger or now), trigger or now)

    @app.timer(interval=max(0.05, rec.debounce_s / 4) if rec.debounce_s > 0 else 1.0)
    async def flush_debounced() -> None:
        now = time.time()
        due = [u for u in service.pending if now - service.last_emit.get(u, 0.0) >= rec.debounce_s]
        for user_id in due:
            trigger = service.pending.pop(user_id)
            await emit(user_id, now, trigger)

    @app.timer(interval=POOL_SYNC_INTERVAL_S)
    async def sync_candidates() -> None:
        if service._model is not None:
            ensure_pool()
        if service.vector_store is not None:
            await service.vector_store.flush()

    prefix = settings.elasticsearch.index_prefix
    key = settings.pseudonym_key

    @app.agent(recommendations, name="finpulse.recommend.index")
    async def index_agent(stream: Any) -> None:
        writer = writer_factory()
        try:
            async with batches(stream, settings.stream.index_batch_size, settings.stream.index_wait_s) as taken:
                async for events in taken:
                    docs = []
                    for event in events:
                        result = decode(event.value, RecommendationList, 16 * 1024 * 1024)
                        if isinstance(result, Err):
                            raise SerializationBug(f"unreadable record on {event.message.topic}: {result.reason}")
                        listing = result.value
                        pseudonym = pseudonymise(listing.user_id, key)
                        docs.extend(recommendation_documents(
                            listing, pseudonym, recommendations_index(prefix, listing.generated_at)))
                    await writer.write(docs)
                    metrics.events_out.labels("recommend.index").inc(len(docs))
        finally:
            await writer.close()

    if settings.stream.web_port:
        _register_view(app, profiles, service)
    return service


def _register_view(app: Any, profiles: Any, service: RecommendService) -> None:
    from faust import web

    @app.page("/v1/users/{user_id}/recommendations")
    class UserRecommendations(web.View):
        """``GET /v1/users/<id>/recommendations``: the user's current top-K, from the owner of the profile."""

        @app.table_route(table=profiles, match_info="user_id")
        async def get(self, request: web.Request, user_id: str) -> web.Response:
            value = profiles.get(user_id.encode())
            if value is None:
                return self.json({"user_id": user_id, "error": "no clicks seen for this user"}, status=404)
            profile = Profile.load(user_id, value)
            service.ensure_pool()
            items = service.recommend(profile, time.time())
            return self.json({
                "user_id": user_id, "model_version": service.model.version, "clicks_seen": profile.clicks,
                "candidates": len(service.candidates),
                "items": [item.model_dump(mode="json") for item in items],
            })
