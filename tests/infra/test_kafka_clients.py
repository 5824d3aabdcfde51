"""Kafka client connection settings built from KafkaSettings (no broker needed)."""

from __future__ import annotations

import ssl

from finpulse.infra.kafka_clients import connection_config
from finpulse.infra.topics_admin import admin_config
from finpulse.settings import load_settings
from finpulse.streams.sources.producer import producer_config

SECRET = "s3cr3t-kafka-pass"


def test_plaintext_has_no_credentials() -> None:
    kafka = load_settings(kafka={"bootstrap_servers": "a:9092,b:9092"}).kafka
    config = connection_config(kafka, "finpulse-test")
    assert config["bootstrap_servers"] == ["a:9092", "b:9092"]
    assert config["security_protocol"] == "PLAINTEXT"
    assert not any(key.startswith(("sasl_", "ssl_")) for key in config)


def test_sasl_ssl_for_kafka_python_and_aiokafka() -> None:
    kafka = load_settings(kafka={"security_protocol": "SASL_SSL", "sasl_username": "svc", "sasl_password": SECRET}).kafka
    sync = connection_config(kafka, "finpulse-test")
    assert (sync["sasl_plain_username"], sync["sasl_plain_password"]) == ("svc", SECRET)
    assert "ssl_context" not in sync
    asynchronous = connection_config(kafka, "finpulse-test", for_aiokafka=True)
    assert isinstance(asynchronous["ssl_context"], ssl.SSLContext)
    assert asynchronous["sasl_plain_password"] == SECRET


def test_clients_share_the_connection_and_add_their_own_options() -> None:
    kafka = load_settings().kafka
    producer = producer_config(kafka, client_id="p", batch_bytes=1024)
    aio = producer_config(kafka, client_id="p", batch_bytes=1024, for_aiokafka=True)
    assert producer["acks"] == aio["acks"] == "all"
    assert not producer["enable_idempotence"] and not aio["enable_idempotence"]  # Tansu refuses idempotence
    assert (producer["batch_size"], aio["max_batch_size"]) == (1024, 1024)
    assert admin_config(kafka)["client_id"] == "finpulse-admin"
    assert {k: producer[k] for k in ("bootstrap_servers", "request_timeout_ms")} == {
        k: aio[k] for k in ("bootstrap_servers", "request_timeout_ms")}
