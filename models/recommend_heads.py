"""The heads the two-tower recommender trains over its news encoder, as torch modules: the user tower (additive
attention over the history's embeddings plus a linear projection) and the learned category and subcategory vectors.
Each has ``to_numpy``, its runtime twin (:class:`finpulse.export.runtime.ranking.UserTower`,
:class:`finpulse.export.runtime.categories.NewsCategories`). :mod:`finpulse.models.train_recommend` trains them.

torch is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from finpulse.export.runtime.categories import NewsCategories

if TYPE_CHECKING:
    import torch

    from finpulse.models.mind import MindNews


def user_tower_module(dim: int, attention_dim: int) -> Any:
    """The user tower: ``forward(history, mask)`` gives the unit user vector of each padded history of embeddings."""
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
            from finpulse.export.runtime.ranking import UserTower

            def arr(t: torch.Tensor) -> np.ndarray:
                return t.detach().cpu().numpy().astype(np.float32)

            return UserTower(arr(self.w), arr(self.b), arr(self.q), arr(self.p), version)

    return UserTowerT()


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
