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

from finpulse.settings import KafkaSecurityProtocol, KafkaSettings
from finpulse.sources.exceptions import ProducerError

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
) -> dict[str, Any]:
    """kafka-python ``KafkaProducer`` keyword arguments for ``kafka``."""
    config: dict[str, Any] = {
        "bootstrap_servers": kafka.broker_list(),
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": linger_ms,
        "batch_size": batch_bytes,
        "retries": 5,
        "request_timeout_ms": int(kafka.request_timeout_s * 1000),
        "security_protocol": kafka.security_protocol.value,
    }
    if kafka.security_protocol is KafkaSecurityProtocol.SASL_SSL:
        config["sasl_mechanism"] = kafka.sasl_mechanism
        config["sasl_plain_username"] = kafka.sasl_username
        config["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        if kafka.ssl_cafile is not None:
            config["ssl_cafile"] = str(kafka.ssl_cafile)
    return config


def async_producer_config(
    kafka: KafkaSettings,
    *,
    client_id: str = DEFAULT_CLIENT_ID,
    linger_ms: int = DEFAULT_LINGER_MS,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> dict[str, Any]:
    """aiokafka ``AIOKafkaProducer`` keyword arguments for ``kafka``."""
    config: dict[str, Any] = {
        "bootstrap_servers": kafka.broker_list(),
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": linger_ms,
        "max_batch_size": batch_bytes,
        "request_timeout_ms": int(kafka.request_timeout_s * 1000),
        "security_protocol": kafka.security_protocol.value,
    }
    if kafka.security_protocol is KafkaSecurityProtocol.SASL_SSL:
        from aiokafka.helpers import create_ssl_context

        config["sasl_mechanism"] = kafka.sasl_mechanism
        config["sasl_plain_username"] = kafka.sasl_username
        config["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        config["ssl_context"] = create_ssl_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
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
    """An aiokafka producer, not started yet (``await producer.start()``); ``options`` as :func:`async_producer_config`."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(**async_producer_config(kafka, **options))
