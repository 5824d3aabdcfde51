"""The pipeline benchmark's process CPU sampling and its table rows (no stack, no model)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from finpulse.bench.pipeline import BenchResult
from finpulse.bench.report import all_processes_cpu, rows
from finpulse.bench.workers import ServerCpu
from finpulse.infra.stack.process import PidRecord


def _record(name: str, pid: int, state_dir: Path) -> None:
    PidRecord(name=name, pid=pid, create_time=0.0, host="127.0.0.1", port=1, started_at=time.time(), startup_s=0.0,
              log_file="-").write(state_dir / f"{name}.pid")


def _sampled_around_a_busy_process(sampler_of: Callable[[int], ServerCpu]) -> tuple[dict[str, float], dict[str, float]]:
    """Two samples, 1 s apart, of the sampler ``sampler_of`` builds for the pid of a process that burns 0.6 CPU s."""
    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 0.6\nwhile time.time() < end: pass\ntime.sleep(30)"])
    try:
        sampler = sampler_of(busy.pid)
        before = sampler.sample()
        time.sleep(1.0)
        after = sampler.sample()
    finally:
        busy.kill()
    return before, after


def test_server_cpu_reads_the_pid_files_and_counts_a_busy_server(tmp_path: Path) -> None:
    def sampler_of(pid: int) -> ServerCpu:
        _record("kafka", pid, tmp_path)  # no elasticsearch.pid: that server is left out, not guessed
        return ServerCpu.of_stack(tmp_path)

    before, after = _sampled_around_a_busy_process(sampler_of)
    assert set(before) == {"kafka", "bench"}
    assert after["kafka"] - before["kafka"] > 0.2


def test_a_watched_process_is_sampled_beside_the_servers(tmp_path: Path) -> None:
    def sampler_of(pid: int) -> ServerCpu:
        sampler = ServerCpu.of_stack(tmp_path)  # no pid files: only this process, and the one watched
        sampler.watch("worker", pid)
        return sampler

    before, after = _sampled_around_a_busy_process(sampler_of)
    assert set(before) == {"bench", "worker"}
    assert after["worker"] - before["worker"] > 0.2


def test_rows_show_the_server_cpu_of_a_run_that_measured_it() -> None:
    result = BenchResult()
    for name, value in {"docs_per_s": 400.0, "peak_rss_mb": 270.0, "cpu_s_per_1k": 2.9,
                        "kafka_cpu_s_per_1k": 0.21, "elasticsearch_cpu_s_per_1k": 0.9}.items():
        result.add(f"e2e1_{name}", value)
    table = {figure: median for figure, median, _ in rows(result)}
    assert table["  1 worker: Kafka broker CPU s per 1,000 articles"] == "0.21"
    assert table["  1 worker: search server CPU s per 1,000 articles"] == "0.90"
    assert not any("document counter" in figure for figure in table)


def test_the_cpu_bound_sums_every_process_run_by_run_and_divides_the_cores() -> None:
    result = BenchResult(meta={"cores": 2})
    runs = {"cpu_s_per_1k": [3.0, 3.5, 2.0], "kafka_cpu_s_per_1k": [0.25, 0.25, 0.5],
            "elasticsearch_cpu_s_per_1k": [0.7, 1.2, 1.0], "bench_cpu_s_per_1k": [0.05, 0.05, 0.5]}
    for name, values in runs.items():
        for value in values:
            result.add(f"e2e1_{name}", value)
    result.add("e2e1_docs_per_s", 400.0)
    assert all_processes_cpu(result, "1") == 4.0  # runs total 4.0, 5.0, 4.0; the sum of medians would be 4.45
    table = {figure: median for figure, median, _ in rows(result)}
    assert table["  1 worker: the most 2 cores allow at that cost (docs/s)"] == "500.0"
    assert all_processes_cpu(result, "2") is None
