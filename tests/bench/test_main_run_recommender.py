"""Which recommendation path the benchmark's main runs take (the worker refuses a recommender of another encoder)."""

from __future__ import annotations

import json
from pathlib import Path

from finpulse.bench.pipeline import main_run_recommender
from finpulse.export.runtime.card import ModelCard
from finpulse.settings import Settings


def settings_with(recommend_dir: Path, shared: bool) -> Settings:
    return Settings.model_validate({"recommend": {"model_dir": recommend_dir, "shared_encoder": shared}})


def recommender_card(directory: Path, shared_over: str | None, dim: int) -> Path:
    directory.mkdir(parents=True)
    card = {"model_version": "two-tower-x", "dim": dim, "max_length": 24, "files": {}, "shared_sentiment_model": shared_over}
    (directory / "card.json").write_text(json.dumps(card), encoding="utf-8")
    return directory


def test_the_main_runs_keep_a_fitting_recommender_and_fall_back_to_mean_pooling_otherwise(
    tiny_sentiment_model: Path, tmp_path: Path
) -> None:
    card = ModelCard.read(tiny_sentiment_model)
    dim = int(card.data["embedding_dim"])
    fallback = tmp_path / "fallback"

    none_yet = settings_with(tmp_path / "none", shared=True)
    kept, note = main_run_recommender(none_yet, tiny_sentiment_model, fallback)
    assert kept is none_yet and note.startswith("one shared pass")

    fitting = settings_with(recommender_card(tmp_path / "fits", card.model_version, dim), shared=True)
    assert main_run_recommender(fitting, tiny_sentiment_model, fallback)[0] is fitting

    own = settings_with(recommender_card(tmp_path / "own", None, dim), shared=True)
    swapped, note = main_run_recommender(own, tiny_sentiment_model, fallback)
    assert swapped.recommend.model_dir == fallback and fallback.is_dir() and "mean pooling" in note
    assert swapped.recommend.shared_encoder

    two_passes = settings_with(tmp_path / "own", shared=False)
    kept, note = main_run_recommender(two_passes, tiny_sentiment_model, fallback)
    assert kept is two_passes and note.startswith("two passes")
