"""The multi-head export: one ONNX pass yields sentiment logits, topic logits and the embedding, each checked against
torch (fp32 within tolerance, int8 labels agreeing), and the card names the topics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from finpulse.contracts.records import TOPIC_SLUGS, TOPICS
from finpulse.export.config import ExportConfig
from finpulse.export.exceptions import OutputMismatchError
from finpulse.export.testing import synthetic_examples, synthetic_topic_examples

pytestmark = pytest.mark.slow

OUTPUTS = ["logits", "topic_logits", "embedding"]


def _torch_outputs(model_dir: Path, texts: list[str]) -> dict[str, np.ndarray]:
    """The torch model's three outputs, computed here from the encoder's hidden states (not by the export's code)."""
    import torch
    from transformers import AutoTokenizer

    from finpulse.export.sentiment import load_trained
    from finpulse.models.topic_head import topic_head

    model, _ = load_trained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    enc = tokenizer(texts, truncation=True, max_length=64, padding="longest", return_tensors="pt")
    enc["token_type_ids"] = torch.zeros_like(enc["input_ids"])
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
        mask = enc["attention_mask"][:, :, None].float()
        mean = (out.hidden_states[-1] * mask).sum(1) / mask.sum(1)
        head = topic_head(model)
        assert head is not None
        topic = head(mean)
    enc_np = {k: v.numpy() for k, v in enc.items()}
    return {"logits": out.logits.numpy(), "topic_logits": topic.numpy(),
            "embedding": torch.nn.functional.normalize(mean, dim=-1).numpy(), "feeds": enc_np}  # type: ignore[dict-item]


def test_one_pass_gives_three_outputs_matching_torch(tiny_topic_onnx_dir: Path) -> None:
    import onnxruntime as ort

    texts = [e.text for e in synthetic_topic_examples(24, seed=7)] + [e.text for e in synthetic_examples(8, seed=7)]
    reference = _torch_outputs(tiny_topic_onnx_dir.parent / "model", texts)
    feeds = reference.pop("feeds")
    for variant in ("fp32", "int8"):
        session = ort.InferenceSession(str(tiny_topic_onnx_dir / f"model.{variant}.onnx"), providers=["CPUExecutionProvider"])
        assert [o.name for o in session.get_outputs()] == OUTPUTS
        got = dict(zip(OUTPUTS, session.run(OUTPUTS, feeds), strict=True))
        assert got["logits"].shape == (len(texts), 3) and got["topic_logits"].shape == (len(texts), len(TOPICS))
        if variant == "fp32":
            for name in OUTPUTS:
                np.testing.assert_allclose(got[name], reference[name], atol=1e-4, err_msg=name)
        else:
            agree = (got["topic_logits"].argmax(1) == reference["topic_logits"].argmax(1)).mean()
            assert agree >= 0.8, agree


def test_the_card_names_the_topics_and_the_check_covers_them(tiny_topic_onnx_dir: Path) -> None:
    card = json.loads((tiny_topic_onnx_dir / "card.json").read_text())
    assert card["outputs"] == OUTPUTS
    assert card["topic_labels"] == list(TOPICS) and card["topic_slugs"] == list(TOPIC_SLUGS)
    assert set(card["dynamic_axes"]) >= {"logits", "topic_logits", "embedding"}
    check = card["check"]
    assert check["max_abs_topic_logit_diff"] <= 1e-3
    assert 0.0 <= check["int8_topic_label_agreement"] <= 1.0 and "min_int8_topic_agreement" in check
    assert check["max_abs_logit_diff"] <= 1e-3 and check["max_abs_embedding_diff"] <= 1e-3
    for variant in ("fp32", "int8"):
        assert card["metrics"][variant]["topic-syn"]["task"] == "topic"
        assert card["metrics"][variant]["syn"]["task"] == "sentiment"
        assert card["metrics"][variant]["topic-syn"]["labels"] == list(TOPICS)


def test_a_topic_head_that_no_longer_matches_the_graph_is_caught(tiny_topic_onnx_dir: Path, tmp_path: Path) -> None:
    import torch

    from finpulse.export.sentiment import check_outputs, load_trained
    from finpulse.models.topic_head import topic_head

    work = tmp_path / "onnx"
    shutil.copytree(tiny_topic_onnx_dir, work)
    model, tokenizer = load_trained(tiny_topic_onnx_dir.parent / "model")
    texts = [e.text for e in synthetic_topic_examples(20)]
    lenient = ExportConfig(name="sentiment", output_names=tuple(OUTPUTS), min_int8_agreement=0.0, min_int8_topic_agreement=0.0)
    result = check_outputs(model, tokenizer, work, texts, 64, lenient)
    assert result.max_abs_topic_logit_diff is not None and result.max_abs_topic_logit_diff <= 1e-3
    head = topic_head(model)
    assert head is not None
    with torch.no_grad():
        head.bias += 0.01
    with pytest.raises(OutputMismatchError, match="topic logits differ from torch"):
        check_outputs(model, tokenizer, work, texts, 64, lenient)


def test_int8_topic_labels_must_agree_with_fp32() -> None:
    from finpulse.export.sentiment import compare

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(100, 20)).astype(np.float32)
    flipped = ref.copy()
    flipped[:10] = -flipped[:10]
    config = ExportConfig(name="x", min_int8_topic_agreement=0.95)
    with pytest.raises(OutputMismatchError, match="int8 topic labels agree"):
        compare(ref, ref, flipped, config, what="topic")
    assert compare(ref, ref, ref, config, what="topic").int8_label_agreement == 1.0


def test_a_model_without_a_topic_head_exports_the_old_two_outputs(tiny_onnx_dir: Path) -> None:
    card = json.loads((tiny_onnx_dir / "card.json").read_text())
    assert card["outputs"] == ["logits", "embedding"]
    assert card.get("topic_labels") is None
