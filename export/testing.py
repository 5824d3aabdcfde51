"""Helpers for tests: a tiny random BERT with the real MiniLM tokenizer, and small synthetic data sets."""

from __future__ import annotations

import random
from pathlib import Path

from finpulse.contracts.records import LABELS
from finpulse.models.data import Example

_WORDS = {
    "negative": ["plunges", "misses estimates", "cuts outlook", "slumps", "downgraded", "files for bankruptcy", "loss widens"],
    "neutral": ["to present at conference", "schedules call", "announces date", "files 10-Q", "holds annual meeting"],
    "positive": ["surges", "beats estimates", "raises guidance", "upgraded to buy", "record profit", "soars on deal"],
}
_NAMES = ["Acme", "Globex", "Initech", "Umbrella Corp", "$ACME", "Hooli", "Vandelay", "Stark Industries", "$TSLA", "Nokia"]


def synthetic_examples(n: int, seed: int = 0) -> list[Example]:
    """Headlines whose label follows from a keyword (learnable in a few steps by a tiny model)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        out.append(Example(f"{rng.choice(_NAMES)} {rng.choice(_WORDS[label])}", LABELS.index(label)))
    rng.shuffle(out)
    return out


def build_tiny_bert(out_dir: Path, seed: int = 0, initializer_range: float = 0.2) -> Path:
    """Save a 2-layer, 32-wide random BERT classifier plus the MiniLM tokenizer to ``out_dir``."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from finpulse.models.train_sentiment import PACKAGED_BASE, resolve_base

    tokenizer = AutoTokenizer.from_pretrained(resolve_base(PACKAGED_BASE))
    config = BertConfig(  # type: ignore[call-arg]  # num_labels etc. go through PretrainedConfig's **kwargs
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        initializer_range=initializer_range,
        num_labels=len(LABELS),
        id2label={i: str(label) for i, label in enumerate(LABELS)},
        label2id={str(label): i for i, label in enumerate(LABELS)},
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def export_tiny(work_dir: Path, max_length: int = 64) -> Path:
    """Build and export a tiny random BERT to ``work_dir/onnx``; return that directory.

    A random 32-wide model has near-tied logits, so its int8/fp32 label agreement is checked at 80%, not 97%.
    """
    from finpulse.export.config import ExportConfig
    from finpulse.export.sentiment import export_sentiment
    from finpulse.settings import ModelSettings

    model_dir = build_tiny_bert(work_dir / "model")
    examples = synthetic_examples(90, seed=5)
    config = ExportConfig(name="sentiment", min_int8_agreement=0.8)
    card = export_sentiment(
        model_dir, work_dir / "onnx", ModelSettings(max_length=max_length), [e.text for e in examples],
        eval_sets={"syn": examples}, config=config, base_model="tiny-random-bert",
    )
    return card.parent
