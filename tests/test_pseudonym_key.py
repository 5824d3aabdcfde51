"""The pseudonym key: the worker, the clicks API and the dashboard refuse a default, placeholder or short key with
exit code 3 (SettingsError), and start with the random key that ``finpulse stack up`` writes into its env file."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from finpulse.exceptions import SettingsError
from finpulse.settings import Settings, child_process_env
from tests.streams.harness import free_port

MIN_BYTES = 32
GOOD = "k" * MIN_BYTES
BAD_KEYS = {
    "default": Settings.model_fields["pseudonym_key"].default.get_secret_value(),
    "placeholder": "change-me-" + "x" * 40,
    "short": "q" * (MIN_BYTES - 1),
}


@pytest.mark.parametrize("kind", sorted(BAD_KEYS))
def test_check_refuses_default_placeholder_and_short_keys(kind: str) -> None:
    from finpulse.settings import check_pseudonym_key

    with pytest.raises(SettingsError, match="FINPULSE_PSEUDONYM_KEY") as caught:
        check_pseudonym_key(SecretStr(BAD_KEYS[kind]))
    assert BAD_KEYS[kind] not in str(caught.value)


def test_check_counts_bytes_and_accepts_a_long_random_key() -> None:
    from finpulse.settings import PSEUDONYM_KEY_MIN_BYTES, check_pseudonym_key

    assert PSEUDONYM_KEY_MIN_BYTES == MIN_BYTES
    check_pseudonym_key(SecretStr(GOOD))
    check_pseudonym_key(SecretStr("é" * (MIN_BYTES // 2)))  # 2 bytes each in UTF-8
    with pytest.raises(SettingsError, match="CHANGE-ME|change-me"):
        check_pseudonym_key(SecretStr("CHANGE-ME" + "x" * 40))


COMMANDS = {
    "worker": ["worker"],
    "clicks-api": ["clicks-api"],
    "dashboard": ["dashboard", "--port", "0"],
}


def _env(stack: Any, key: str, **extra: str) -> dict[str, str]:
    env = child_process_env(stack.settings)
    env["FINPULSE_PSEUDONYM_KEY"] = key
    env["FINPULSE_RECOMMEND__API_TOKEN"] = "a-clicks-api-token"
    env.update(extra)
    return env


@pytest.mark.integration
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", sorted(BAD_KEYS))
def test_services_refuse_to_start_with_a_weak_key(stack: Any, command: str, kind: str, tmp_path: Path) -> None:
    env = _env(stack, BAD_KEYS[kind], FINPULSE_RECOMMEND__API_PORT=str(free_port()),
               FINPULSE_STREAM__WEB_PORT=str(free_port()), FINPULSE_STREAM__METRICS_PORT=str(free_port()),
               FINPULSE_KAFKA__CONSUMER_GROUP=f"key-{kind}", FINPULSE_STREAM__DATA_DIR=str(tmp_path / "faust"))
    done = subprocess.run([sys.executable, "-m", "finpulse", *COMMANDS[command]], env=env, capture_output=True,
                          text=True, timeout=90, check=False)
    assert done.returncode == 3, done.stderr[-3000:]
    assert done.stderr.startswith("error: FINPULSE_PSEUDONYM_KEY"), done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert BAD_KEYS[kind] not in done.stdout + done.stderr


@pytest.mark.integration
@pytest.mark.parametrize("command", ["clicks-api", "dashboard"])
def test_services_start_with_the_key_the_stack_wrote(stack: Any, command: str, tmp_path: Path) -> None:
    from tests.conftest import _read_env_file

    key = _read_env_file(stack.env_file)["FINPULSE_PSEUDONYM_KEY"]
    port = free_port()
    args = ["dashboard", "--port", str(port)] if command == "dashboard" else ["clicks-api"]
    env = _env(stack, key, FINPULSE_RECOMMEND__API_PORT=str(port), FINPULSE_RECOMMEND__API_HOST="127.0.0.1")
    log = tmp_path / f"{command}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "finpulse", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(30)
