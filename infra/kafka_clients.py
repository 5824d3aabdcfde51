"""Connection settings shared by every Kafka client finpulse builds outside Faust (producers, admin).

kafka-python and aiokafka take the same keyword names for the broker list, client id, timeouts and SASL;
they differ in TLS (kafka-python takes a CA file, aiokafka an ``ssl.SSLContext``). Kafka libraries are
imported inside the function, never at import time.
"""

from __future__ import annotations

from typing import Any

from finpulse.settings import KafkaSecurityProtocol, KafkaSettings


def connection_config(kafka: KafkaSettings, client_id: str, *, for_aiokafka: bool = False) -> dict[str, Any]:
    """Keyword arguments that connect a kafka-python (or, with ``for_aiokafka``, an aiokafka) client."""
    config: dict[str, Any] = {
        "bootstrap_servers": kafka.broker_list(),
        "client_id": client_id,
        "request_timeout_ms": int(kafka.request_timeout_s * 1000),
        "security_protocol": kafka.security_protocol.value,
    }
    if kafka.security_protocol is KafkaSecurityProtocol.SASL_SSL:
        config["sasl_mechanism"] = kafka.sasl_mechanism
        config["sasl_plain_username"] = kafka.sasl_username
        config["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        cafile = str(kafka.ssl_cafile) if kafka.ssl_cafile is not None else None
        if for_aiokafka:
            from aiokafka.helpers import create_ssl_context

            config["ssl_context"] = create_ssl_context(cafile=cafile)
        elif cafile is not None:
            config["ssl_cafile"] = cafile
    return config
