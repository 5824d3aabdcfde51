"""Worker processes of the benchmark: ``python -m finpulse worker`` with the benchmark's settings."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import psutil

from finpulse.settings import Settings, child_process_env

logger = logging.getLogger(__name__)


@dataclass
class BenchWorker:
    """One worker process, sampled with psutil (peak RSS, CPU seconds)."""

    settings: Settings
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    peak_rss: int = 0
    _ps: Any = field(default=None, repr=False)

    def start(self) -> Self:
        env = child_process_env(self.settings)
        env["PYTHONUNBUFFERED"] = "1"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "finpulse", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._ps = psutil.Process(self.proc.pid)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sample(self) -> tuple[float, int]:
        """CPU seconds (user + system) so far and the current RSS; updates the peak RSS."""
        try:
            cpu = self._ps.cpu_times()
            rss = int(self._ps.memory_info().rss)
        except psutil.NoSuchProcess:
            return 0.0, 0
        self.peak_rss = max(self.peak_rss, rss)
        return float(cpu.user + cpu.system), rss

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("worker %d did not stop in %.0f s; killing it", self.proc.pid, timeout)
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


@dataclass
class ServerCpu:
    """CPU seconds of the embedded stack's Kafka broker and search server (read from their pid files) and of
    this benchmark process (its document counter), which share the machine with the workers."""

    names: tuple[str, ...] = ("kafka", "elasticsearch")
    _procs: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def of_stack(cls, state_dir: Path) -> ServerCpu:
        from finpulse.infra.stack.process import PidRecord

        sampler = cls()
        for name in sampler.names:
            record = PidRecord.read(state_dir / f"{name}.pid")
            if record is None:
                logger.warning("no pid file of %s in %s: its CPU is not measured", name, state_dir)
                continue
            try:
                sampler._procs[name] = psutil.Process(record.pid)
            except psutil.NoSuchProcess:
                logger.warning("%s (pid %d) is gone: its CPU is not measured", name, record.pid)
        sampler._procs["bench"] = psutil.Process()
        return sampler

    def watch(self, name: str, pid: int) -> None:
        """Sample one more process under ``name`` (its waited-for children included, as a server's)."""
        self._procs[name] = psutil.Process(pid)

    def sample(self) -> dict[str, float]:
        """CPU seconds (user + system; a server's children included) by process name."""
        out: dict[str, float] = {}
        for name, proc in self._procs.items():
            try:
                cpu = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            children = 0.0 if name == "bench" else cpu.children_user + cpu.children_system
            out[name] = float(cpu.user + cpu.system + children)
        return out
