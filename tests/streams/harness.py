"""A real ``finpulse worker`` process for integration tests, and helpers to feed and observe it."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from kafka import KafkaConsumer, KafkaProducer

from finpulse.bench.workers import BenchWorker
from finpulse.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerProcess(BenchWorker):
    """``python -m finpulse worker`` with the test's settings, in its own process group."""

    def kill(self) -> None:
        """``kill -9`` the worker (a crash: nothing is flushed)."""
        if self.proc is not None and self.alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 60.0) -> int | None:
        """Graceful stop (SIGTERM), SIGKILL if it does not end within ``timeout``."""
        return super().stop(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def produce(settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    producer = KafkaProducer(bootstrap_servers=settings.kafka.broker_list(), acks="all", linger_ms=5,
                             max_request_size=16 * 1024 * 1024)
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        producer.flush(30)
        for future in futures:
            future.get(timeout=30)  # raises if the broker did not acknowledge the record
    finally:
        producer.close()
    return len(futures)


def consume_all(settings: Settings, topic: str, expect: int, timeout_s: float = 60.0) -> list[Any]:
    """Read ``topic`` from the start until ``expect`` records arrived (end offsets of Tansu are not trusted)."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=settings.kafka.broker_list(), auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None, consumer_timeout_ms=1000,
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, worker: WorkerProcess | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        if worker is not None and not worker.alive:
            raise AssertionError(f"worker died while waiting for {what}:\n{worker.log()[-5000:]}")
        time.sleep(0.5)
    tail = worker.log()[-5000:] if worker is not None else ""
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})\n{tail}")


def alerts(settings: Settings, resource: str, endpoint: str | None = None) -> list[dict[str, Any]]:
    key = settings.alerta.api_key.get_secret_value() if settings.alerta.api_key else ""
    response = httpx.get(
        f"{endpoint or settings.alerta.endpoint}/alerts", params={"resource": resource, "event": "NegativeSentimentSpike"},
        headers={"Authorization": f"Key {key}"}, timeout=10,
    )
    response.raise_for_status()
    return list(response.json()["alerts"])


def json_if(url: str, check: Any) -> dict[str, Any] | None:
    try:
        response = httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    body = response.json()
    return body if check(body) else None
