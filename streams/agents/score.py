"""``news.raw`` → validate, de-duplicate, score in micro-batches → ``news.scored`` + observations.

Bad records go to ``news.raw.dlq`` with their raw bytes and a reason. Article ids already seen (within
the TTL) are dropped; a *re-delivery* of the very same message (same partition and offset, after a
crash before the offset was committed) is scored again, because its output may never have been sent:
downstream writes are idempotent by article id, so this costs nothing but time. Seen ids past the TTL, and the
oldest over ``stream.dedup_max_ids``, are deleted from the table (:mod:`~finpulse.streams.retention`).

A scored batch's records are produced and acknowledged in the background (:class:`OrderedFinisher`)
while the next batch is in the model; its offsets are acknowledged only once Kafka has acknowledged
every record, and batches finish in order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from finpulse.contracts.codecs import Err, dead_letter, decode, encode_checked
from finpulse.contracts.records import MARKET_KEY, NewsArticle, ScoredArticle, SentimentObservation
from finpulse.settings import Settings
from finpulse.streams.agents.finishing import OrderedFinisher
from finpulse.streams.channels import StreamTopics, batches, in_event
from finpulse.streams.metrics import StreamMetrics
from finpulse.streams.retention import BoundedTable

logger = logging.getLogger(__name__)

AGENT = "score"


class Prediction(Protocol):
    label: str
    probabilities: Mapping[str, float]
    embedding: list[float] | None


class Scorer(Protocol):
    model_version: str

    def score(self, texts: Sequence[str]) -> Sequence[Prediction]: ...


class EmbeddingRuntime(Protocol):
    model_version: str

    def score(self, texts: Sequence[str], embed: bool = False) -> Sequence[Prediction]: ...


class EmbeddingScorer:
    """A :class:`Scorer` whose predictions carry each text's embedding from the same pass (shared encoder)."""

    def __init__(self, runtime: EmbeddingRuntime) -> None:
        self._runtime = runtime
        self.model_version = runtime.model_version

    def score(self, texts: Sequence[str]) -> Sequence[Prediction]:
        return self._runtime.score(texts, embed=True)


def to_scored(article: NewsArticle, prediction: Prediction, model_version: str) -> ScoredArticle:
    """The scored record of a validated article. Built without validating again (the article's fields were
    validated when it was decoded, a 384-float embedding would be validated twice): :func:`encode_checked`,
    which every scored record goes through, reads it back and raises on anything invalid."""
    probabilities = {label: float(p) for label, p in prediction.probabilities.items()}
    return ScoredArticle.model_construct(
        **dict(article),
        label=prediction.label,  # type: ignore[arg-type]
        probabilities=probabilities,  # type: ignore[arg-type]
        negative_score=probabilities.get("negative", 0.0),
        model_version=model_version,
        embedding=prediction.embedding,
    )


def observations(scored: ScoredArticle, negative_threshold: float) -> list[SentimentObservation]:
    """One observation per ticker of the article, plus one for the market as a whole."""
    event_time = scored.published_at or scored.fetched_at
    negative = scored.label == "negative" or scored.negative_score >= negative_threshold
    return [
        SentimentObservation(
            key=key,
            article_id=scored.id,
            event_time=event_time,
            negative=negative,
            negative_score=scored.negative_score,
            title=scored.title[:500],
            url=scored.url,
            published_at=scored.published_at,
        )
        for key in [*scored.tickers, MARKET_KEY]
    ]


class Deduplicator:
    """Seen article ids in a Faust table: value = [partition, offset, first_seen_epoch].

    ``bounds`` (the worker's) counts the ids added, so a table over its cap is swept at once.
    """

    def __init__(self, table: Any, ttl_s: float, clock: Callable[[], float] = time.time,
                 bounds: BoundedTable | None = None) -> None:
        self._table = table
        self._ttl_s = ttl_s
        self._clock = clock
        self._bounds = bounds

    def is_duplicate(self, event: Any, article_id: str) -> bool:
        now = self._clock()
        message = event.message
        seen = self._table.get(article_id)
        if seen is not None:
            partition, offset, first_seen = seen
            same_message = partition == message.partition and offset == message.offset
            if not same_message and now - first_seen < self._ttl_s:
                return True
        with in_event(event):
            self._table[article_id] = [message.partition, message.offset, now]
        if seen is None and self._bounds is not None:
            self._bounds.added(now)
        return False


def seen_bounds(table: Any, topics: StreamTopics, settings: Settings) -> BoundedTable:
    """The seen ids expire once the TTL no longer counts them as duplicates; the oldest go first over the cap."""
    stream = settings.stream
    return BoundedTable(
        table, topics.news_raw.get_topic_name(), topics.news_raw.partitions, idle_s=stream.dedup_ttl_s,
        max_count=stream.dedup_max_ids, last_used=lambda value: float(value[2]),
        partition_of=lambda _key, value: int(value[0]),
    )


def register(
    app: Any,
    topics: StreamTopics,
    settings: Settings,
    metrics: StreamMetrics,
    scorer_factory: Callable[[], Scorer],
) -> None:
    """Add the scoring agent, its de-duplication table and the table's expiry timer to ``app``."""
    seen = app.Table(
        "seen-articles", default=None, partitions=topics.news_raw.partitions, help="article id → first sighting"
    )
    bounds = seen_bounds(seen, topics, settings)
    agent = ScoreAgent(topics, settings, metrics, scorer_factory, seen, bounds)
    app.agent(topics.news_raw, name="finpulse.score")(agent.run)

    @app.timer(interval=settings.stream.sweep_interval_s)
    async def expire_seen_articles() -> None:
        bounds.expire(time.time())


class ScoreAgent:
    """Decode, de-duplicate and score micro-batches; produce their records while the next batch is in the model."""

    def __init__(self, topics: StreamTopics, settings: Settings, metrics: StreamMetrics,
                 scorer_factory: Callable[[], Scorer], seen: Any, bounds: BoundedTable | None = None) -> None:
        self.topics, self.settings, self.metrics = topics, settings, metrics
        self.scorer_factory, self.seen, self.bounds = scorer_factory, seen, bounds
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finpulse-score")

    async def run(self, stream: Any) -> None:
        scorer = self.scorer_factory()
        logger.info("scoring with model %s", scorer.model_version)
        stream_settings, metrics = self.settings.stream, self.metrics
        dedup = Deduplicator(self.seen, stream_settings.dedup_ttl_s, bounds=self.bounds)
        loop = asyncio.get_running_loop()
        # While one batch's records are produced and acknowledged in the background, the next is in the model.
        async with batches(stream, stream_settings.batch_size, stream_settings.batch_wait_s) as taken, \
                OrderedFinisher("finpulse.score") as finisher:
            async for events in taken:
                metrics.events_in.labels(AGENT).inc(len(events))
                deliveries: list[Awaitable[Any]] = []
                batch = await self._admit(events, dedup, deliveries)
                predictions: Sequence[Prediction] = []
                if batch:
                    metrics.batch_size.labels(AGENT).observe(len(batch))
                    started = time.perf_counter()
                    predictions = await loop.run_in_executor(self.executor, scorer.score,
                                                             [a.text_for_model() for a in batch])
                    metrics.inference_seconds.observe(time.perf_counter() - started)
                await finisher.submit(events, functools.partial(self._finish, scorer.model_version, batch,
                                                                predictions, deliveries))

    async def _admit(self, events: Sequence[Any], dedup: Deduplicator,
                     deliveries: list[Awaitable[Any]]) -> list[NewsArticle]:
        """The batch's new articles; undecodable records go to the dead-letter topic (their produce awaited with
        the batch's), duplicates are counted and dropped."""
        batch: list[NewsArticle] = []
        for event in events:
            message = event.message
            result = decode(event.value, NewsArticle, self.settings.stream.max_body_bytes)
            if isinstance(result, Err):
                letter = dead_letter(
                    topic=message.topic, partition=message.partition, offset=message.offset,
                    key=event.key, value=event.value, err=result,
                )
                deliveries.append(await self.topics.news_raw_dlq.send(key=event.key, value=encode_checked(letter)))
                self.metrics.dlq.labels(message.topic, result.error_type).inc()
                logger.info("dead-lettered %s[%d]@%d: %s", message.topic, message.partition,
                            message.offset, result.reason[:200])
                continue
            if dedup.is_duplicate(event, result.value.id):
                self.metrics.duplicates.labels(AGENT).inc()
                continue
            batch.append(result.value)
        return batch

    async def _finish(self, model_version: str, batch: Sequence[NewsArticle], predictions: Sequence[Prediction],
                      deliveries: list[Awaitable[Any]]) -> None:
        """Produce a scored batch's records; return once Kafka acknowledged every one (a failed produce
        raises: the batch stays unacknowledged and is re-delivered instead of skipped)."""
        topics, threshold = self.topics, self.settings.spike.negative_threshold
        for article, prediction in zip(batch, predictions, strict=True):
            scored = to_scored(article, prediction, model_version)
            deliveries.append(await topics.news_scored.send(key=article.id.encode(), value=encode_checked(scored)))
            for obs in observations(scored, threshold):
                deliveries.append(await topics.observations.send(key=obs.key.encode(), value=obs.to_bytes()))
        await asyncio.gather(*deliveries)
        self.metrics.events_out.labels(AGENT).inc(len(batch))
