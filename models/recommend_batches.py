"""Batches of the two-tower recommender: tokenised titles, length-bucketed passes of the news tower over every title,
and the training samples with their history tensors. :mod:`finpulse.models.train_recommend` trains over them.

torch is imported inside the functions.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from finpulse.models.mind import Behavior

#: (history rows, clicked row, sampled negative rows) of one click.
Sample = tuple[list[int], int, list[int]]


def tokenize_titles(tokenizer: Any, titles: Sequence[str], max_length: int) -> tuple[Any, Any]:
    """(input ids, attention mask) of ``titles``, padded to the longest (torch tensors)."""
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


def training_samples(
    behaviors: Sequence[Behavior], index: dict[str, int], history: int, negatives: int, rng: random.Random
) -> list[Sample]:
    """One sample per click of an impression with a history (its last ``history`` articles): ``negatives`` rows
    drawn from the impression's non-clicked articles, or from all news when it has none."""
    samples = []
    n_news = len(index)
    for b in behaviors:
        rows = [index[h] for h in b.history[-history:]]
        if not rows:
            continue
        skipped = [index[i.news_id] for i in b.impressions if i.clicked is False]
        for item in b.impressions:
            if not item.clicked:
                continue
            if skipped:
                negs = [rng.choice(skipped) for _ in range(negatives)]
            else:
                negs = [rng.randrange(n_news) for _ in range(negatives)]
            samples.append((rows, index[item.news_id], negs))
    return samples


def history_tensors(batch: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
    """(row index, mask) of the batch's histories, padded to the longest."""
    import torch

    hist_len = max(len(h) for h, _, _ in batch)
    hist_idx = torch.zeros(len(batch), hist_len, dtype=torch.long)
    hist_mask = torch.zeros(len(batch), hist_len, dtype=torch.bool)
    for r, (h, _, _) in enumerate(batch):
        hist_idx[r, : len(h)] = torch.tensor(h)
        hist_mask[r, : len(h)] = True
    return hist_idx, hist_mask
