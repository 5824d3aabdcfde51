"""``finpulse model ...``: predict writes JSONL on stdout (logs on stderr), build is cached, a name a command has no
meaning for is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finpulse.cli import app

pytestmark = pytest.mark.slow


def _env(artifacts: Path) -> dict[str, str]:
    return {
        "FINPULSE_MODEL__ARTIFACTS_DIR": str(artifacts),
        "FINPULSE_MODEL__PROVIDERS": '["cpu"]',
        "FINPULSE_ENV_FILE": os.environ["FINPULSE_ENV_FILE"],  # the suite's empty env file (tests/conftest.py)
    }


def test_predict_lines_and_jsonl(tiny_artifacts: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a1", "text": "Acme surges"}\nplain headline line\n\n{"text": ""}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["model", "predict", "sentiment", str(src)], env=_env(tiny_artifacts))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["text"] for r in rows] == ["Acme surges", "plain headline line", ""]
    assert rows[0]["id"] == "a1"
    for row in rows:
        assert row["label"] in {"negative", "neutral", "positive"}
        assert set(row["probabilities"]) == {"negative", "neutral", "positive"}
        assert row["model_version"].endswith("+int8")


def test_predict_stdin(tiny_artifacts: Path) -> None:
    result = CliRunner().invoke(app, ["model", "predict", "sentiment", "-"], input="one\ntwo\n", env=_env(tiny_artifacts))
    assert result.exit_code == 0, result.output
    assert len([line for line in result.stdout.splitlines() if line.startswith("{")]) == 2


def test_build_is_cached(tiny_artifacts: Path) -> None:
    result = CliRunner().invoke(app, ["model", "build", "sentiment"], env=_env(tiny_artifacts))
    assert result.exit_code == 0, result.output
    assert "up to date" in result.stdout


def test_predict_writes_only_jsonl_on_stdout_and_its_logs_on_stderr(tiny_artifacts: Path) -> None:
    """As a user runs it: ``finpulse model predict sentiment - > out.jsonl`` must give a file of JSON lines."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}, **_env(tiny_artifacts),
           "FINPULSE_LOG_LEVEL": "DEBUG"}
    done = subprocess.run([sys.executable, "-m", "finpulse", "model", "predict", "sentiment", "-"], input="one\ntwo\n",
                          env=env, capture_output=True, text=True, timeout=120, check=True)
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["text"] for row in rows] == ["one", "two"]
    assert done.stderr.strip(), "the run's log lines go to stderr"


@pytest.mark.parametrize("command", ["predict"])
def test_a_model_name_the_command_has_no_meaning_for_is_refused(command: str, tiny_artifacts: Path) -> None:
    result = CliRunner().invoke(app, ["model", command, "recommend", "-"], input="x\n", env=_env(tiny_artifacts))
    assert result.exit_code == 2
    assert "predict runs the sentiment model" in " ".join(result.output.replace("│", " ").split())
