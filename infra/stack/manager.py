"""Starts, checks and stops the embedded stack: Elasticsearch API (osmem), Kafka (Tansu), PostgreSQL, Alerta.

``up`` is idempotent: a server whose pid file names a live, healthy process is kept. A failed ``up``
stops every server it started before raising. ``up`` writes ``<state_dir>/stack.env`` (mode 0600) with the
``FINPULSE_`` settings that point finpulse at the servers, and a random pseudonym key made once per state dir
(``<state_dir>/pseudonym_key``): the worker, the clicks API and the dashboard refuse the default one.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from finpulse.infra.stack import process
from finpulse.infra.stack.alerta import AlertaServer, secret_file
from finpulse.infra.stack.base import Server
from finpulse.infra.stack.elasticsearch import ElasticsearchServer
from finpulse.infra.stack.exceptions import PortInUseError, UnknownServerError
from finpulse.infra.stack.kafka import KafkaServer
from finpulse.infra.stack.postgres import PostgresServer
from finpulse.settings import StackSettings

logger = logging.getLogger(__name__)

ENV_FILE_NAME = "stack.env"
#: The random pseudonym key of this state dir (mode 0600), kept across ups so that pseudonyms stay stable.
PSEUDONYM_KEY_FILE = "pseudonym_key"


@dataclass(frozen=True)
class ServerStatus:
    """One server as ``up``, ``down`` or ``status`` found or left it."""

    name: str
    host: str
    port: int
    pid: int | None
    running: bool
    healthy: bool
    action: str  # started, kept, restarted, stopped, not running, running, unhealthy
    startup_s: float | None
    log_file: Path
    detail: str = ""


def settings_on_free_ports(state_dir: Path, **extra: Any) -> StackSettings:
    """Stack settings with four distinct ports the OS reports free now (tests, side-by-side stacks)."""
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(process.free_port())
    kafka, elasticsearch, postgres, alerta = sorted(ports)
    return StackSettings(state_dir=state_dir, kafka_port=kafka, elasticsearch_port=elasticsearch,
                         postgres_port=postgres, alerta_port=alerta, **extra)


class Stack:
    """The embedded servers of one state directory."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir.expanduser().resolve()
        postgres = PostgresServer(settings)
        self.elasticsearch = ElasticsearchServer(settings)
        self.kafka = KafkaServer(settings)
        self.postgres = postgres
        self.alerta = AlertaServer(settings, postgres)
        # Start order; stop order is the reverse (Alerta before its database).
        self.servers: list[Server] = [self.elasticsearch, self.kafka, self.postgres, self.alerta]

    @property
    def env_file(self) -> Path:
        return self.state_dir / ENV_FILE_NAME

    def server(self, name: str) -> Server:
        for server in self.servers:
            if server.name == name:
                return server
        raise UnknownServerError(f"no server {name!r}; the stack has {', '.join(s.name for s in self.servers)}")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One ``up``/``down`` at a time per state dir (a second waits for the first)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "logs").mkdir(exist_ok=True)
        with (self.state_dir / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _live_record(self, server: Server) -> process.PidRecord | None:
        record = process.PidRecord.read(server.pid_file)
        if record is None:
            return None
        if process.process_alive(record.pid, record.create_time):
            return record
        logger.info("%s: removing stale pid file (pid %d is gone)", server.name, record.pid)
        server.pid_file.unlink(missing_ok=True)
        return None

    def up(self) -> list[ServerStatus]:
        """Start every server that is not already running and healthy; write the env file."""
        t0 = time.monotonic()
        with self._locked():
            plan: list[tuple[Server, str]] = []
            for server in self.servers:
                record = self._live_record(server)
                if record is None:
                    plan.append((server, "started"))
                    continue
                why = server.probe() if process.port_answers(record.host, record.port) else "port closed"
                if record.port == server.port and why is None:
                    plan.append((server, "kept"))
                    continue
                logger.warning("%s: pid %d is running but %s; restarting it", server.name, record.pid,
                               why or f"on port {record.port}, not {server.port}")
                process.stop_group(server.name, record.pid, server.stop_signal, self.settings.stop_timeout_s)
                server.pid_file.unlink(missing_ok=True)
                plan.append((server, "restarted"))
            for server, action in plan:
                if action != "kept" and not process.port_is_free(server.host, server.port):
                    raise PortInUseError(server.name, server.host, server.port)
            started: list[Server] = []
            statuses: list[ServerStatus] = []
            try:
                for server, action in plan:
                    if action == "kept":
                        record = process.PidRecord.read(server.pid_file)
                        assert record is not None
                        statuses.append(self._status(server, record, True, "kept"))
                        continue
                    record = self._start(server)
                    started.append(server)
                    statuses.append(self._status(server, record, True, action))
                self._write_env_file()
            except BaseException:
                for server in reversed(started):
                    self._stop(server)
                raise
        logger.info("stack up in %.2f s (state dir %s)", time.monotonic() - t0, self.state_dir)
        return statuses

    def _start(self, server: Server) -> process.PidRecord:
        t0 = time.monotonic()
        server.data_dir.mkdir(parents=True, exist_ok=True)
        server.prepare()
        proc = process.spawn(server.command(), server.log_file, server.environment(), server.data_dir, server.run_as())
        try:
            process.wait_ready(server.name, proc, lambda: self._check(server), self.settings.start_timeout_s,
                               server.log_file)
            server.after_ready()
            create_time = psutil.Process(proc.pid).create_time()
        except BaseException:
            process.stop_group(server.name, proc.pid, server.stop_signal, self.settings.stop_timeout_s)
            raise
        record = process.PidRecord(
            name=server.name, pid=proc.pid, create_time=create_time, host=server.host, port=server.port,
            started_at=time.time(), startup_s=round(time.monotonic() - t0, 3), log_file=str(server.log_file),
        )
        record.write(server.pid_file)
        logger.info("%s ready at %s in %.2f s (pid %d, log %s)", server.name, server.url(), record.startup_s,
                    proc.pid, server.log_file)
        return record

    @staticmethod
    def _check(server: Server) -> str | None:
        if not process.port_answers(server.host, server.port):
            return f"port {server.host}:{server.port} not open"
        return server.probe()

    def _stop(self, server: Server) -> bool:
        record = process.PidRecord.read(server.pid_file)
        stopped = False
        if record is not None and process.process_alive(record.pid, record.create_time):
            logger.info("%s: stopping pid %d", server.name, record.pid)
            process.stop_group(server.name, record.pid, server.stop_signal, self.settings.stop_timeout_s)
            stopped = True
        server.pid_file.unlink(missing_ok=True)
        return stopped

    def down(self) -> list[ServerStatus]:
        """Stop every server (reverse start order) and remove the env file."""
        with self._locked():
            statuses = []
            for server in reversed(self.servers):
                record = process.PidRecord.read(server.pid_file)
                stopped = self._stop(server)
                statuses.append(ServerStatus(
                    server.name, server.host, record.port if record else server.port, record.pid if record else None,
                    False, False, "stopped" if stopped else "not running", None, server.log_file,
                ))
            self.env_file.unlink(missing_ok=True)
        return list(reversed(statuses))

    def status(self) -> list[ServerStatus]:
        """Each server's pid, port and health (one real request each)."""
        statuses = []
        for server in self.servers:
            record = process.PidRecord.read(server.pid_file)
            if record is None or not process.process_alive(record.pid, record.create_time):
                statuses.append(ServerStatus(server.name, server.host, server.port, None, False, False, "not running",
                                             None, server.log_file))
                continue
            why = self._check(server) if record.port == server.port else f"runs on port {record.port}"
            statuses.append(self._status(server, record, why is None, "running" if why is None else "unhealthy", why))
        return statuses

    @staticmethod
    def _status(server: Server, record: process.PidRecord, healthy: bool, action: str,
                detail: str | None = None) -> ServerStatus:
        return ServerStatus(server.name, record.host, record.port, record.pid, True, healthy, action,
                            record.startup_s, server.log_file, detail or "")

    def pseudonym_key(self) -> str:
        """This state dir's random pseudonym key, made on first use."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return secret_file(self.state_dir / PSEUDONYM_KEY_FILE, 32)

    def env_values(self) -> dict[str, str]:
        """The FINPULSE_ settings that point finpulse at this stack, with its random pseudonym key."""
        return {
            "FINPULSE_PSEUDONYM_KEY": self.pseudonym_key(),
            "FINPULSE_KAFKA__BOOTSTRAP_SERVERS": self.kafka.url(),
            "FINPULSE_ELASTICSEARCH__URL": self.elasticsearch.url(),
            "FINPULSE_ELASTICSEARCH__COMPAT_JSON": "true",
            "FINPULSE_ALERTA__ENDPOINT": self.alerta.url(),
            "FINPULSE_ALERTA__API_KEY": self.alerta.api_key(),
            # so that later `finpulse stack status|down|logs` find the same servers without the same variables
            "FINPULSE_STACK__HOST": self.settings.host,
            "FINPULSE_STACK__KAFKA_PORT": str(self.settings.kafka_port),
            "FINPULSE_STACK__ELASTICSEARCH_PORT": str(self.settings.elasticsearch_port),
            "FINPULSE_STACK__POSTGRES_PORT": str(self.settings.postgres_port),
            "FINPULSE_STACK__ALERTA_PORT": str(self.settings.alerta_port),
        }

    def _write_env_file(self) -> None:
        tmp = self.env_file.with_suffix(".env.tmp")
        tmp.touch(mode=0o600)
        lines = [f"# written by `finpulse stack up` at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}"]
        lines += [f"{key}={value}" for key, value in self.env_values().items()]
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.env_file)
