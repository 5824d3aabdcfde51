"""Helpers for tests: a tiny random BERT with the real MiniLM tokenizer (optionally with a topic head), and small
synthetic data sets of both heads."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from finpulse.contracts.records import LABELS, TOPICS
from finpulse.models.data import Example

_WORDS = {
    "negative": ["plunges", "misses estimates", "cuts outlook", "slumps", "downgraded", "files for bankruptcy", "loss widens"],
    "neutral": ["to present at conference", "schedules call", "announces date", "files 10-Q", "holds annual meeting"],
    "positive": ["surges", "beats estimates", "raises guidance", "upgraded to buy", "record profit", "soars on deal"],
}
#: A few topics, each recognisable by its words (labels index TOPICS).
_TOPIC_WORDS = {
    "Fed | Central Banks": ["Fed hikes rates", "central bank holds rates", "Powell signals cut", "ECB tightens policy"],
    "Energy | Oil": ["crude oil jumps", "OPEC cuts output", "Brent falls", "oil refinery outage"],
    "IPO": ["prices IPO", "files to go public", "IPO debut", "lists shares in IPO"],
    "Dividend": ["raises dividend", "declares quarterly dividend", "cuts dividend", "special dividend"],
}
_NAMES = ["Acme", "Globex", "Initech", "Umbrella Corp", "$ACME", "Hooli", "Vandelay", "Stark Industries", "$TSLA", "Nokia"]


def _keyword_examples(n: int, seed: int, words: dict[str, list[str]], labels: Sequence[str]) -> list[Example]:
    """``n`` headlines "<name> <words of a class>", the classes of ``words`` in turn, labelled by their index in
    ``labels``, shuffled."""
    rng = random.Random(seed)
    classes = list(words)
    out = []
    for i in range(n):
        cls = classes[i % len(classes)]
        out.append(Example(f"{rng.choice(_NAMES)} {rng.choice(words[cls])}", labels.index(cls)))
    rng.shuffle(out)
    return out


def synthetic_examples(n: int, seed: int = 0) -> list[Example]:
    """Headlines whose label follows from a keyword (learnable in a few steps by a tiny model)."""
    return _keyword_examples(n, seed, _WORDS, LABELS)


def synthetic_topic_examples(n: int, seed: int = 0) -> list[Example]:
    """Headlines whose topic (label indexing :data:`TOPICS`) follows from its words."""
    return _keyword_examples(n, seed, _TOPIC_WORDS, TOPICS)


def build_tiny_bert(out_dir: Path, seed: int = 0, initializer_range: float = 0.2, topics: bool = False) -> Path:
    """Save a 2-layer, 32-wide random BERT classifier plus the MiniLM tokenizer to ``out_dir`` (with ``topics``, with
    a random topic head beside it, saved as training saves it)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from finpulse.models.topic_head import attach_topic_head, save_trained
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
    if topics:
        attach_topic_head(model, len(TOPICS))
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    save_trained(model, tokenizer, out_dir)
    return out_dir


def export_tiny(work_dir: Path, max_length: int = 64, topics: bool = False) -> Path:
    """Build and export a tiny random BERT (``topics``: with a topic head, three outputs) to ``work_dir/onnx``; return
    that directory. ``work_dir/model`` holds the torch model.

    A random 32-wide model has near-tied logits, so its int8/fp32 label agreement is checked at 80%, not 97%
    (topics: 70%, over 20 near-tied classes).
    """
    from finpulse.export.config import ExportConfig
    from finpulse.export.sentiment import export_sentiment
    from finpulse.settings import ModelSettings

    model_dir = build_tiny_bert(work_dir / "model", topics=topics)
    examples = synthetic_examples(90, seed=5)
    topic_sets = {"topic-syn": synthetic_topic_examples(60, seed=5)} if topics else None
    config = ExportConfig(name="sentiment", min_int8_agreement=0.8, min_int8_topic_agreement=0.7)
    card = export_sentiment(
        model_dir, work_dir / "onnx", ModelSettings(max_length=max_length), [e.text for e in examples],
        eval_sets={"syn": examples}, config=config, base_model="tiny-random-bert", topic_eval_sets=topic_sets,
    )
    return card.parent
