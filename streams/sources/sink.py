"""Where produced articles go: the :class:`ArticleSink` protocol and its Kafka implementation."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from finpulse.contracts.records import NewsArticle
from finpulse.contracts.topics import NEWS_RAW, topic_name
from finpulse.settings import KafkaSettings
from finpulse.streams.sources.exceptions import ProducerError
from finpulse.streams.sources.producer import make_async_producer

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

logger = logging.getLogger(__name__)


@runtime_checkable
class ArticleSink(Protocol):
    """Anything that takes articles (Kafka in production, a list in unit tests)."""

    async def send(self, article: NewsArticle) -> None: ...


class ListSink:
    """Keeps the articles in memory (tests, dry runs)."""

    def __init__(self) -> None:
        self.articles: list[NewsArticle] = []

    async def send(self, article: NewsArticle) -> None:
        self.articles.append(article)


class KafkaArticleSink:
    """Produces articles to ``news.raw`` (under the topic prefix), keyed by article id.

    Use as ``async with KafkaArticleSink(settings.kafka) as sink: await sink.send(article)``; leaving the
    block waits for every record to be acknowledged. Delivery failures are counted and logged.
    """

    def __init__(self, kafka: KafkaSettings, *, topic: str | None = None, client_id: str = "finpulse-scraper") -> None:
        self.kafka = kafka
        self.topic = topic or topic_name(kafka, NEWS_RAW)
        self.client_id = client_id
        self.sent = 0
        self.failed = 0
        self._producer: AIOKafkaProducer | None = None
        self._pending: set[asyncio.Future[object]] = set()

    async def start(self) -> None:
        from aiokafka.errors import KafkaError

        producer = make_async_producer(self.kafka, client_id=self.client_id)
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise ProducerError(f"cannot reach Kafka at {self.kafka.bootstrap_servers}: {exc!r}") from exc
        self._producer = producer

    async def send(self, article: NewsArticle) -> None:
        if self._producer is None:
            raise RuntimeError("KafkaArticleSink.send before start()")
        from aiokafka.errors import KafkaError

        try:
            future = await self._producer.send(self.topic, value=article.to_bytes(), key=article.id.encode("ascii"))
        except KafkaError as exc:
            self.failed += 1
            raise ProducerError(f"cannot send article {article.id} to {self.topic}: {exc!r}") from exc
        self._pending.add(future)
        future.add_done_callback(self._delivered)

    def _delivered(self, future: asyncio.Future[object]) -> None:
        self._pending.discard(future)
        if future.cancelled() or future.exception() is not None:
            self.failed += 1
            logger.error("delivery to %s failed: %r", self.topic, None if future.cancelled() else future.exception())
        else:
            self.sent += 1

    async def flush(self) -> None:
        if self._producer is not None:
            await self._producer.flush()
            if self._pending:
                await asyncio.gather(*self._pending, return_exceptions=True)

    async def stop(self) -> None:
        if self._producer is not None:
            try:
                await self.flush()
            finally:
                await self._producer.stop()
                self._producer = None

    async def __aenter__(self) -> KafkaArticleSink:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
