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


def _write_data_dir(root: Path) -> Path:
    """The shared-data layout, a few synthetic rows per file: twitter-fin valid, PhraseBank, the topic splits."""
    import csv

    from finpulse.export.testing import synthetic_examples, synthetic_topic_examples

    twitter_label = {0: 0, 1: 2, 2: 1}  # finpulse label index -> twitter-fin's (0 bearish, 1 bullish, 2 neutral)
    sentiment = synthetic_examples(30, seed=3)
    (root / "twitter-financial-news-sentiment").mkdir(parents=True)
    with (root / "twitter-financial-news-sentiment" / "sent_valid.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows((e.text, twitter_label[e.label]) for e in sentiment)
    (root / "financial-phrasebank").mkdir()
    labels = ("negative", "neutral", "positive")
    for level in ("50", "66", "75", "All"):
        (root / "financial-phrasebank" / f"Sentences_{level}Agree.txt").write_text(
            "".join(f"{e.text}@{labels[e.label]}\n" for e in sentiment[:12]), encoding="latin-1")
    topic_dir = root / "twitter-financial-news-topic"
    topic_dir.mkdir()
    train = synthetic_topic_examples(40, seed=1)
    valid = [type(e)(f"valid {e.text}", e.label) for e in synthetic_topic_examples(30, seed=2)]
    valid.append(type(valid[0])(f"{train[0].text}  https://t.co/again", train[0].label))  # a train tweet, new link
    for name, rows in (("topic_train.csv", train), ("topic_valid.csv", valid)):
        with (topic_dir / name).open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["text", "label"])
            writer.writerows((e.text, e.label) for e in rows)
    return root


def test_predict_writes_the_topic_beside_the_sentiment(tiny_topic_artifacts: Path, tiny_artifacts: Path) -> None:
    from finpulse.contracts.records import TOPIC_SLUGS, TOPICS

    result = CliRunner().invoke(app, ["model", "predict", "sentiment", "-"], input="Fed hikes rates\nAcme surges\n",
                                env=_env(tiny_topic_artifacts))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 2
    for row in rows:
        assert row["label"] in {"negative", "neutral", "positive"}
        assert row["topic"] in TOPIC_SLUGS and row["topic_name"] == TOPICS[TOPIC_SLUGS.index(row["topic"])]
        assert 1 / len(TOPICS) <= row["topic_probability"] <= 1.0
    old = CliRunner().invoke(app, ["model", "predict", "sentiment", "-"], input="Acme surges\n", env=_env(tiny_artifacts))
    assert old.exit_code == 0, old.output
    (row,) = [json.loads(line) for line in old.stdout.splitlines() if line.startswith("{")]
    assert "topic" not in row and "topic_probability" not in row  # a model without the head writes what it always did


def test_eval_sentiment_reports_both_heads_for_both_variants(tiny_topic_artifacts: Path, tmp_path: Path) -> None:
    data = _write_data_dir(tmp_path / "data")
    out = tmp_path / "eval"
    env = {**_env(tiny_topic_artifacts), "FINPULSE_MODEL__DATA_DIR": str(data)}
    result = CliRunner().invoke(app, ["model", "eval", "sentiment", "--json", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model_version"].startswith("sentiment-")
    for variant in ("fp32", "int8"):
        metrics = report["metrics"][variant]
        assert {"twitter-fin-valid", "phrasebank-50agree", "topic-valid", "topic-valid-unseen"} <= set(metrics)
        assert metrics["topic-valid"]["n"] == 31 and metrics["topic-valid-unseen"]["n"] == 30
        assert metrics["topic-valid"]["task"] == "topic" and metrics["twitter-fin-valid"]["task"] == "sentiment"
        for name in ("twitter-fin-valid", "topic-valid"):
            assert 0.0 <= metrics[name]["accuracy"] <= 1.0 and 0.0 <= metrics[name]["macro_f1"] <= 1.0
            assert set(metrics[name]["per_class"]) == set(metrics[name]["labels"])
    for path in report["files"]:
        assert Path(path).is_file()
    assert (out / "confusion_int8_topic-valid.png").stat().st_size > 1000
    assert (out / "confusion_fp32_twitter-fin-valid.png").is_file()
    text = CliRunner().invoke(app, ["model", "eval", "sentiment", "--out", str(out)], env=env)
    assert text.exit_code == 0, text.output
    assert "topic-valid-unseen" in text.stdout and "Fed | Central Banks" in text.stdout  # the per-class report


def test_eval_recommend_still_dispatches(tiny_artifacts: Path) -> None:
    result = CliRunner().invoke(app, ["model", "eval", "--help"], env=_env(tiny_artifacts))
    assert result.exit_code == 0
    assert "sentiment" in result.stdout and "recommend" in result.stdout
