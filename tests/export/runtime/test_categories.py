"""Category-aware news vectors in numpy: what serving adds to a text embedding, and the file it reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from finpulse.export.runtime.categories import NewsCategories
from finpulse.export.runtime.exceptions import ModelArtefactError
from finpulse.tagging.sectors import article_categories


def categories() -> NewsCategories:
    return NewsCategories(("energy", "technology"), np.asarray([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32),
                          ("earnings",), np.asarray([[0.0, 0.0, 2.0]], np.float32))


def test_apply_adds_the_vectors_of_both_names_and_normalises() -> None:
    emb = np.asarray([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    out = categories().apply(emb, ["energy", "technology"], ["earnings", "macro"])
    expected = np.asarray([[2.0, 1.0, 2.0], [0.0, 1.0, 1.0]])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(out, expected, atol=1e-6)  # "macro" was never trained: it adds nothing


def test_unknown_names_keep_the_text_direction() -> None:
    emb = np.asarray([[3.0, 4.0, 0.0]], np.float32)
    assert np.allclose(categories().apply(emb, ["sports"], ["weather"]), [[0.6, 0.8, 0.0]])


def test_apply_refuses_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="3-d model"):
        categories().apply(np.zeros((2, 4), np.float32), ["energy", "energy"], ["earnings", "earnings"])
    with pytest.raises(ValueError, match="1 categories"):
        categories().apply(np.zeros((2, 3), np.float32), ["energy"], ["earnings", "earnings"])


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "news_categories.npz"
    categories().save(path)
    loaded = NewsCategories.load(path)
    assert loaded.categories == ("energy", "technology") and loaded.subcategories == ("earnings",)
    assert np.array_equal(loaded.category_vectors, categories().category_vectors)
    assert loaded.dim == 3


def test_unreadable_file_is_a_named_error(tmp_path: Path) -> None:
    path = tmp_path / "news_categories.npz"
    path.write_bytes(b"not an npz")
    with pytest.raises(ModelArtefactError, match="cannot read the category vectors"):
        NewsCategories.load(path)
    np.savez(path, categories=np.array(["a", "b"]), category_vectors=np.zeros((1, 3), np.float32),
             subcategories=np.array(["c"]), subcategory_vectors=np.zeros((1, 3), np.float32))
    with pytest.raises(ModelArtefactError, match="2 categories"):
        NewsCategories.load(path)


def test_article_categories_are_sector_and_topic() -> None:
    assert article_categories(["XOM"], "Exxon beats on quarterly earnings") == ("energy", "earnings")
    assert article_categories([], "Crude jumps after OPEC cut") == ("energy", "markets")
    assert article_categories([], "Nothing to see here") == ("markets", "markets")
