"""Process plumbing of the stack launcher, on plain local processes (no servers)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finpulse.infra.stack.exceptions import ServerStartError
from finpulse.infra.stack.process import (
    PidRecord,
    free_port,
    group_members,
    port_answers,
    port_is_free,
    process_alive,
    spawn,
    stop_group,
    wait_ready,
)

# A parent that ignores SIGTERM and forks a child that ignores it too: only SIGKILL of the group ends both.
STUBBORN = (
    "import os, signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "if os.fork() == 0:\n"
    "    time.sleep(60)\n"
    "time.sleep(60)\n"
)


def test_pid_record_round_trip_and_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    record = PidRecord("x", 123, 1.5, "127.0.0.1", 9, 2.0, 0.25, "/tmp/x.log")
    record.write(path)
    assert PidRecord.read(path) == record
    path.write_text("{not json")
    assert PidRecord.read(path) is None
    assert not path.exists()
    assert PidRecord.read(tmp_path / "missing.pid") is None


def test_stop_group_kills_a_group_that_ignores_sigterm(tmp_path: Path) -> None:
    proc = spawn([sys.executable, "-c", STUBBORN], tmp_path / "stubborn.log")
    deadline = time.monotonic() + 10
    while len(group_members(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group_members(proc.pid)) == 2
    t0 = time.monotonic()
    stop_group("stubborn", proc.pid, signal.SIGTERM, timeout_s=0.5)
    assert time.monotonic() - t0 < 5
    assert group_members(proc.pid) == []
    assert not process_alive(proc.pid)
    assert "starting:" in (tmp_path / "stubborn.log").read_text()


def test_wait_ready_names_a_server_that_dies(tmp_path: Path) -> None:
    log = tmp_path / "dies.log"
    proc = spawn([sys.executable, "-c", "import sys; print('boom: bad flag'); sys.exit(3)"], log)
    with pytest.raises(ServerStartError) as caught:
        wait_ready("dies", proc, lambda: "not yet", 10, log)
    message = str(caught.value)
    assert "dies: exited with code 3 during start-up" in message
    assert str(log) in message
    assert "boom: bad flag" in message


def test_wait_ready_times_out_with_the_last_reason(tmp_path: Path) -> None:
    log = tmp_path / "slow.log"
    proc = spawn([sys.executable, "-c", "import time; time.sleep(30)"], log)
    try:
        with pytest.raises(ServerStartError, match=r"slow: not healthy after 0 s \(still warming\)"):
            wait_ready("slow", proc, lambda: "still warming", 0.2, log)
    finally:
        stop_group("slow", proc.pid, signal.SIGTERM, 2)


def test_ports() -> None:
    port = free_port()
    assert port_is_free("127.0.0.1", port)
    assert not port_answers("127.0.0.1", port)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert not port_is_free("127.0.0.1", port)
        assert port_answers("127.0.0.1", port)


def test_process_alive_checks_create_time() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        import psutil

        created = psutil.Process(proc.pid).create_time()
        assert process_alive(proc.pid, created)
        assert not process_alive(proc.pid, created - 100)  # same pid, another process: pid reuse
    finally:
        proc.kill()
        proc.wait()
    assert not process_alive(proc.pid)


def test_stack_logs_command_shows_the_tail_of_each_log(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from finpulse.cli import app

    logs = tmp_path / "state" / "logs"
    logs.mkdir(parents=True)
    (logs / "kafka.log").write_text("".join(f"kafka line {i}\n" for i in range(100)))
    env = {"FINPULSE_STACK__STATE_DIR": str(tmp_path / "state"), "FINPULSE_ENV_FILE": ""}
    result = CliRunner().invoke(app, ["--env-file", str(tmp_path / "none.env"), "stack", "logs", "kafka", "-n", "3"],
                                env=env)
    assert result.exit_code == 0, result.output
    assert "kafka line 99" in result.output and "kafka line 97" in result.output
    assert "kafka line 96" not in result.output
    everything = CliRunner().invoke(app, ["--env-file", str(tmp_path / "none.env"), "stack", "logs"], env=env)
    assert "alerta: no log yet" in everything.output
    unknown = CliRunner().invoke(app, ["--env-file", str(tmp_path / "none.env"), "stack", "logs", "nope"], env=env)
    assert unknown.exit_code != 0
