"""A private Tansu broker behind a Kafka-protocol fault proxy, for faults the embedded broker cannot produce itself.

Tansu enforces no retention and has no DeleteRecords (infra/stack/QUIRKS.md), so a partition's log start never
rises above 0, and it accepts every produce. This helper starts its own Tansu (memory storage) that listens on
one port and advertises the proxy's port, so every client (the worker's, the test's) talks to it through the
proxy, which forwards every byte and changes only what a fault needs:

* :meth:`KafkaFaultBroker.set_log_start`: the partition behaves as if retention had deleted every record below
  ``offset``: a Fetch from below it is answered OFFSET_OUT_OF_RANGE (what a real broker answers), ListOffsets
  (earliest) and every Fetch report ``offset`` as the log start. The records stay in Tansu; only the answers
  change, so the partition must be written one record per batch (a batch that straddles the log start would be
  refused whole).
* :meth:`KafkaFaultBroker.refuse_produce`: produce answers for a topic carry MESSAGE_TOO_LARGE (not retriable):
  the producer's futures fail as when a broker refuses a record (Tansu has stored it all the same).

Only Fetch v5-v11, ListOffsets v1-v5 and Produce v3-v8 answers (what aiokafka speaks) are rewritten; every other
request and answer passes unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Self

logger = logging.getLogger(__name__)

PRODUCE, FETCH, LIST_OFFSETS = 0, 1, 2
OFFSET_OUT_OF_RANGE = 1
MESSAGE_TOO_LARGE = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _frame(reader: asyncio.StreamReader) -> bytes | None:
    try:
        size = struct.unpack(">i", await reader.readexactly(4))[0]
        return await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


class KafkaFaultBroker:
    """A Tansu process and the proxy in front of it (asyncio, in a thread of the test process)."""

    def __init__(self, log_dir: Path) -> None:
        self.broker_port = _free_port()
        self.port = _free_port()
        self.log_dir = log_dir
        self.log_starts: dict[tuple[str, int], int] = {}
        self.refused_topics: set[str] = set()
        self.refused = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kafka-fault-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_log_start(self, topic: str, partition: int, offset: int) -> None:
        self.log_starts[(topic, partition)] = offset

    def refuse_produce(self, topic: str) -> None:
        self.refused_topics.add(topic)

    def start(self) -> Self:
        from finpulse.infra.stack.kafka import metadata_brokers, tansu_binary

        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / "tansu.log").open("ab") as log:
            self._proc = subprocess.Popen(
                [str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{self.broker_port}",
                 "--advertised-listener-url", f"tcp://127.0.0.1:{self.port}", "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT, env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
                start_new_session=True,
            )
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", self.port), self._loop).result(10)
        deadline = time.monotonic() + 30
        while True:
            try:
                if ("127.0.0.1", self.port) in [(h, p) for _, h, p in metadata_brokers("127.0.0.1", self.port)]:
                    return self
            except (OSError, ValueError, struct.error) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the private Tansu did not come up: {exc}") from exc
            time.sleep(0.1)

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.broker_port)
        except OSError:
            writer.close()
            return
        asked: dict[int, tuple[int, int]] = {}  # correlation id → (api key, api version)
        requests = asyncio.ensure_future(self._requests(reader, up_writer, asked))
        try:
            while (frame := await _frame(up_reader)) is not None:
                (correlation,) = struct.unpack_from(">i", frame, 0)
                api_key, version = asked.pop(correlation, (-1, -1))
                frame = frame[:4] + self._rewrite(api_key, version, frame[4:])
                writer.write(struct.pack(">i", len(frame)) + frame)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            requests.cancel()
            for w in (writer, up_writer):
                w.close()

    @staticmethod
    async def _requests(reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter,
                        asked: dict[int, tuple[int, int]]) -> None:
        while (frame := await _frame(reader)) is not None:
            api_key, version, correlation = struct.unpack_from(">hhi", frame, 0)
            asked[correlation] = (api_key, version)
            up_writer.write(struct.pack(">i", len(frame)) + frame)
            await up_writer.drain()
        up_writer.close()

    def _rewrite(self, api_key: int, version: int, body: bytes) -> bytes:
        if api_key == FETCH and 5 <= version <= 11 and self.log_starts:
            return self._fetch(version, body)
        if api_key == LIST_OFFSETS and 1 <= version <= 5 and self.log_starts:
            return self._list_offsets(version, body)
        if api_key == PRODUCE and 3 <= version <= 8 and self.refused_topics:
            return self._produce(version, body)
        return body

    def _fetch(self, version: int, body: bytes) -> bytes:
        from aiokafka.protocol import fetch

        response = getattr(fetch, f"FetchResponse_v{version}").decode(body)
        topics = []
        for topic, partitions in response.topics:
            rows = []
            for row in partitions:
                start = self.log_starts.get((topic, row[0]))
                if start is not None:
                    row = list(row)
                    records: bytes = row[-1] or b""
                    if len(records) >= 8 and struct.unpack_from(">q", records, 0)[0] < start:
                        row[1], row[-1] = OFFSET_OUT_OF_RANGE, b""
                    row[4] = start
                    row = tuple(row)
                rows.append(row)
            topics.append((topic, rows))
        response.topics = topics
        return bytes(response.encode())

    def _list_offsets(self, version: int, body: bytes) -> bytes:
        from aiokafka.protocol import offset

        response = getattr(offset, f"OffsetResponse_v{version}").decode(body)
        response.topics = [(topic, [self._raised(topic, row) for row in partitions]) for topic, partitions in response.topics]
        return bytes(response.encode())

    def _raised(self, topic: str, row: Any) -> Any:
        start = self.log_starts.get((topic, row[0]))
        if start is None or row[1] != 0:
            return row
        row = list(row)
        row[3] = max(row[3], start)  # (partition, error, timestamp, offset[, leader epoch])
        return tuple(row)

    def _produce(self, version: int, body: bytes) -> bytes:
        from aiokafka.protocol import produce

        response = getattr(produce, f"ProduceResponse_v{version}").decode(body)
        topics = []
        for topic, partitions in response.topics:
            if topic in self.refused_topics:
                partitions = [(row[0], MESSAGE_TOO_LARGE, *row[2:]) for row in partitions]
                self.refused += 1
            topics.append((topic, partitions))
        response.topics = topics
        return bytes(response.encode())
