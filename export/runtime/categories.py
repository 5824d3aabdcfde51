"""Category-aware news vectors (as NAML and LSTUR read MIND's category and subcategory): numpy, for serving.

The news tower's vector of an article is ``normalise(text embedding + C[category] + S[subcategory])``, with ``C``
and ``S`` learned beside the user tower. In MIND files the two names are the ``category`` and ``subcategory``
columns; a live finpulse article gets them from :func:`finpulse.tagging.sectors.article_categories` (its sector
and topic), the function the click simulator writes into its MIND logs too. A name the model never saw in
training adds nothing (the vector stays the text embedding's direction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from finpulse.export.runtime.exceptions import ModelArtefactError
from finpulse.export.runtime.ranking import l2_normalise

CATEGORIES_FILE = "news_categories.npz"


@dataclass(frozen=True)
class NewsCategories:
    """Learned vectors per category and subcategory name; :meth:`apply` turns text embeddings into news vectors."""

    categories: tuple[str, ...]
    category_vectors: np.ndarray  # (len(categories), d)
    subcategories: tuple[str, ...]
    subcategory_vectors: np.ndarray  # (len(subcategories), d)

    @property
    def dim(self) -> int:
        return int(self.category_vectors.shape[1])

    @cached_property
    def _lookups(self) -> tuple[tuple[dict[str, int], np.ndarray], tuple[dict[str, int], np.ndarray]]:
        """Per vocabulary: name → row, and the vectors with a zero row appended for unknown names (built once:
        the candidate agent applies the model to every article)."""

        def lookup(vocabulary: tuple[str, ...], vectors: np.ndarray) -> tuple[dict[str, int], np.ndarray]:
            padded = np.vstack([vectors, np.zeros((1, vectors.shape[1]), np.float32)])
            return {name: i for i, name in enumerate(vocabulary)}, padded

        return (lookup(self.categories, self.category_vectors), lookup(self.subcategories, self.subcategory_vectors))

    @staticmethod
    def _rows(names: Sequence[str], lookup: tuple[dict[str, int], np.ndarray]) -> np.ndarray:
        index, padded = lookup
        return padded[[index.get(name, len(padded) - 1) for name in names]]

    def apply(self, embeddings: np.ndarray, categories: Sequence[str], subcategories: Sequence[str]) -> np.ndarray:
        """Unit news vectors ``(n, d)`` of text embeddings ``(n, d)`` and each row's category and subcategory."""
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != self.dim or len(categories) != len(emb) or len(subcategories) != len(emb):
            raise ValueError(f"apply: embeddings {emb.shape} with {len(categories)} categories and "
                             f"{len(subcategories)} subcategories for a {self.dim}-d model")
        category_lookup, subcategory_lookup = self._lookups
        return l2_normalise(emb + self._rows(categories, category_lookup) + self._rows(subcategories, subcategory_lookup))

    def save(self, path: Path) -> None:
        np.savez(path, categories=np.array(self.categories, dtype=str), category_vectors=self.category_vectors,
                 subcategories=np.array(self.subcategories, dtype=str), subcategory_vectors=self.subcategory_vectors)

    @classmethod
    def load(cls, path: Path) -> NewsCategories:
        try:
            with np.load(path, allow_pickle=False) as data:
                out = cls(tuple(str(x) for x in data["categories"]), data["category_vectors"].astype(np.float32),
                          tuple(str(x) for x in data["subcategories"]), data["subcategory_vectors"].astype(np.float32))
        except (OSError, KeyError, ValueError) as exc:
            raise ModelArtefactError(f"cannot read the category vectors {path}: {exc}") from exc
        if (out.category_vectors.shape != (len(out.categories), out.dim)
                or out.subcategory_vectors.shape != (len(out.subcategories), out.dim)):
            raise ModelArtefactError(f"{path}: {len(out.categories)} categories with vectors {out.category_vectors.shape}, "
                                     f"{len(out.subcategories)} subcategories with {out.subcategory_vectors.shape}")
        return out
