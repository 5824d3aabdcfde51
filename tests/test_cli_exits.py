"""How every finpulse command ends: exit codes by kind of error, one clear line, and no secret in any output."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finpulse.exceptions import EXIT_CODES, FinpulseError

ROOM_ERRORS = [
    "finpulse.contracts.exceptions", "finpulse.tagging.exceptions", "finpulse.demo.exceptions",
    "finpulse.dashboard.exceptions", "finpulse.bench.exceptions", "finpulse.streams.exceptions",
    "finpulse.streams.sinks.exceptions", "finpulse.streams.sources.exceptions", "finpulse.models.exceptions",
    "finpulse.export.exceptions", "finpulse.export.runtime.exceptions", "finpulse.infra.stack.exceptions",
    "finpulse.infra.topics_admin",
]
SECRET = "never-printed-0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_named_error_exits_with_a_documented_code_of_its_room() -> None:
    for module in ROOM_ERRORS:
        importlib.import_module(module)
    errors = _subclasses(FinpulseError)
    assert len(errors) > 30
    for error in errors:
        assert error.exit_code in EXIT_CODES and error.exit_code >= 3, error


def _finpulse(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
    return subprocess.run([sys.executable, "-m", "finpulse", *args], env={**base, **env}, capture_output=True,
                          text=True, timeout=60)


def test_a_settings_error_is_one_line_on_stderr_and_exit_code_3(tmp_path: Path) -> None:
    done = _finpulse("--env-file", str(tmp_path / "none.env"), "config", "show",
                     FINPULSE_KAFKA__SESSION_TIMEOUT_S="soon")
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("error: ") and "FINPULSE_KAFKA__SESSION_TIMEOUT_S" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize("crash", ["directory-as-input", "missing-model"])
def test_a_failing_command_never_prints_the_secrets_in_its_settings(crash: str, tmp_path: Path) -> None:
    source = tmp_path if crash == "directory-as-input" else tmp_path / "in.txt"
    if crash == "missing-model":
        source.write_text("a headline\n")
    done = _finpulse("--env-file", str(tmp_path / "none.env"), "model", "predict", "sentiment", str(source),
                     FINPULSE_MODEL__ARTIFACTS_DIR=str(tmp_path / "artifacts"), FINPULSE_RECOMMEND__API_TOKEN=SECRET,
                     FINPULSE_ALERTA__API_KEY=SECRET, FINPULSE_PSEUDONYM_KEY=SECRET,
                     FINPULSE_ELASTICSEARCH__PASSWORD=SECRET, FINPULSE_KAFKA__SASL_PASSWORD=SECRET)
    assert done.returncode != 0
    assert SECRET not in done.stdout + done.stderr
