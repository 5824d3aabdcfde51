"""What every embedded server tells the manager: how to prepare, run, probe and stop it."""

from __future__ import annotations

import os
import signal
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from finpulse.settings import StackSettings


class Server(ABC):
    """One embedded server; the manager owns spawning, pid files, readiness polling and stopping."""

    name: ClassVar[str]
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(self, stack: StackSettings) -> None:
        self.stack = stack
        self.state_dir = stack.state_dir.expanduser().resolve()

    @property
    def host(self) -> str:
        return self.stack.host

    @property
    @abstractmethod
    def port(self) -> int: ...

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / self.name

    def prepare(self) -> None:
        """Check the binary and write what the server needs before it starts (config, data dir)."""
        return None

    @abstractmethod
    def command(self) -> list[str]:
        """The argv that runs the server in the foreground."""

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def run_as(self) -> str | None:
        """OS user to run as (None: this process's user)."""
        return None

    @abstractmethod
    def probe(self) -> str | None:
        """One real request against the running server: None when it answered correctly, else why not."""

    def after_ready(self) -> None:
        """Work that needs the running server (e.g. create a database)."""
        return None

    @abstractmethod
    def url(self) -> str:
        """What clients connect to."""
