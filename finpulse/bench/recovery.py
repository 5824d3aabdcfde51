"""``finpulse bench recovery``: how long a worker takes to restore its tables after a restart, per table store.

For each store (memory, rocksdb) and table size, a worker of the alerts role starts once with empty tables (its
start-up cost), then ``N`` spike-state entries are written to the ``spike-state`` changelog exactly as the spike
agent writes them (Faust's JSON key and value), and the worker is started twice more: the first start restores the
N entries from the changelog (cold), the second is the restart the figure is about. A memory store replays the
whole changelog at every start; a RocksDB store keeps the table and its changelog offsets on disk and reads only
what the changelog gained since. The time of a start is from the process start to Faust's "Worker ready" (the end
of recovery), and the restored table is checked through the worker's spike view for sample keys.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from finpulse.bench.exceptions import BenchError, BenchTimeout
from finpulse.bench.workers import BenchWorker
from finpulse.settings import Settings

logger = logging.getLogger(__name__)

READY_LINE = "Worker ready"
TABLE = "spike-state"
SAMPLE_KEYS = 5


@dataclass(frozen=True)
class RecoveryRun:
    """One store and table size: seconds from process start to "Worker ready" at each start."""

    store: str
    keys: int
    empty_s: float  # no table entries: the worker's own start-up
    cold_s: float  # first start with the N entries in the changelog
    restart_s: float  # the restart: memory replays again, rocksdb reads only what is new
    verified_keys: int  # sample keys the restarted worker's spike view found

    @property
    def restore_s(self) -> float:
        """The restart's time beyond the start-up of a worker with empty tables."""
        return max(0.0, self.restart_s - self.empty_s)


def _entry(key: str, now: float) -> dict[str, Any]:
    from finpulse.settings import SpikeSettings
    from finpulse.streams.detect.entry import SpikeEntry
    from finpulse.streams.detect.spikes import SpikeDetector

    return SpikeEntry(SpikeDetector(SpikeSettings()).new_state(key), [], now).dump()


def run_settings(settings: Settings, store: str, keys: int, work: Path) -> Settings:
    """The settings of one run: a group, topics and local data of its own, the alerts role, the log sink only."""
    from finpulse.infra.stack.process import free_port

    tag = f"rec-{store}-{keys}-{uuid.uuid4().hex[:6]}"
    data = settings.model_dump()
    data["kafka"].update(topic_prefix=f"{tag}.", consumer_group=tag)
    data["elasticsearch"]["index_prefix"] = tag
    data["stream"].update(roles=["alerts"], store=store, data_dir=str(work / tag), web_port=free_port(),
                          metrics_port=free_port())
    data["alerts"]["sinks"] = ["log"]
    return Settings.model_validate(data)


def _start_until_ready(settings: Settings, log: Path, timeout_s: float) -> tuple[BenchWorker, float]:
    started = time.monotonic()
    worker = BenchWorker(settings, log).start()
    while time.monotonic() - started < timeout_s:
        if READY_LINE in log.read_text(errors="replace"):
            return worker, time.monotonic() - started
        if not worker.alive:
            raise BenchError(f"the worker exited with {worker.proc.returncode if worker.proc else '?'}: "
                             f"{worker.log_tail()}")
        time.sleep(0.05)
    worker.stop()
    raise BenchTimeout(f"no {READY_LINE!r} within {timeout_s:.0f} s: {worker.log_tail()}")


def _timed_start(settings: Settings, log: Path, timeout_s: float, check: Sequence[str] = ()) -> tuple[float, int]:
    """Seconds to "Worker ready", and how many of ``check``'s keys the spike view found; the worker is stopped."""
    worker, seconds = _start_until_ready(settings, log, timeout_s)
    try:
        found = sum(1 for key in check if _has_key(settings, key))
    finally:
        worker.stop()
    return seconds, found


def _has_key(settings: Settings, key: str) -> bool:
    url = f"http://127.0.0.1:{settings.stream.web_port}/spikes/{key}/"
    for _ in range(50):
        response = httpx.get(url, timeout=10)
        if response.status_code == 200:
            return True
        time.sleep(0.1)
    return False


def write_changelog(settings: Settings, keys: int) -> list[str]:
    """Write ``keys`` spike-state entries to the worker's ``spike-state`` changelog; returns the keys."""
    from kafka import KafkaProducer

    from finpulse.infra.kafka_clients import connection_config

    topic = f"{settings.worker_app_id()}-{TABLE}-changelog"
    names = [f"K{i:06d}" for i in range(keys)]
    now = time.time()
    producer = KafkaProducer(**connection_config(settings.kafka, "finpulse-bench-recovery"), acks="all",
                             linger_ms=20, batch_size=256 * 1024)
    try:
        futures = [producer.send(topic, key=json.dumps(name).encode(), value=json.dumps(_entry(name, now)).encode())
                   for name in names]
        producer.flush(120)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close()
    return names


def measure(settings: Settings, store: str, keys: int, work: Path, timeout_s: float = 600.0) -> RecoveryRun:
    """One store and table size (see the module docstring)."""
    run = run_settings(settings, store, keys, work)
    logs = work / f"{run.kafka.consumer_group}-logs"
    empty_s, _ = _timed_start(run, logs / "empty.log", timeout_s)  # also creates the topics and the changelog
    names = write_changelog(run, keys)
    sample = [names[int(i * (len(names) - 1) / max(1, SAMPLE_KEYS - 1))] for i in range(SAMPLE_KEYS)]
    cold_s, _ = _timed_start(run, logs / "cold.log", timeout_s)
    restart_s, found = _timed_start(run, logs / "restart.log", timeout_s, sample)
    return RecoveryRun(store, keys, empty_s, cold_s, restart_s, found)


def run_recovery_bench(settings: Settings, sizes: Sequence[int], stores: Sequence[str],
                       on_step: Callable[[str], None] = logger.info) -> list[RecoveryRun]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="finpulse-recovery-") as tmp:
        for keys in sizes:
            for store in stores:
                on_step(f"{store}, {keys} keys")
                runs.append(measure(settings, store, keys, Path(tmp)))
                on_step(f"{store}, {keys} keys: restart {runs[-1].restart_s:.1f} s")
    return runs


def report(runs: Sequence[RecoveryRun]) -> dict[str, Any]:
    return {"runs": [{**asdict(run), "restore_s": run.restore_s} for run in runs]}


def lines(runs: Sequence[RecoveryRun]) -> list[str]:
    out = ["| store | keys | empty start s | cold start s | restart s | restart - empty s | keys verified |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        out.append(f"| {r.store} | {r.keys:,} | {r.empty_s:.1f} | {r.cold_s:.1f} | {r.restart_s:.1f} | "
                   f"{r.restore_s:.1f} | {r.verified_keys}/{SAMPLE_KEYS} |")
    return out
