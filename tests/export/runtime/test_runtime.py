from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from finpulse.export.runtime import ArtefactCorruptError, ArtefactMissingError, CardError, SentimentRuntime
from finpulse.export.runtime.sentiment import choose_providers
from finpulse.export.testing import synthetic_examples
from finpulse.settings import ModelSettings

pytestmark = pytest.mark.slow

SETTINGS = ModelSettings(providers=["cpu"], intra_op_threads=1, max_length=64)


@pytest.fixture(scope="module")
def runtime(tiny_onnx_dir: Path) -> SentimentRuntime:
    return SentimentRuntime.load(tiny_onnx_dir, "int8", SETTINGS, batch_size=8)


def test_runtime_imports_no_torch() -> None:
    code = "import sys, finpulse.export.runtime, finpulse.export.runtime.sentiment; assert 'torch' not in sys.modules, 'torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_choose_providers() -> None:
    assert choose_providers(["cuda", "cpu"], ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers(["tensorrt", "cuda"], ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["cpu"], ["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def _probs(preds: list, labels: tuple[str, ...]) -> np.ndarray:
    return np.array([[p.probabilities[k] for k in labels] for p in preds])


def test_batching_matches_one_by_one_fp32(tiny_onnx_dir: Path) -> None:
    fp32 = SentimentRuntime.load(tiny_onnx_dir, "fp32", SETTINGS, batch_size=8)
    texts = [e.text for e in synthetic_examples(40, seed=9)] + ["short", "a much longer headline " * 5, ""]
    together = fp32.score(texts)
    alone = [fp32.score([t])[0] for t in texts]
    assert [p.label for p in together] == [p.label for p in alone]
    np.testing.assert_allclose(_probs(together, fp32.labels), _probs(alone, fp32.labels), atol=1e-5)


def test_batching_close_to_one_by_one_int8(runtime: SentimentRuntime) -> None:
    """Dynamic int8 quantises activations per batch, so neighbours (and padding) move scores a little."""
    texts = [e.text for e in synthetic_examples(40, seed=9)] + ["short", "a much longer headline " * 5]
    together = runtime.score(texts)
    alone = [runtime.score([t])[0] for t in texts]
    same = np.mean([p.label == q.label for p, q in zip(together, alone, strict=True)])
    assert same >= 0.9
    moved = np.abs(_probs(together, runtime.labels) - _probs(alone, runtime.labels))
    # How far depends on the model: for the tiny test model of 2026-12-01, mean 0.015 and largest 0.059.
    assert moved.mean() <= 0.03, f"mean shift {moved.mean():.4f}"
    assert moved.max() <= 0.1, f"largest shift {moved.max():.4f}"


def test_order_and_fields(runtime: SentimentRuntime) -> None:
    texts = ["x " * 50, "y", "z " * 10]
    preds = runtime.score(texts)
    reversed_preds = runtime.score(texts[::-1])[::-1]
    for p, q in zip(preds, reversed_preds, strict=True):
        assert p.probabilities == pytest.approx(q.probabilities, abs=0.05)
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert set(p.probabilities) == {"negative", "neutral", "positive"}
        assert p.model_version.endswith("+int8")
        assert 0.0 <= p.negative_score <= 1.0
    assert runtime.score([]) == []


def test_odd_inputs_do_not_crash(runtime: SentimentRuntime) -> None:
    texts = ["", "   ", "\n\t", "x" * 100_000, "word " * 20_000, "Die Aktie fällt stark nach Gewinnwarnung",
             "株価が急落した", "📉📉 stocks 🚀🚀", "\u0000\ufffd", "السوق ينهار"]
    preds = runtime.score(texts)
    assert len(preds) == len(texts)
    assert all(np.isfinite(list(p.probabilities.values())).all() for p in preds)


def test_fp32_and_int8_both_load(tiny_onnx_dir: Path) -> None:
    fp32 = SentimentRuntime.load(tiny_onnx_dir, "fp32", SETTINGS)
    assert fp32.model_version.endswith("+fp32")
    assert fp32.providers == ["CPUExecutionProvider"]


def test_corrupt_model_refused(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    work = tmp_path / "onnx"
    shutil.copytree(tiny_onnx_dir, work)
    data = bytearray((work / "model.int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (work / "model.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtefactCorruptError, match="sha256"):
        SentimentRuntime.load(work, "int8", SETTINGS)
    SentimentRuntime.load(work, "fp32", SETTINGS)  # the untouched variant still loads


def test_swapped_tokenizer_refused(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    work = tmp_path / "onnx"
    shutil.copytree(tiny_onnx_dir, work)
    tok = json.loads((work / "tokenizer.json").read_text())
    tok["truncation"] = {"max_length": 7, "strategy": "LongestFirst", "stride": 0, "direction": "Right"}
    (work / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(ArtefactCorruptError):
        SentimentRuntime.load(work, "int8", SETTINGS)


def test_missing_and_bad_cards(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtefactMissingError, match="no model card"):
        SentimentRuntime.load(tmp_path, "int8", SETTINGS)
    work = tmp_path / "onnx"
    shutil.copytree(tiny_onnx_dir, work)
    (work / "card.json").write_text("{not json")
    with pytest.raises(CardError, match="unreadable"):
        SentimentRuntime.load(work, "int8", SETTINGS)
    (work / "card.json").write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(CardError, match="lacks"):
        SentimentRuntime.load(work, "int8", SETTINGS)
    shutil.copy(tiny_onnx_dir / "card.json", work / "card.json")
    (work / "model.int8.onnx").unlink()
    with pytest.raises(ArtefactMissingError, match="missing"):
        SentimentRuntime.load(work, "int8", SETTINGS)


def _has_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuda(), reason="needs onnxruntime-gpu with a CUDA device")
def test_cuda_io_binding_matches_cpu(tiny_onnx_dir: Path) -> None:
    texts = [e.text for e in synthetic_examples(50, seed=4)]
    cpu = SentimentRuntime.load(tiny_onnx_dir, "fp32", SETTINGS)
    gpu = SentimentRuntime.load(tiny_onnx_dir, "fp32", SETTINGS.model_copy(update={"providers": ["cuda", "cpu"]}))
    assert gpu.providers[0] == "CUDAExecutionProvider"
    assert gpu._use_iobinding
    np.testing.assert_allclose(gpu.probabilities(texts), cpu.probabilities(texts), atol=1e-3)


def test_flush_to_zero_is_set_and_changes_no_output(tiny_onnx_dir: Path) -> None:
    texts = [e.text for e in synthetic_examples(40, seed=4)] + ["short", "a much longer headline " * 5]
    on = SentimentRuntime.load(tiny_onnx_dir, "fp32", SETTINGS)
    off = SentimentRuntime.load(tiny_onnx_dir, "fp32", SETTINGS.model_copy(update={"denormal_as_zero": False}))
    entry = "session.set_denormal_as_zero"
    assert on._session.get_session_options().get_session_config_entry(entry) == "1"
    assert off._session.get_session_options().get_session_config_entry(entry) == "0"
    np.testing.assert_allclose(on.probabilities(texts), off.probabilities(texts), atol=1e-6)


def test_the_scoring_pass_also_embeds(tiny_onnx_dir: Path) -> None:
    import torch

    from finpulse.export.sentiment import load_trained
    from finpulse.models.train_sentiment import collate, mean_pooled, tokenize

    fp32 = SentimentRuntime.load(tiny_onnx_dir, "fp32", SETTINGS, batch_size=8)
    texts = [e.text for e in synthetic_examples(20, seed=4)] + ["short"]
    plain, embedded = fp32.score(texts), fp32.score(texts, embed=True)
    assert all(p.embedding is None for p in plain)
    np.testing.assert_allclose(_probs(plain, fp32.labels), _probs(embedded, fp32.labels), atol=1e-6)
    vectors = np.array([p.embedding for p in embedded])
    assert vectors.shape == (len(texts), fp32.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(fp32.probabilities_and_embeddings(texts)[1], vectors, atol=1e-5)
    model, tokenizer = load_trained(tiny_onnx_dir.parent / "model")
    ids = tokenize(tokenizer, texts, 64)
    with torch.no_grad():
        batch = collate(ids, tokenizer.pad_token_id or 0)
        reference = mean_pooled(model(**batch, output_hidden_states=True).hidden_states[-1], batch["attention_mask"])
    np.testing.assert_allclose(vectors, reference.numpy(), atol=1e-4)  # the torch encoder's mean-pooled embedding


def test_a_graph_without_the_embedding_output_says_so(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    from finpulse.export.config import ExportConfig
    from finpulse.export.runtime.exceptions import InferenceError
    from finpulse.export.sentiment import export_onnx, load_trained

    work = tmp_path / "onnx"
    shutil.copytree(tiny_onnx_dir, work)
    model, tokenizer = load_trained(tiny_onnx_dir.parent / "model")
    export_onnx(model, tokenizer, work / "model.fp32.onnx", ExportConfig(
        name="sentiment", output_names=("logits",),
        dynamic_axes={k: v for k, v in ExportConfig(name="x").dynamic_axes.items() if k != "embedding"}))
    old = SentimentRuntime.load(work, "fp32", SETTINGS, verify=False)
    assert old.embedding_dim is None
    assert len(old.score(["Acme slumps"])) == 1
    with pytest.raises(InferenceError, match="no 'embedding' output"):
        old.score(["Acme slumps"], embed=True)


def test_a_prediction_carries_the_topic_of_the_same_pass(tiny_topic_onnx_dir: Path) -> None:
    import onnxruntime as ort

    from finpulse.contracts.records import TOPIC_SLUGS
    from finpulse.export.testing import synthetic_topic_examples

    texts = [e.text for e in synthetic_topic_examples(20, seed=4)] + ["short", ""]
    fp32 = SentimentRuntime.load(tiny_topic_onnx_dir, "fp32", SETTINGS, batch_size=8)
    assert fp32.topic_slugs == TOPIC_SLUGS
    preds = fp32.score(texts)
    embedded = fp32.score(texts, embed=True)
    session = ort.InferenceSession(str(tiny_topic_onnx_dir / "model.fp32.onnx"), providers=["CPUExecutionProvider"])
    for text, pred, again in zip(texts, preds, embedded, strict=True):
        assert pred.topic in TOPIC_SLUGS and again.topic == pred.topic
        assert pred.topic_probabilities is not None and list(pred.topic_probabilities) == list(TOPIC_SLUGS)
        assert sum(pred.topic_probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert pred.topic_probability == max(pred.topic_probabilities.values())
        enc = fp32._tokenizer.encode(text)
        ids = np.array([enc.ids], dtype=np.int64)
        logits = session.run(["topic_logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                                "token_type_ids": np.zeros_like(ids)})[0]
        assert pred.topic == TOPIC_SLUGS[int(logits.argmax())]  # the graph's topic, one text at a time
    np.testing.assert_allclose(fp32.topic_probabilities(texts)[:, 0],
                               [p.topic_probabilities[TOPIC_SLUGS[0]] for p in preds], atol=1e-5)  # type: ignore[index]


def test_a_model_without_topic_logits_predicts_no_topic(runtime: SentimentRuntime) -> None:
    from finpulse.export.runtime.exceptions import InferenceError

    assert runtime.topic_slugs is None
    (pred,) = runtime.score(["Acme slumps"])
    assert pred.topic is None and pred.topic_probabilities is None and pred.topic_probability is None
    with pytest.raises(InferenceError, match="no 'topic_logits' output"):
        runtime.topic_probabilities(["Acme slumps"])


def test_a_card_that_names_no_topics_for_a_graph_with_topic_logits_is_refused(tiny_topic_onnx_dir: Path,
                                                                              tmp_path: Path) -> None:
    work = tmp_path / "onnx"
    shutil.copytree(tiny_topic_onnx_dir, work)
    card = json.loads((work / "card.json").read_text())
    del card["topic_slugs"]
    (work / "card.json").write_text(json.dumps(card))
    with pytest.raises(CardError, match="topic"):
        SentimentRuntime.load(work, "int8", SETTINGS)


def test_a_card_written_before_the_topic_head_still_loads(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    work = tmp_path / "onnx"
    shutil.copytree(tiny_onnx_dir, work)
    card = json.loads((work / "card.json").read_text())
    for key in ("topic_labels", "topic_slugs"):
        card.pop(key, None)
    card["check"].pop("min_int8_topic_agreement", None)
    (work / "card.json").write_text(json.dumps(card))
    old = SentimentRuntime.load(work, "int8", SETTINGS)
    assert old.topic_slugs is None and old.topic_labels is None
    assert [p.topic for p in old.score(["Acme slumps", "Fed hikes"])] == [None, None]
