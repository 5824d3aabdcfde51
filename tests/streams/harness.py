"""A real ``finpulse worker`` process for integration tests, and helpers to feed and observe it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from finpulse.settings import Settings, settings_to_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerProcess:
    """``python -m finpulse worker`` with the test's settings, in its own process group."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
        env.update(settings_to_env(self.settings))
        env["PYTHONUNBUFFERED"] = "1"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "finpulse", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9`` the worker (a crash: nothing is flushed)."""
        if self.proc is not None and self.alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 60.0) -> int | None:
        """Graceful stop (SIGTERM), SIGKILL if it does not end within ``timeout``."""
        if self.proc is None:
            return None
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def produce(settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    producer = KafkaProducer(bootstrap_servers=settings.kafka.broker_list(), acks="all", linger_ms=5,
                             max_request_size=16 * 1024 * 1024)
    sent = 0
    for key, value in records:
        producer.send(topic, key=key, value=value)
        sent += 1
    producer.flush(30)
    producer.close()
    return sent


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
