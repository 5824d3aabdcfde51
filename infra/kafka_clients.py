"""Connection settings shared by every Kafka client finpulse builds outside Faust (producers, admin).

kafka-python and aiokafka take the same keyword names for the broker list, client id, timeouts and SASL;
they differ in TLS (kafka-python takes the files, aiokafka an ``ssl.SSLContext``, as Faust does:
:func:`ssl_context` builds it for both). Kafka libraries are imported inside the function, never at import time.
"""

from __future__ import annotations

import ssl
from typing import Any

from finpulse.settings import KafkaSettings


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context of ``kafka``'s security protocol (None without TLS): the CA bundle (or the system's), the
    client certificate and key for mutual TLS, hostname checking as set."""
    if not kafka.security_protocol.tls:
        return None
    context = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    context.check_hostname = kafka.ssl_check_hostname
    if kafka.ssl_certfile is not None and kafka.ssl_keyfile is not None:
        password = kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None
        context.load_cert_chain(str(kafka.ssl_certfile), str(kafka.ssl_keyfile), password=password)
    return context


def connection_config(kafka: KafkaSettings, client_id: str, *, for_aiokafka: bool = False) -> dict[str, Any]:
    """Keyword arguments that connect a kafka-python (or, with ``for_aiokafka``, an aiokafka) client."""
    config: dict[str, Any] = {
        "bootstrap_servers": kafka.broker_list(),
        "client_id": client_id,
        "request_timeout_ms": int(kafka.request_timeout_s * 1000),
        "security_protocol": kafka.security_protocol.value,
    }
    protocol = kafka.security_protocol
    if protocol.sasl:
        config["sasl_mechanism"] = kafka.sasl_mechanism
        config["sasl_plain_username"] = kafka.sasl_username
        config["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    if protocol.tls:
        if for_aiokafka:
            config["ssl_context"] = ssl_context(kafka)
        else:
            config["ssl_check_hostname"] = kafka.ssl_check_hostname
            for key, path in (("ssl_cafile", kafka.ssl_cafile), ("ssl_certfile", kafka.ssl_certfile),
                              ("ssl_keyfile", kafka.ssl_keyfile)):
                if path is not None:
                    config[key] = str(path)
            if kafka.ssl_key_password is not None:
                config["ssl_password"] = kafka.ssl_key_password.get_secret_value()
    return config
