"""The paired bootstrap behind the evaluation's 95% intervals (pure numpy, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from finpulse.models.eval_recommend import METHODS, bootstrap_ci

TUNED = METHODS[3]


def test_a_clear_gain_excludes_one_and_a_copy_sits_on_it() -> None:
    rng = np.random.default_rng(1)
    popularity = rng.uniform(0.3, 0.7, size=400)
    better = {"popularity": popularity, TUNED: popularity * 1.5}
    low, high = bootstrap_ci(better)["ratio"]
    assert low == pytest.approx(1.5) and high == pytest.approx(1.5)  # paired: every resample keeps the ratio
    noisy = {"popularity": popularity, TUNED: np.clip(popularity * 1.2 + rng.normal(0, 0.2, 400), 0, 1)}
    low, high = bootstrap_ci(noisy)["ratio"]
    assert 1.0 < low < 1.2 < high
    same = bootstrap_ci({"popularity": popularity, TUNED: popularity.copy()})
    assert same["ratio"] == (pytest.approx(1.0), pytest.approx(1.0))


def test_intervals_cover_the_mean_and_shrink_with_more_impressions() -> None:
    rng = np.random.default_rng(2)
    widths = []
    for n in (100, 1600):
        values = rng.uniform(0, 1, size=n)
        low, high = bootstrap_ci({"random": values})["random"]
        assert low < values.mean() < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # about 1/sqrt(n): 16x the impressions, a quarter of the width
    assert "ratio" not in bootstrap_ci({"random": rng.uniform(size=10)})


def test_the_same_seed_gives_the_same_interval_and_unpaired_input_is_refused() -> None:
    values = {"popularity": np.linspace(0, 1, 50), TUNED: np.linspace(0.2, 1, 50)}
    assert bootstrap_ci(values) == bootstrap_ci(values)
    with pytest.raises(ValueError, match="same"):
        bootstrap_ci({"popularity": np.ones(5), TUNED: np.ones(6)})
    assert bootstrap_ci({}) == {}


def test_large_evaluations_resample_in_chunks_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    from finpulse.models import eval_recommend

    values = {"popularity": np.linspace(0.1, 0.9, 300), TUNED: np.linspace(0.3, 1.0, 300)}
    whole = bootstrap_ci(values, samples=200)
    monkeypatch.setattr(eval_recommend, "MAX_PICKS", 300 * 7)  # 7 resamples at a time, the last chunk shorter
    chunked = bootstrap_ci(values, samples=200)
    assert chunked.keys() == whole.keys()
    for name in whole:
        assert chunked[name] == pytest.approx(whole[name], rel=0.05)
