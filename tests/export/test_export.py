from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from finpulse.export.config import ExportConfig
from finpulse.export.exceptions import OutputMismatchError
from finpulse.export.runtime.card import sha256_of
from finpulse.export.sentiment import check_outputs, compare, load_trained
from finpulse.export.testing import synthetic_examples


def test_config_validates() -> None:
    with pytest.raises(ValueError, match="opset"):
        ExportConfig(name="x", opset=13)
    with pytest.raises(ValueError, match="unknown"):
        ExportConfig(name="x", dynamic_axes={"nope": {0: "batch"}})


def test_compare_passes_and_raises() -> None:
    config = ExportConfig(name="x")
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(100, 3)).astype(np.float32)
    result = compare(ref, ref + 1e-5, ref + 1e-3, config)
    assert result.int8_label_agreement == 1.0
    with pytest.raises(OutputMismatchError, match="differ from torch"):
        compare(ref, ref + 2e-3, ref, config)
    flipped = ref.copy()
    flipped[:5] = -flipped[:5]  # 5 of 100 labels change -> 95% < 97%
    changed = (flipped.argmax(1) != ref.argmax(1)).mean()
    assert changed > 0.03
    with pytest.raises(OutputMismatchError, match="int8 labels agree"):
        compare(ref, ref, flipped, config)


@pytest.mark.slow
def test_export_layout_and_card(tiny_onnx_dir: Path) -> None:
    names = {p.name for p in tiny_onnx_dir.iterdir()}
    assert {"model.fp32.onnx", "model.int8.onnx", "tokenizer.json", "card.json", "config.json"} <= names
    assert not any(n.endswith(".data") for n in names)
    card = json.loads((tiny_onnx_dir / "card.json").read_text())
    assert card["labels"] == ["negative", "neutral", "positive"]
    assert card["opset"] >= 17
    assert card["check"]["max_abs_logit_diff"] <= 1e-3
    assert card["outputs"] == ["logits", "embedding"]
    assert card["check"]["max_abs_embedding_diff"] <= 1e-3
    assert 0.0 < card["check"]["int8_embedding_mean_cosine"] <= 1.0 + 1e-6
    assert card["embedding_dim"] == json.loads((tiny_onnx_dir / "config.json").read_text())["hidden_size"]
    for name, digest in card["files"].items():
        assert sha256_of(tiny_onnx_dir / name) == digest
    assert set(card["versions"]) >= {"torch", "onnx", "onnxruntime", "transformers"}
    assert card["datasets"]["financial-phrasebank"]["license"].startswith("CC BY-NC-SA")
    for variant in ("fp32", "int8"):
        assert 0.0 <= card["metrics"][variant]["syn"]["accuracy"] <= 1.0
    assert "tokenizer.json" in card["tokenizer"]["files"]


@pytest.mark.slow
def test_dynamic_axes(tiny_onnx_dir: Path) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(tiny_onnx_dir / "model.fp32.onnx"), providers=["CPUExecutionProvider"])
    for batch, seq in ((1, 3), (7, 41), (2, 200)):
        ids = np.full((batch, seq), 1000, dtype=np.int64)
        out = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})
        assert out[0].shape == (batch, 3)
        assert out[1].shape[0] == batch
        np.testing.assert_allclose(np.linalg.norm(out[1], axis=1), 1.0, atol=1e-5)  # unit embeddings


@pytest.mark.slow
def test_forced_mismatch_raises(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    """A torch model that no longer matches the exported graph is caught by the output check."""
    import torch

    work = tmp_path / "onnx"
    shutil.copytree(tiny_onnx_dir, work)
    model, tokenizer = load_trained(tiny_onnx_dir.parent / "model")
    texts = [e.text for e in synthetic_examples(20)]
    lenient = ExportConfig(name="sentiment", min_int8_agreement=0.0)
    check_outputs(model, tokenizer, work, texts, 64, lenient)  # unchanged model: passes
    with torch.no_grad():
        model.classifier.bias += 0.01
    with pytest.raises(OutputMismatchError, match="differ from torch"):
        check_outputs(model, tokenizer, work, texts, 64, lenient)


def test_compare_embeddings_raises_a_named_error() -> None:
    from finpulse.export.sentiment import compare_embeddings

    config = ExportConfig(name="x")
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(6, 8)).astype(np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    result = compare_embeddings(ref, ref + 1e-5, ref, config)
    assert result["max_abs_embedding_diff"] <= 2e-5 and result["int8_embedding_min_cosine"] > 0.999
    with pytest.raises(OutputMismatchError, match="embeddings differ from torch"):
        compare_embeddings(ref, ref + 2e-3, ref, config)
    turned = ref.copy()
    turned[2] = -turned[2]  # int8 far off on one text: measured, not refused (the shared-encoder link refuses it)
    assert compare_embeddings(ref, ref, turned, config)["int8_embedding_min_cosine"] == pytest.approx(-1.0, abs=1e-5)
