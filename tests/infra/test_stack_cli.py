"""``finpulse stack up | status | down`` as a user runs them: separate processes, a tmp state dir, free ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from finpulse.infra.stack.manager import settings_on_free_ports
from finpulse.infra.stack.process import PidRecord, group_members, port_is_free
from finpulse.settings import StackSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVERS = ("elasticsearch", "kafka", "postgres", "alerta")


def _env(stack: StackSettings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
    env.update({
        "FINPULSE_STACK__STATE_DIR": str(stack.state_dir),
        "FINPULSE_STACK__KAFKA_PORT": str(stack.kafka_port),
        "FINPULSE_STACK__ELASTICSEARCH_PORT": str(stack.elasticsearch_port),
        "FINPULSE_STACK__POSTGRES_PORT": str(stack.postgres_port),
        "FINPULSE_STACK__ALERTA_PORT": str(stack.alerta_port),
        "COLUMNS": "200",
        **extra,
    })
    return env


def _finpulse(stack: StackSettings, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finpulse", *args], env=_env(stack, **extra_env), cwd=stack.state_dir.parent,
        capture_output=True, text=True, timeout=180, check=False,
    )


def _records(stack: StackSettings) -> dict[str, PidRecord]:
    records = {}
    for name in SERVERS:
        record = PidRecord.read(stack.state_dir / f"{name}.pid")
        if record is not None:
            records[name] = record
    return records


def _assert_nothing_running(stack: StackSettings, pids: list[int]) -> None:
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
        assert group_members(pid) == [], f"process group {pid} left {group_members(pid)}"
    for port in (stack.kafka_port, stack.elasticsearch_port, stack.postgres_port, stack.alerta_port):
        assert port_is_free(stack.host, port), port
    assert _records(stack) == {}


@pytest.fixture
def cli_stack(tmp_path: Path) -> Iterator[StackSettings]:
    stack = settings_on_free_ports(tmp_path / "state")
    yield stack
    _finpulse(stack, "stack", "down")  # whatever a failed test left


def test_up_is_idempotent_and_down_leaves_no_process(cli_stack: StackSettings) -> None:
    t0 = time.monotonic()
    up = _finpulse(cli_stack, "stack", "up")
    elapsed = time.monotonic() - t0
    assert up.returncode == 0, up.stderr + up.stdout
    assert up.stdout.count("started") == 4, up.stdout
    assert elapsed < 30, f"stack up took {elapsed:.1f} s"
    env_file = cli_stack.state_dir / "stack.env"
    env = env_file.read_text()
    assert f"FINPULSE_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:{cli_stack.kafka_port}" in env
    assert f"FINPULSE_ELASTICSEARCH__URL=http://127.0.0.1:{cli_stack.elasticsearch_port}" in env
    assert "FINPULSE_ELASTICSEARCH__COMPAT_JSON=true" in env
    assert f"FINPULSE_ALERTA__ENDPOINT=http://127.0.0.1:{cli_stack.alerta_port}/api" in env
    assert "FINPULSE_ALERTA__API_KEY=" in env
    assert env_file.stat().st_mode & 0o077 == 0
    first = _records(cli_stack)
    assert set(first) == set(SERVERS)

    again = _finpulse(cli_stack, "stack", "up")
    assert again.returncode == 0, again.stderr + again.stdout
    assert again.stdout.count("kept") == 4, again.stdout
    assert {n: r.pid for n, r in _records(cli_stack).items()} == {n: r.pid for n, r in first.items()}

    status = _finpulse(cli_stack, "stack", "status")
    assert status.returncode == 0, status.stdout
    assert status.stdout.count("running") == 4
    as_json = _finpulse(cli_stack, "stack", "status", "--json")
    servers = json.loads(as_json.stdout)["servers"]
    assert sorted(s["name"] for s in servers) == sorted(SERVERS) and all(s["healthy"] for s in servers)

    # the servers' own children (gunicorn workers, postgres backends) are in their process groups
    assert len(group_members(first["alerta"].pid)) >= 3
    down = _finpulse(cli_stack, "stack", "down")
    assert down.returncode == 0, down.stderr + down.stdout
    assert down.stdout.count("stopped") == 4
    _assert_nothing_running(cli_stack, [r.pid for r in first.values()])
    assert not env_file.exists()

    after = _finpulse(cli_stack, "stack", "status")
    assert after.returncode == 1
    assert after.stdout.count("not running") == 4


def test_taken_port_is_a_clear_error_and_starts_nothing(cli_stack: StackSettings) -> None:
    with socket.socket() as blocker:
        blocker.bind((cli_stack.host, cli_stack.alerta_port))
        blocker.listen()
        up = _finpulse(cli_stack, "stack", "up")
    assert up.returncode == 4  # StackError: infrastructure (finpulse.exceptions.EXIT_CODES)
    assert f"alerta: port 127.0.0.1:{cli_stack.alerta_port} is already in use" in up.stderr
    _assert_nothing_running(cli_stack, [])


def test_server_dying_at_start_is_named_and_the_others_are_stopped(cli_stack: StackSettings) -> None:
    # Tansu exits at once on a storage engine it was built without; elasticsearch was started before it.
    up = _finpulse(cli_stack, "stack", "up", FINPULSE_STACK__KAFKA_STORAGE_URL="sqlite://nowhere.db")
    assert up.returncode == 4  # StackError: infrastructure (finpulse.exceptions.EXIT_CODES)
    assert "kafka: exited with code" in up.stderr
    assert str(cli_stack.state_dir / "logs" / "kafka.log") in up.stderr
    log = (cli_stack.state_dir / "logs" / "elasticsearch.log").read_text()
    assert "starting:" in log  # it was started, and then stopped again
    _assert_nothing_running(cli_stack, [])
