"""Kafka security settings for a real cluster: SSL (mutual TLS), SASL_PLAINTEXT and SASL_SSL with PLAIN or SCRAM, as
kafka-python, aiokafka and Faust take them; the TLS context proven by a real handshake with a loopback TLS server
that requires the client certificate."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from finpulse.exceptions import SettingsError
from finpulse.infra.kafka_clients import connection_config, ssl_context
from finpulse.settings import KafkaSettings, load_settings


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=finpulse test CA", cwd=d)
    for name, extra in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)
        (d / f"{name}.ext").write_text(extra + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    return d


def _mtls(pki: Path, **extra: object) -> KafkaSettings:
    return KafkaSettings(security_protocol="SSL", ssl_cafile=pki / "ca.pem", ssl_certfile=pki / "client.pem",
                         ssl_keyfile=pki / "client.key", **extra)


def _tls_server(pki: Path) -> tuple[socket.socket, list[str]]:
    """A loopback TLS server that requires a client certificate signed by the CA; records each handshake's result."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.pem"))
    context.load_cert_chain(str(pki / "server.pem"), str(pki / "server.key"))
    context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    results: list[str] = []

    def serve() -> None:
        for _ in range(2):
            conn, _addr = listener.accept()
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    results.append(tls.getpeercert()["subject"][0][0][1])
            except (ssl.SSLError, OSError) as exc:
                results.append(f"refused: {type(exc).__name__}")

    threading.Thread(target=serve, daemon=True).start()
    return listener, results


def _handshake(context: ssl.SSLContext, port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.do_handshake()
        tls.recv(1)  # the server closes after the handshake; a refused certificate raises here


def test_mutual_tls_context_passes_a_handshake_that_requires_the_client_certificate(pki: Path) -> None:
    listener, results = _tls_server(pki)
    port = listener.getsockname()[1]
    context = ssl_context(_mtls(pki))
    assert context is not None
    _handshake(context, port)
    without_cert = ssl_context(KafkaSettings(security_protocol="SSL", ssl_cafile=pki / "ca.pem"))
    assert without_cert is not None
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        _handshake(without_cert, port)
    listener.close()
    assert results[0] == "client" and results[1].startswith("refused")


def test_each_client_library_gets_the_tls_and_sasl_settings(pki: Path) -> None:
    kafka = _mtls(pki, ssl_key_password="pw-not-needed", ssl_check_hostname=False)
    plain = connection_config(kafka, "c1")
    assert plain["security_protocol"] == "SSL" and plain["ssl_check_hostname"] is False
    assert plain["ssl_cafile"] == str(pki / "ca.pem") and plain["ssl_certfile"] == str(pki / "client.pem")
    assert plain["ssl_keyfile"] == str(pki / "client.key") and plain["ssl_password"] == "pw-not-needed"
    assert "sasl_mechanism" not in plain
    scram = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512", sasl_username="svc",
                          sasl_password="pw")
    for library in (False, True):
        config = connection_config(scram, "c2", for_aiokafka=library)
        assert config["security_protocol"] == "SASL_PLAINTEXT" and config["sasl_mechanism"] == "SCRAM-SHA-512"
        assert config["sasl_plain_username"] == "svc" and config["sasl_plain_password"] == "pw"
        assert "ssl_context" not in config and "ssl_cafile" not in config


def test_faust_gets_credentials_of_the_right_protocol(pki: Path) -> None:
    from finpulse.streams.app import _broker_credentials

    assert _broker_credentials(KafkaSettings()) is None
    tls = _broker_credentials(_mtls(pki))
    assert tls.protocol.value == "SSL" and isinstance(tls.context, ssl.SSLContext)
    scram = _broker_credentials(KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                                              sasl_username="svc", sasl_password="pw"))
    assert scram.protocol.value == "SASL_PLAINTEXT" and scram.mechanism.value == "SCRAM-SHA-256"
    over_tls = _broker_credentials(KafkaSettings(security_protocol="SASL_SSL", sasl_username="svc", sasl_password="pw",
                                                 ssl_cafile=pki / "ca.pem"))
    assert over_tls.protocol.value == "SASL_SSL" and over_tls.ssl_context is not None


@pytest.mark.parametrize(("values", "message"), [
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "svc"}, "needs sasl_username and sasl_password"),
    ({"security_protocol": "SSL", "ssl_certfile": "client.pem"}, "needs both ssl_certfile and ssl_keyfile"),
    ({"security_protocol": "PLAINTEXT", "ssl_cafile": "ca.pem"}, "does not use TLS"),
])
def test_inconsistent_security_settings_are_refused(values: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(Path("/nonexistent.env"), kafka=values)


def test_secrets_come_from_files_named_like_their_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "FINPULSE_KAFKA__SASL_PASSWORD").write_text("from-a-file\n")
    (secrets / "FINPULSE_ALERTA__API_KEY").write_text("alerta-key")
    (secrets / "FINPULSE_PSEUDONYM_KEY").write_text("p" * 40)
    monkeypatch.setenv("FINPULSE_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("FINPULSE_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("FINPULSE_KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("FINPULSE_ALERTA__API_KEY", "from-the-environment")
    settings = load_settings(tmp_path / "none.env")
    assert settings.kafka.sasl_password is not None and settings.kafka.sasl_password.get_secret_value() == "from-a-file"
    assert settings.pseudonym_key.get_secret_value() == "p" * 40
    assert settings.alerta.api_key is not None and settings.alerta.api_key.get_secret_value() == "from-the-environment"
    monkeypatch.setenv("FINPULSE_SECRETS_DIR", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="FINPULSE_SECRETS_DIR"):
        load_settings(tmp_path / "none.env")
