"""A burst 10x the scoring rate: the worker's memory stays bounded and the backlog drains."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from finpulse.settings import Settings

from ..streams.harness import WorkerProcess, wait_for
from .support import article, count, encoded, env_int, isolated, send, send_burst, window_start

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

BURST = env_int("BURST_ARTICLES", 4000)
WARM = 200
#: Peak RSS during the burst may exceed the RSS after warm-up by this factor plus this many MB, no more.
RSS_FACTOR = 1.5
RSS_SLACK_MB = 150


def test_burst_ten_times_the_scoring_rate_keeps_memory_bounded_and_drains(
    pipeline_settings: Settings, es_client: Any, tmp_path: Path
) -> None:
    settings = isolated(pipeline_settings, tmp_path)
    when = window_start(60.0)
    warm = [article("warm", i, when + timedelta(milliseconds=i), negative=False) for i in range(WARM)]
    burst = [article("burst", i, when + timedelta(seconds=1, milliseconds=i % 50_000), negative=i % 7 == 0)
             for i in range(BURST)]
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        t_warm = time.monotonic()
        send(settings, warm)
        wait_for(lambda: count(es_client, settings) >= WARM, 180, "warm-up documents", worker)
        assert worker.proc is not None
        ps = psutil.Process(worker.proc.pid)
        time.sleep(2)
        start_rss = ps.memory_info().rss
        # The scoring rate, measured on a second small batch at steady state.
        probe = [article("probe", i, when + timedelta(milliseconds=i), negative=False) for i in range(WARM)]
        t_probe = time.monotonic()
        send(settings, probe)
        wait_for(lambda: count(es_client, settings) >= 2 * WARM, 180, "probe documents", worker)
        rate = WARM / (time.monotonic() - t_probe)

        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                try:
                    samples.append(ps.memory_info().rss)
                except psutil.NoSuchProcess:
                    return
                time.sleep(0.25)

        sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
        records = encoded(burst)  # encoded before the clock starts
        sampler.start()
        t_burst = time.monotonic()
        send_s = send_burst(settings, records)
        offered = BURST / send_s
        total = 2 * WARM + BURST
        wait_for(lambda: count(es_client, settings) >= total, 600, "the backlog to drain", worker)
        drain_s = time.monotonic() - t_burst
        done.set()
        sampler.join(5)
        time.sleep(2)
        peak = max(samples)
        ceiling = start_rss * RSS_FACTOR + RSS_SLACK_MB * 2**20
        print(f"\nscoring rate {rate:.0f}/s, burst offered at {offered:.0f}/s ({offered / rate:.1f}x) for {send_s * 1000:.0f} ms, "
              f"drained in {drain_s:.0f} s; RSS start {start_rss / 2**20:.0f} MB, peak {peak / 2**20:.0f} MB, "
              f"ceiling {ceiling / 2**20:.0f} MB; warm-up took {t_probe - t_warm:.0f} s")
        assert offered >= 10 * rate, f"the burst ({offered:.0f}/s) was not 10x the scoring rate ({rate:.0f}/s)"
        assert peak <= ceiling, f"RSS peaked at {peak / 2**20:.0f} MB from {start_rss / 2**20:.0f} MB"
        assert count(es_client, settings) == total
        assert worker.alive
    finally:
        worker.stop()
