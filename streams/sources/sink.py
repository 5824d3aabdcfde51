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
    """Anything that takes articles (Kafka in production, a list in unit tests).

    ``send`` returns once the article is safely taken (for Kafka: acknowledged) and raises
    :class:`~finpulse.streams.sources.exceptions.ProducerError` when it was not: the scraper remembers an article
    as sent only after ``send`` returned.
    """

    async def send(self, article: NewsArticle) -> None: ...


class ListSink:
    """Keeps the articles in memory (tests, dry runs)."""

    def __init__(self) -> None:
        self.articles: list[NewsArticle] = []

    async def send(self, article: NewsArticle) -> None:
        self.articles.append(article)


class KafkaArticleSink:
    """Produces articles to ``news.raw`` (under the topic prefix), keyed by article id.

    Use as ``async with KafkaArticleSink(settings.kafka) as sink: await sink.send(article)``. ``send`` waits for
    Kafka's acknowledgement (records sent at once still share batches) and raises ProducerError when the record
    was not delivered, e.g. when the broker stayed unreachable past the request timeout. Failures are counted.
    """

    def __init__(self, kafka: KafkaSettings, *, topic: str | None = None, client_id: str = "finpulse-scraper") -> None:
        self.kafka = kafka
        self.topic = topic or topic_name(kafka, NEWS_RAW)
        self.client_id = client_id
        self.sent = 0
        self.failed = 0
        self._producer: AIOKafkaProducer | None = None

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

        value, key = article.to_bytes(), article.id.encode("ascii")  # our own serialisation: a bug here must crash
        try:
            delivery = await self._producer.send(self.topic, value=value, key=key)
            await asyncio.shield(delivery)  # a cancelled poll must not cancel the producer's own future
        except KafkaError as exc:
            self.failed += 1
            raise ProducerError(f"article {article.id} not delivered to {self.topic}: {exc!r}") from exc
        self.sent += 1

    async def flush(self) -> None:
        if self._producer is not None:
            await self._producer.flush()

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
