from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finpulse.cli import app

pytestmark = pytest.mark.slow


def _env(artifacts: Path) -> dict[str, str]:
    return {
        "FINPULSE_MODEL__ARTIFACTS_DIR": str(artifacts),
        "FINPULSE_MODEL__PROVIDERS": '["cpu"]',
        "FINPULSE_ENV_FILE": "",
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


def test_bench_measures_every_backend_in_one_run(tiny_artifacts: Path, tmp_path: Path) -> None:
    from finpulse.models.bench import BACKENDS, run_bench, write_bench
    from finpulse.models.testing import synthetic_examples
    from finpulse.settings import ModelSettings

    texts = [e.text for e in synthetic_examples(16, seed=2)]
    root = tiny_artifacts / "sentiment"
    report = run_bench(root / "model", root / "onnx", ModelSettings(providers=["cpu"]), texts, repeats=2,
                       batch_sizes=(1, 8), threads=1)
    got = {(r["backend"], r["batch_size"]) for r in report["results"]}
    assert got == {(b, n) for b in BACKENDS for n in (1, 8)}
    for r in report["results"]:
        assert len(r["runs"]) == 2 and r["seq_per_s"] > 0
    assert set(report["ratios"]) == {f"{b}/torch-fp32" for b in BACKENDS[1:]}
    assert report["allow_spinning"] is False and report["denormal_as_zero"] is True
    json_path, png_path = write_bench(report, tmp_path / "bench")
    assert json.loads(json_path.read_text())["texts"] == 16 and png_path.stat().st_size > 0
