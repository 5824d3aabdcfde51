"""Ranking and profiles on hand-built vectors: exclusion, freshness, MMR, the user tower."""

from __future__ import annotations

import numpy as np
import pytest

from finpulse.export.runtime.ranking import CandidatePool, RankConfig, UserTower, l2_normalise, mmr, relevance, top_k
from finpulse.streams.agents.profiles import Profile, update_profile

NOW = 1_000_000.0
E = np.eye(4, dtype=np.float32)


def pool_of(rows: list[tuple[str, list[float], float]]) -> CandidatePool:
    return CandidatePool.build([(aid, v, t, {"title": aid}) for aid, v, t in rows], dim=4)


def test_relevance_prefers_aligned_and_excludes_clicked() -> None:
    pool = pool_of([("a", [1, 0, 0, 0], NOW), ("b", [0, 1, 0, 0], NOW), ("c", [0.9, 0.1, 0, 0], NOW)])
    config = RankConfig(top_k=2, mmr_lambda=1.0)
    ranked = top_k(E[0], pool, NOW, config)
    assert [r.article_id for r in ranked] == ["a", "c"]
    ranked = top_k(E[0], pool, NOW, config, exclude=["a"])
    assert [r.article_id for r in ranked] == ["c", "b"]


def test_freshness_decay_and_window() -> None:
    config = RankConfig(top_k=3, freshness_window_s=1000.0, freshness_half_life_s=100.0, mmr_lambda=1.0)
    pool = pool_of([("old", [1, 0, 0, 0], NOW - 500), ("new", [0.8, 0.2, 0, 0], NOW), ("gone", [1, 0, 0, 0], NOW - 2000)])
    scores = relevance(E[0], pool, NOW, config)
    assert scores[pool.index["old"]] == pytest.approx(1.0 * 2**-5)
    assert not np.isfinite(scores[pool.index["gone"]])
    assert [r.article_id for r in top_k(E[0], pool, NOW, config)] == ["new", "old"]


def test_mmr_diversifies() -> None:
    # Two near-duplicates of the user's interest and one different article.
    vectors = l2_normalise(np.asarray([[1, 0, 0, 0], [0.99, 0.01, 0, 0], [0.6, 0.8, 0, 0]], np.float32))
    scores = np.asarray([0.9, 0.89, 0.7])
    assert mmr(scores, vectors, 2, lam=1.0) == [0, 1]
    assert mmr(scores, vectors, 2, lam=0.5) == [0, 2]


def test_top_k_uses_a_shortlist_over_many_candidates() -> None:
    rng = np.random.default_rng(0)
    vectors = l2_normalise(rng.normal(size=(5000, 4)))
    pool = CandidatePool.build([(f"n{i}", v.tolist(), NOW, {}) for i, v in enumerate(vectors)], dim=4)
    ranked = top_k(E[0], pool, NOW, RankConfig(top_k=10, mmr_lambda=1.0))
    best = np.argsort(-(vectors @ E[0]))[:10]
    assert [r.article_id for r in ranked] == [f"n{i}" for i in best]


def test_relevance_is_the_same_by_blas_and_by_the_einsum_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small pools are scored by BLAS, large ones by einsum (ranking.BLAS_MAX_ROWS): the same scores either way."""
    from finpulse.export.runtime import ranking

    rng = np.random.default_rng(1)
    vectors = l2_normalise(rng.normal(size=(300, 16)))
    pool = CandidatePool.build([(f"n{i}", v.tolist(), NOW - i, {}) for i, v in enumerate(vectors)], dim=16)
    user = l2_normalise(rng.normal(size=16))
    by_blas = relevance(user, pool, NOW, RankConfig(), exclude=["n3"])
    monkeypatch.setattr(ranking, "BLAS_MAX_ROWS", 100)
    by_einsum = relevance(user, pool, NOW, RankConfig(), exclude=["n3"])
    assert np.allclose(by_blas, by_einsum, atol=1e-6, equal_nan=False)
    assert not np.isfinite(by_blas[pool.index["n3"]]) and np.isfinite(by_blas).sum() == 299


def test_pool_add_remove_reuses_rows() -> None:
    pool = CandidatePool(dim=4, capacity=1)
    assert pool.add("a", [1, 0, 0, 0], NOW, {})
    assert pool.add("b", [0, 1, 0, 0], NOW, {})
    assert not pool.add("bad", [1, 0], NOW, {})
    pool.remove("a")
    assert len(pool) == 1
    assert [r.article_id for r in top_k(E[0], pool, NOW, RankConfig(top_k=5))] == ["b"]
    pool.add("c", [0, 0, 1, 0], NOW, {})
    assert pool.rows == 2 and pool.index["c"] == 0


def test_user_tower_mean_pooling_and_mask() -> None:
    tower = UserTower.mean_pooling(4)
    history = np.stack([E[0], E[1], E[2]])
    u = tower.encode(history, np.asarray([True, True, False]))
    assert u == pytest.approx(l2_normalise(E[0] + E[1]))
    batch = tower.encode(np.stack([history, history]))
    assert batch.shape == (2, 4)


def test_user_tower_attention_focuses(tmp_path) -> None:
    w = np.zeros((4, 2), np.float32)
    w[0, 0] = 5.0  # attention likes dimension 0
    tower = UserTower(w, np.zeros(2, np.float32), np.asarray([1.0, 0.0], np.float32), np.eye(4, dtype=np.float32), "t")
    u = tower.encode(np.stack([E[0], E[1]]))
    assert u[0] > u[1] > 0
    tower.save(tmp_path / "tower.npz")
    loaded = UserTower.load(tmp_path / "tower.npz")
    assert loaded.version == "t" and np.allclose(loaded.encode(np.stack([E[0], E[1]])), u)


def test_profile_update_bounds_history_and_moves_reclicks() -> None:
    pool = pool_of([(f"a{i}", E[i % 4].tolist(), NOW) for i in range(6)])
    tower = UserTower.mean_pooling(4)
    profile = Profile("u")
    profile = update_profile(profile, ["a0", "a1", "a2"], 10, pool, tower, length=3, now=NOW)
    profile = update_profile(profile, ["a1", "a3"], 0, pool, tower, length=3, now=NOW)
    assert profile.clicked == ["a2", "a1", "a3"]
    assert profile.clicks == 5 and profile.impressions == 10
    assert profile.user_vector() == pytest.approx(l2_normalise(E[1] + E[2] + E[3]), abs=1e-4)
    again = Profile.load("u", profile.dump())
    assert again == profile


def test_profile_keeps_vector_when_history_left_the_pool() -> None:
    pool = pool_of([("a", [1, 0, 0, 0], NOW)])
    tower = UserTower.mean_pooling(4)
    profile = update_profile(Profile("u"), ["a"], 0, pool, tower, 5, NOW)
    pool.remove("a")
    later = update_profile(profile, ["unknown"], 0, pool, tower, 5, NOW)
    assert later.vector == profile.vector and later.clicked == ["a", "unknown"]
