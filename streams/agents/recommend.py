"""The live recommendation feed: ``news.scored`` → candidates, ``clicks`` → profiles → ``recommendations``.

This module holds what the three agents share (:class:`RecommendParts`: the model, the candidate pool, the
tables and topics); each agent family has its own module: :mod:`.candidates`, :mod:`.clicks`, :mod:`.feeds`.

* **Candidates** (agent ``finpulse.recommend.candidates``): every scored article gets a unit embedding
  (the one it carries from a shared encoder pass, else the recommendation news encoder's, which is then also
  added to the article's news document in Elasticsearch, :mod:`finpulse.streams.sinks.es_vectors`), turned into its
  news vector (plus its category and subcategory vectors when the model has them) and enters a
  bounded Faust ``GlobalTable`` of recent candidates (freshness window and maximum count from settings; the
  vector packed as one base64 string, :mod:`finpulse.contracts.packing`),
  mirrored in memory as a numpy matrix (:class:`~finpulse.export.runtime.ranking.CandidatePool`).
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

import logging
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from finpulse.contracts import topics as t
from finpulse.contracts.events import RecommendationList, RecommendedItem
from finpulse.contracts.packing import unpack_vector
from finpulse.export.runtime.ranking import CandidatePool, RankConfig, top_k
from finpulse.export.runtime.recommend import RecommendModel, model_or_fallback
from finpulse.settings import Settings
from finpulse.streams.agents.profiles import Profile
from finpulse.streams.channels import StreamTopics
from finpulse.streams.metrics import StreamMetrics
from finpulse.streams.retention import BoundedTable
from finpulse.streams.sinks.bulk import BulkWriter, Doc

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
    last_emit: OrderedDict[str, float] = field(default_factory=OrderedDict)  # user → last feed sent (epoch), oldest first
    pending: dict[str, float] = field(default_factory=dict)  # user → trigger received at (epoch)

    def note_emit(self, user_id: str, now: float) -> None:
        """Record a feed sent to ``user_id``. Entries past the debounce hold nothing back and go, and the oldest
        go while more than ``max_profiles`` users are tracked."""
        emits, r = self.last_emit, self.settings.recommend
        emits[user_id] = now
        emits.move_to_end(user_id)
        while emits:
            _, sent = next(iter(emits.items()))
            if len(emits) <= r.max_profiles and now - sent < r.debounce_s:
                break
            emits.popitem(last=False)

    def defer(self, user_id: str, trigger: float) -> bool:
        """Hold ``user_id``'s feed until its debounce has passed; False (send it at once) when ``max_profiles``
        other users already wait."""
        if user_id not in self.pending and len(self.pending) >= self.settings.recommend.max_profiles:
            return False
        self.pending[user_id] = min(self.pending.get(user_id, trigger), trigger)
        return True

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
    from finpulse.export.runtime.card import ModelCard

    dim = ModelCard.read(settings.model.sentiment_path()).data.get("embedding_dim")
    return model_or_fallback(model_dir, dim=int(dim or 384), threads=1, with_encoder=False)


@dataclass
class RecommendParts:
    """What the candidate, click and feed agents of one worker share: topics, tables, the service and its thread."""

    app: Any
    topics: StreamTopics
    settings: Settings
    metrics: StreamMetrics
    writer_factory: Callable[[], BulkWriter]
    service: RecommendService
    clicks: Any
    clicks_dlq: Any
    recommendations: Any
    candidates: Any  # GlobalTable: article id → packed vector and metadata
    profiles: Any  # Table: user id (UTF-8 bytes) → Profile dict
    executor: ThreadPoolExecutor
    profile_bounds: BoundedTable  # idle profiles expire, the least recently active go over the cap

    @classmethod
    def build(cls, app: Any, topics: StreamTopics, settings: Settings, metrics: StreamMetrics,
              writer_factory: Callable[[], BulkWriter],
              model_factory: Callable[[], RecommendModel] | None = None) -> RecommendParts:
        """Declare the recommendation topics and tables on ``app``."""
        specs = {spec.name: spec for spec in t.TOPICS}

        def topic(base: str) -> Any:
            return app.topic(t.topic_name(settings.kafka, base), key_serializer="raw", value_serializer="raw",
                             partitions=specs[base].partitions)

        clicks = topic(t.CLICKS)
        model_dir = settings.recommend_model_path()
        service = RecommendService(settings, model_factory or (lambda: _load_model(settings, model_dir)))
        candidates = app.GlobalTable(
            CANDIDATES_TABLE, default=None, key_type=str, partitions=topics.news_scored.partitions,
            recovery_buffer_size=1, help="article id → embedding and metadata",
        )
        profiles = app.Table(
            # bytes keys (raw, as on the clicks topic), so table_route finds the partition the producer chose
            PROFILES_TABLE, default=None, key_type=bytes, partitions=clicks.partitions,
            help="user id (UTF-8) → recent clicks and user vector",
        )
        bounds = BoundedTable(
            profiles, clicks.get_topic_name(), clicks.partitions, idle_s=settings.recommend.profile_idle_s,
            max_count=settings.recommend.max_profiles, last_used=lambda value: float(value.get("updated_at", 0.0)),
            partition_of=lambda _key, value: value.get("p"),
        )
        parts = cls(app, topics, settings, metrics, writer_factory, service, clicks, topic(t.CLICKS_DLQ),
                    topic(t.RECOMMENDATIONS), candidates, profiles,
                    ThreadPoolExecutor(max_workers=1, thread_name_prefix="finpulse-recommend"), bounds)
        service.ensure_pool = parts.ensure_pool
        return parts

    def sync_pool(self) -> None:
        """Mirror the table into the pool: rows written by other workers, and rows they deleted."""
        pool = self.service.candidates
        keys = set()
        for key, value in list(self.candidates.items()):
            keys.add(key)
            if key not in pool.index and value is not None:
                self.service.add_candidate(key, value)
        for key in [k for k in pool.index if k not in keys]:
            pool.remove(key)

    def ensure_pool(self) -> None:
        """Re-mirror the table when it and the pool disagree (a restart's recovery, another worker's writes)."""
        if len(self.candidates) != len(self.service.candidates):
            self.sync_pool()
