"""The optimisation loop of the sentiment fine-tuning (:func:`finpulse.models.train_sentiment.train_sentiment`).

AdamW with linear warm-up and decay (the decay re-planned to end with the time budget), gradient clipping, the
optional embedding-distillation term, length-grouped batches epoch after epoch, and a rich progress bar. Validation
and early stopping are the caller's: :func:`optimise` calls its ``validate`` when one is due.

torch is imported inside the functions.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from finpulse.contracts.records import LABELS
from finpulse.models.data import Example
from finpulse.models.exceptions import TrainingError
from finpulse.models.sentiment_batches import collate, length_grouped_batches, mean_pooled

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from finpulse.models.train_sentiment import TrainConfig


@dataclass
class TrainData:
    """The fit/validation split, the fit split tokenised with its labels and, with distillation, its target embeddings."""

    fit_set: list[Example]
    val_set: list[Example]
    ids: list[list[int]]
    labels: torch.Tensor
    lengths: list[int]
    pad_id: int
    teacher: torch.Tensor | None


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
    best: dict[str, Any] = field(default_factory=lambda: {"macro_f1": -1.0, "step": 0, "state": None})
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


def _optimisation(run: TrainRun) -> _Optimisation:
    """AdamW (no weight decay on biases and layer norms), the class-weighted loss and the warm-up/decay schedule."""
    import torch

    config, model = run.config, run.model
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    counts = torch.bincount(run.data.labels, minlength=len(LABELS)).clamp(min=1).float()
    weights = (counts / counts.sum()) ** -config.class_weight_power
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights / (weights * counts / counts.sum()).sum())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, run.schedule.lr_factor)
    return _Optimisation(optimizer, scheduler, loss_fn)


def _train_step(run: TrainRun, opt: _Optimisation, batch_idx: list[int]) -> tuple[float, float]:
    """One optimiser step on the fit examples ``batch_idx``; (loss, embedding distillation gap or NaN)."""
    import torch

    data, config = run.data, run.config
    batch = collate([data.ids[i] for i in batch_idx], data.pad_id)
    output = run.model(**batch, output_hidden_states=data.teacher is not None)
    loss = opt.loss_fn(output.logits, data.labels[batch_idx])
    distill = float("nan")
    if data.teacher is not None:
        student = mean_pooled(output.hidden_states[-1], batch["attention_mask"])
        cosine_gap = (1.0 - (student * data.teacher[batch_idx]).sum(-1)).mean()
        distill = float(cosine_gap.detach())
        loss = loss + config.embedding_distill_weight * cosine_gap
    if not torch.isfinite(loss):
        raise TrainingError(f"loss became {loss.item()} at step {run.step}")
    opt.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip)
    opt.optimizer.step()
    opt.scheduler.step()
    return float(loss.item()), distill


def _stop_reason(run: TrainRun, elapsed: float, validate: Callable[[TrainRun], bool]) -> str | None:
    """Validation when due, then why the loop stops after this step (early stopping, end of the plan, time budget)."""
    if run.step % run.schedule.eval_every == 0 and validate(run):
        return "early stopping"
    if run.step >= run.schedule.total:
        return "epochs" if run.schedule.total == run.schedule.planned else "time budget"
    if run.config.time_budget_s and elapsed >= run.config.time_budget_s:
        return "time budget"
    return None


def _record(run: TrainRun, value: float, distill: float, n: int) -> None:
    """Count the step and its examples; log its raw and smoothed loss (and distillation gap) into the history."""
    run.step += 1
    run.seen += n
    run.smoothed = value if math.isnan(run.smoothed) else 0.9 * run.smoothed + 0.1 * value
    run.history["train"].append({"step": run.step, "loss": run.smoothed, "raw_loss": value}
                                | ({} if math.isnan(distill) else {"distill": distill}))


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
            value, distill = _train_step(run, opt, batch_idx)
            _record(run, value, distill, len(batch_idx))
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
