"""The optimisation loop of the sentiment fine-tuning (:func:`finpulse.models.train_sentiment.train_sentiment`).

AdamW with linear warm-up and decay (the decay re-planned to end with the time budget), gradient clipping, the
optional embedding-distillation term, length-grouped batches epoch after epoch, and a rich progress bar. Validation
and early stopping are the caller's: :func:`optimise` calls its ``validate`` when one is due.

With a topic head, the fit rows are the sentiment examples and the topic examples together, shuffled into the same
batches: a row's label of the head it has no label for is :data:`IGNORE`, so each row supervises only its own head
(:func:`masked_cross_entropy`), and every row takes part in the embedding distillation.

torch is imported inside the functions.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from finpulse.contracts.records import LABELS, TOPICS
from finpulse.models.data import Example
from finpulse.models.exceptions import TrainingError
from finpulse.models.sentiment_batches import collate, length_grouped_batches

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from finpulse.models.train_sentiment import TrainConfig

#: The label of a row for the head it has no label for (``CrossEntropyLoss``'s default ``ignore_index``).
IGNORE = -100


@dataclass
class TrainData:
    """The fit/validation splits, the fit rows tokenised with their labels and, with distillation, their target
    embeddings. The fit rows are ``fit_set`` then ``topic_fit_set``; ``labels`` (sentiment) and ``topic_labels`` hold
    :data:`IGNORE` where a row has no label for that head; ``topic_labels`` is None without a topic head."""

    fit_set: list[Example]
    val_set: list[Example]
    ids: list[list[int]]
    labels: torch.Tensor
    lengths: list[int]
    pad_id: int
    teacher: torch.Tensor | None
    topic_fit_set: list[Example] = field(default_factory=list)
    topic_val_set: list[Example] = field(default_factory=list)
    topic_labels: torch.Tensor | None = None


@dataclass
class Schedule:
    """The step plan: warm-up, then a linear decay to ``total`` (re-planned to end with the time budget)."""

    steps_per_epoch: int
    planned: int
    warmup: int
    total: int
    eval_every: int

    @classmethod
    def plan(cls, config: TrainConfig, n_train: int) -> Schedule:
        steps_per_epoch = math.ceil(n_train / config.batch_size)
        planned = max(1, math.ceil(steps_per_epoch * config.epochs))
        eval_every = max(1, steps_per_epoch // max(1, config.evals_per_epoch))
        return cls(steps_per_epoch, planned, max(1, int(planned * config.warmup_ratio)), planned, eval_every)

    def lr_factor(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        return max(0.0, (self.total - step) / max(1, self.total - self.warmup))


@dataclass
class TrainRun:
    """One training run: its model, data and step plan, and what the loop and the validations track."""

    config: TrainConfig
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    data: TrainData
    schedule: Schedule
    history: dict[str, list[dict[str, float]]] = field(default_factory=lambda: {"train": [], "val": []})
    #: The best validation: its ``score`` (mean macro-F1 of the heads), step, metrics and weights.
    best: dict[str, Any] = field(default_factory=lambda: {"score": -1.0, "step": 0, "state": None, "val": {}})
    bad_evals: int = 0
    step: int = 0
    seen: int = 0
    smoothed: float = float("nan")
    stop_reason: str = "epochs"


@dataclass
class _Optimisation:
    optimizer: Any
    scheduler: Any
    loss_fn: Any
    topic_loss_fn: Any


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


def masked_cross_entropy(loss_fn: Any, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``loss_fn`` (ignoring :data:`IGNORE`) over the rows labelled for this head; a zero that still back-propagates
    when the batch holds none (a mean over no rows would be NaN)."""
    if not bool((labels != IGNORE).any()):
        return logits.sum() * 0.0
    return loss_fn(logits, labels)


def _weighted_loss(labels: torch.Tensor, n_classes: int, power: float) -> Any:
    """Cross-entropy with class weights (class frequency) ** -power over the labelled rows, normalised so the mean
    weight per row is 1, ignoring :data:`IGNORE`."""
    import torch

    counts = torch.bincount(labels[labels != IGNORE], minlength=n_classes).clamp(min=1).float()
    frequency = counts / counts.sum()
    weights = frequency ** -power
    return torch.nn.CrossEntropyLoss(weight=weights / (weights * frequency).sum(), ignore_index=IGNORE)


def _optimisation(run: TrainRun) -> _Optimisation:
    """AdamW (no weight decay on biases and layer norms), the class-weighted losses and the warm-up/decay schedule."""
    import torch

    config, model = run.config, run.model
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    loss_fn = _weighted_loss(run.data.labels, len(LABELS), config.class_weight_power)
    topic_labels = run.data.topic_labels
    topic_loss_fn = _weighted_loss(topic_labels, len(TOPICS), config.class_weight_power) if topic_labels is not None else None
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, run.schedule.lr_factor)
    return _Optimisation(optimizer, scheduler, loss_fn, topic_loss_fn)


def _train_step(run: TrainRun, opt: _Optimisation, batch_idx: list[int]) -> tuple[float, dict[str, float]]:
    """One optimiser step on the fit rows ``batch_idx``; (loss, its parts: the topic loss and the embedding
    distillation gap, where there are)."""
    import torch

    from finpulse.models.topic_head import forward_heads

    data, config = run.data, run.config
    batch = collate([data.ids[i] for i in batch_idx], data.pad_id)
    heads = forward_heads(run.model, batch, pooled=data.teacher is not None)
    loss = masked_cross_entropy(opt.loss_fn, heads.logits, data.labels[batch_idx])
    parts: dict[str, float] = {}
    if data.topic_labels is not None:
        if heads.topic_logits is None:
            raise TrainingError("topic labels were given, but the model has no topic head")
        topic_loss = masked_cross_entropy(opt.topic_loss_fn, heads.topic_logits, data.topic_labels[batch_idx])
        parts["topic_loss"] = float(topic_loss.detach())
        loss = loss + config.topic_loss_weight * topic_loss
    if data.teacher is not None:
        assert heads.pooled is not None  # asked for above
        student = torch.nn.functional.normalize(heads.pooled, dim=-1)
        cosine_gap = (1.0 - (student * data.teacher[batch_idx]).sum(-1)).mean()
        parts["distill"] = float(cosine_gap.detach())
        loss = loss + config.embedding_distill_weight * cosine_gap
    if not torch.isfinite(loss):
        raise TrainingError(f"loss became {loss.item()} at step {run.step}")
    opt.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip)
    opt.optimizer.step()
    opt.scheduler.step()
    return float(loss.item()), parts


def _stop_reason(run: TrainRun, elapsed: float, validate: Callable[[TrainRun], bool]) -> str | None:
    """Validation when due, then why the loop stops after this step (early stopping, end of the plan, time budget)."""
    if run.step % run.schedule.eval_every == 0 and validate(run):
        return "early stopping"
    if run.step >= run.schedule.total:
        return "epochs" if run.schedule.total == run.schedule.planned else "time budget"
    if run.config.time_budget_s and elapsed >= run.config.time_budget_s:
        return "time budget"
    return None


def _record(run: TrainRun, value: float, parts: dict[str, float], n: int) -> None:
    """Count the step and its examples; log its raw and smoothed loss (and its parts) into the history."""
    run.step += 1
    run.seen += n
    run.smoothed = value if math.isnan(run.smoothed) else 0.9 * run.smoothed + 0.1 * value
    run.history["train"].append({"step": run.step, "loss": run.smoothed, "raw_loss": value, **parts})


def _epochs(run: TrainRun, rng: random.Random) -> Iterator[list[int]]:
    """Length-grouped batches of the fit split, a fresh shuffle each epoch, without end."""
    while True:
        yield from length_grouped_batches(run.data.lengths, run.config.batch_size, rng)


def optimise(
    run: TrainRun, rng: random.Random, on_step: Callable[[int, float], None] | None, validate: Callable[[TrainRun], bool],
) -> float:
    """Train ``run.model`` until a stop reason (set as ``run.stop_reason``); return the loop's seconds.

    ``validate`` runs every ``schedule.eval_every`` steps and returns True when early stopping says stop."""
    opt = _optimisation(run)
    budget = run.config.time_budget_s
    started = time.monotonic()
    progress = _Progress(run.config.progress, run.schedule.planned)
    run.model.train()
    try:
        for batch_idx in _epochs(run, rng):
            value, parts = _train_step(run, opt, batch_idx)
            _record(run, value, parts, len(batch_idx))
            elapsed = time.monotonic() - started
            if on_step is not None:
                on_step(run.step, value)
            if budget and run.step % 25 == 0 and run.step > run.schedule.warmup:
                # Re-plan the decay to end with the time budget (throughput measured so far, evals included).
                reachable = run.step + int((budget - elapsed) * run.step / elapsed)
                run.schedule.total = max(run.step + 1, min(run.schedule.planned, reachable))
            progress.update(run.step, run.schedule.total, float(run.smoothed), run.seen / max(elapsed, 1e-9),
                            float(opt.scheduler.get_last_lr()[0]))
            reason = _stop_reason(run, elapsed, validate)
            if reason is not None:
                run.stop_reason = reason
                break
    finally:
        progress.close()
    return time.monotonic() - started
