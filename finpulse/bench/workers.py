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

from finpulse.settings import Settings, settings_to_env

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
        env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
        env.update(settings_to_env(self.settings))
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
