"""``finpulse bench sentiment``: every backend measured in one run, figures and chart written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_bench_measures_every_backend_in_one_run(tiny_artifacts: Path, tmp_path: Path) -> None:
    from finpulse.bench.sentiment import BACKENDS, run_bench, write_bench
    from finpulse.export.testing import synthetic_examples
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


@pytest.fixture(scope="module")
def topic_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from finpulse.export.testing import export_tiny

    root = tmp_path_factory.mktemp("topic-bench")
    export_tiny(root / "sentiment", topics=True)
    return root / "sentiment"


def test_the_topic_head_cost_is_measured_against_the_two_output_graph_of_the_same_model(topic_artifacts: Path,
                                                                                         tmp_path: Path) -> None:
    import onnxruntime as ort

    from finpulse.bench.sentiment import HEAD_COST_BACKENDS, run_bench
    from finpulse.export.testing import synthetic_examples
    from finpulse.settings import ModelSettings

    texts = [e.text for e in synthetic_examples(16, seed=2)]
    report = run_bench(topic_artifacts / "model", topic_artifacts / "onnx", ModelSettings(providers=["cpu"]), texts,
                       repeats=2, batch_sizes=(1, 8), threads=1, head_cost_dir=tmp_path / "two-outputs")
    cost = report["head_cost"]
    two = ort.InferenceSession(str(tmp_path / "two-outputs" / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in two.get_outputs()] == ["logits", "embedding"]  # the same model without its topic head
    assert cost["outputs"] == {"ort-int8": ["logits", "topic_logits", "embedding"], "ort-int8-no-topic": ["logits", "embedding"]}
    got = {(r["backend"], r["batch_size"]) for r in cost["results"]}
    assert got == {(b, n) for b in HEAD_COST_BACKENDS for n in (1, 8)}
    assert all(len(r["runs"]) == 2 and r["seq_per_s"] > 0 for r in cost["results"])
    assert set(cost["throughput_cost"]) == {"1", "8"}
    for b in ("1", "8"):
        by = {r["backend"]: r["seq_per_s"] for r in cost["results"] if str(r["batch_size"]) == b}
        assert cost["throughput_cost"][b] == pytest.approx(1 - by["ort-int8"] / by["ort-int8-no-topic"])
    assert "head_cost" not in run_bench(topic_artifacts / "model", topic_artifacts / "onnx", ModelSettings(providers=["cpu"]),
                                        texts, repeats=1, batch_sizes=(8,), threads=1)
