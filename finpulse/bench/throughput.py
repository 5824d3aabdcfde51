"""The pipeline benchmark's end-to-end runs: ``news.raw`` pre-loaded, then worker processes time first → last
document acknowledged by Elasticsearch, with their CPU and peak RSS (and, on request, a py-spy profile)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from finpulse.bench.config import BenchConfig, BenchResult
from finpulse.bench.exceptions import BenchError, BenchTimeout
from finpulse.bench.runs import EsCounter, check_alive, prepare, publish, run_settings, start_workers
from finpulse.bench.workers import ServerCpu
from finpulse.contracts.records import NewsArticle
from finpulse.settings import Settings

logger = logging.getLogger(__name__)

POLL_S = 0.05
MAX_COUNT_WAIT_S = 0.5


def count_wait_s(remaining: int, rate: float) -> float:
    """Seconds until the throughput run's next ``_count``: every :data:`POLL_S` until the first document
    and in the last stretch, a quarter of the time the remaining documents need at the rate so far in
    between (at most :data:`MAX_COUNT_WAIT_S`). Each ``_count`` costs the search server CPU the pipeline
    then lacks; the first and the last document are still seen within :data:`POLL_S`, unless the rate
    quadruples at the very end."""
    if rate <= 0:
        return POLL_S
    return min(MAX_COUNT_WAIT_S, max(POLL_S, 0.25 * remaining / rate))


def throughput_run(base: Settings, config: BenchConfig, model_dir: Path, items: Sequence[NewsArticle],
                   workers: int, profile_to: Path | None = None, recommender: bool = True,
                   shared: Path | None = None) -> dict[str, float]:
    """Pre-load ``items`` into news.raw, start ``workers`` worker processes, time first → last document indexed."""
    off = None if recommender else config.out_dir / "no-recommender-model"
    tag = f"e2e{workers}{'' if recommender else 's'}{'x' if shared else ''}"
    settings = run_settings(base, model_dir, config.thread_count, tag, off, config.out_dir / "faust", shared)
    prepare(settings)
    stats = publish(settings, items)
    if stats.failed:
        raise BenchError(f"{stats.failed} articles were not acknowledged by Kafka")
    n = len(items)
    counter = EsCounter(settings)
    procs = start_workers(settings, workers, config.out_dir / "logs")
    servers = ServerCpu.of_stack(settings.stack.state_dir)
    spy = _start_profile(procs[0].pid, profile_to) if profile_to else None
    try:
        deadline = time.monotonic() + config.timeout_s
        first: tuple[float, int, float] | None = None
        servers0: dict[str, float] = {}
        last, count, count_at = 0, 0, 0.0
        while True:
            now = time.time()
            cpu = sum(w.sample()[0] for w in procs)  # every tick: the peak RSS is not missed
            if now >= count_at:
                count = counter.count()
                if first is None and count > 0:
                    first = (now, count, cpu)
                    servers0 = servers.sample()
                if count >= n:
                    last = count
                    break
                rate = (count - first[1]) / (now - first[0]) if first is not None and now > first[0] else 0.0
                count_at = now + count_wait_s(n - count, rate)
            check_alive(procs)
            if time.monotonic() > deadline:
                raise BenchTimeout(f"{count} of {n} documents indexed after {config.timeout_s:.0f} s")
            time.sleep(POLL_S)
        assert first is not None
        t0, c0, cpu0 = first
        elapsed = max(1e-6, now - t0)
        docs = last - c0
        servers1 = servers.sample()
        server_cpu = {f"{name}_cpu_s_per_1k": (servers1[name] - servers0[name]) / max(1, docs) * 1000
                      for name in servers1 if name in servers0}
        return {
            "docs_per_s": docs / elapsed,
            "cpu_s_per_1k": (cpu - cpu0) / max(1, docs) * 1000,
            **server_cpu,
            "peak_rss_mb": max(w.peak_rss for w in procs) / 2**20,
            "elapsed_s": elapsed,
        }
    finally:
        if spy is not None:
            _stop_profile(spy)
        for w in procs:
            w.stop()
        counter.close()


def end_to_end_round(settings: Settings, config: BenchConfig, model_dir: Path, items: Sequence[NewsArticle],
                     repeat: int, result: BenchResult, step: Callable[[str], None]) -> None:
    """One repeat of every end-to-end figure: 1 worker (profiled in the first repeat when asked), then as configured
    1 worker with the recommendation encoder off, 1 worker with one shared encoder pass, and 2 workers."""
    at = f"repeat {repeat + 1}/{config.repeats}"
    step(f"{at}: end to end, 1 worker")
    profile_to = config.out_dir / "worker-profile.txt" if (config.profile and repeat == 0) else None
    for name, value in throughput_run(settings, config, model_dir, items, 1, profile_to).items():
        result.add(f"e2e1_{name}", value)
    if config.recommender_off_too:
        step(f"{at}: end to end, 1 worker, recommendation encoder off")
        for name, value in throughput_run(settings, config, model_dir, items, 1, recommender=False).items():
            result.add(f"e2e1s_{name}", value)
    if config.shared_recommender is not None:
        step(f"{at}: end to end, 1 worker, one shared encoder pass")
        for name, value in throughput_run(settings, config, model_dir, items, 1, shared=config.shared_recommender).items():
            result.add(f"e2e1x_{name}", value)
    if config.two_workers:
        step(f"{at}: end to end, 2 workers")
        for name, value in throughput_run(settings, config, model_dir, items, 2).items():
            result.add(f"e2e2_{name}", value)


def _start_profile(pid: int, out: Path) -> Any:
    import shutil
    import subprocess
    import sys

    # the environment's own scripts dir first: the CLI may run from a venv that is not on PATH
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if exe is None:
        logger.warning("py-spy is not installed: no profile (pip install py-spy)")
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "50", "--format", "raw", "--threads",
                             "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_profile(spy: Any) -> None:
    import signal
    import subprocess

    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        logger.warning("py-spy did not stop; killing it")
        spy.kill()
