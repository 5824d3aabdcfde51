"""The one place where Kafka producers of news are built from :class:`~finpulse.settings.KafkaSettings`.

Both kinds are plain (not idempotent, not transactional: the embedded Tansu broker refuses those),
wait for every in-sync replica (``acks=all``) and batch records for a few milliseconds (``linger``).
``make_producer`` gives a kafka-python ``KafkaProducer`` (threads, for synchronous code such as replay),
``make_async_producer`` an aiokafka ``AIOKafkaProducer`` (for asyncio code such as the scraper).
Kafka libraries are imported inside the functions, never at import time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from finpulse.infra.kafka_clients import connection_config
from finpulse.settings import KafkaSettings
from finpulse.streams.sources.exceptions import ProducerError

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer
    from kafka import KafkaProducer

logger = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "finpulse-source"
DEFAULT_LINGER_MS = 20
DEFAULT_BATCH_BYTES = 256 * 1024


def producer_config(
    kafka: KafkaSettings,
    *,
    client_id: str = DEFAULT_CLIENT_ID,
    linger_ms: int = DEFAULT_LINGER_MS,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    for_aiokafka: bool = False,
) -> dict[str, Any]:
    """kafka-python ``KafkaProducer`` (or, with ``for_aiokafka``, ``AIOKafkaProducer``) keyword arguments."""
    config = {
        **connection_config(kafka, client_id, for_aiokafka=for_aiokafka),
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": linger_ms,
    }
    if for_aiokafka:
        config["max_batch_size"] = batch_bytes
    else:
        config.update(batch_size=batch_bytes, retries=5)
    return config


def make_producer(kafka: KafkaSettings, **options: Any) -> KafkaProducer:
    """A connected kafka-python producer; ``options`` go to :func:`producer_config`."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    config = producer_config(kafka, **options)
    try:
        producer = KafkaProducer(**config)
    except KafkaError as exc:
        raise ProducerError(f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc!r}") from exc
    logger.debug("kafka producer %s connected to %s", config["client_id"], kafka.bootstrap_servers)
    return producer


def make_async_producer(kafka: KafkaSettings, **options: Any) -> AIOKafkaProducer:
    """An aiokafka producer, not started yet (``await producer.start()``); ``options`` as :func:`producer_config`."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(**producer_config(kafka, for_aiokafka=True, **options))
