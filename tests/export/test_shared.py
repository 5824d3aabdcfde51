"""One encoder pass for both tasks: a recommender trained over the sentiment model's frozen encoder, linked to the
exported sentiment model, and the worker's refusal of any other pairing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from finpulse.export.runtime.exceptions import SharedEncoderMismatchError
from finpulse.export.runtime.recommend import check_shared_encoder
from finpulse.models.simulate import ClickSimulator, SimArticle, SimConfig, default_start, write_mind_logs
from finpulse.settings import Settings

START = default_start()


def _card(directory: Path, **fields: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    card = {"model_version": "two-tower-x", "dim": 32, "max_length": 24, "files": {}, **fields}
    (directory / "card.json").write_text(json.dumps(card), encoding="utf-8")
    return directory


def test_check_accepts_only_the_recommender_trained_over_that_sentiment_model(tmp_path: Path) -> None:
    check_shared_encoder(tmp_path / "none-yet", "sentiment-a", 32)  # no recommender yet: mean pooling, fine
    with pytest.raises(SharedEncoderMismatchError, match="no embedding output"):
        check_shared_encoder(tmp_path / "none-yet", "sentiment-a", None)
    own = _card(tmp_path / "own", shared_sentiment_model=None)
    with pytest.raises(SharedEncoderMismatchError, match="its own encoder"):
        check_shared_encoder(own, "sentiment-a", 32)
    shared = _card(tmp_path / "shared", shared_sentiment_model="sentiment-a")
    check_shared_encoder(shared, "sentiment-a", 32)
    with pytest.raises(SharedEncoderMismatchError, match="sentiment model sentiment-a"):
        check_shared_encoder(shared, "sentiment-b", 32)
    with pytest.raises(SharedEncoderMismatchError, match="32-d"):
        check_shared_encoder(shared, "sentiment-a", 64)


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<dir>/model`` (a tiny BERT classifier) exported to ``<dir>/onnx`` with its embedding output."""
    from finpulse.export.testing import export_tiny

    return export_tiny(tmp_path_factory.mktemp("sentiment")).parent


@pytest.fixture(scope="module")
def mind_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    words = ("bank lender loan credit", "oil crude OPEC refinery", "chip software cloud AI")
    articles = [SimArticle(f"{i:032x}", f"{words[i % 3].split()[i % 4]} news {i}", (), ("financials", "energy", "technology")[i % 3],
                           "markets", 0, START - 86_400 + i * 1800.0) for i in range(180)]
    out = tmp_path_factory.mktemp("mind")
    write_mind_logs(ClickSimulator(articles, SimConfig(users=40, days=3), seed=2), out, START)
    return out


def _train(base: Path, mind_dir: Path, out: Path) -> Path:
    from finpulse.models.train_recommend import RecTrainConfig, train_recommend

    config = RecTrainConfig(base=str(base), epochs=1.0, time_budget_s=120, trainable_layers=0, attention_dim=8,
                            history=10, batch_size=16, threads=1, max_length=64)
    train_recommend(config, mind_dir, out)
    return out


@pytest.mark.slow
def test_link_records_the_sentiment_model_and_refuses_another_encoder(
    sentiment: Path, mind_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from finpulse.export import shared
    from finpulse.export.recommend import export_recommend
    from finpulse.export.runtime.card import ModelCard
    from finpulse.export.shared import link_shared_encoder, sentiment_encoder_dir
    from finpulse.export.testing import build_tiny_bert

    artifacts = tmp_path / "artifacts"
    shutil.copytree(sentiment / "model", artifacts / "sentiment" / "train" / "model")
    model = {"artifacts_dir": artifacts, "sentiment_dir": sentiment / "onnx", "providers": ["cpu"], "intra_op_threads": 1}
    settings = Settings.model_validate({"model": {**model, "sentiment_variant": "fp32"}})
    version = ModelCard.read(sentiment / "onnx").model_version
    texts = ["bank loan growth", "oil falls on OPEC supply news today", "chip maker raises outlook"]

    train_dir = _train(sentiment_encoder_dir(settings), mind_dir, tmp_path / "train")
    # The served variant is checked too: int8 never keeps a cosine of 0.99999 to the trained encoder.
    monkeypatch.setattr(shared, "MIN_SERVED_COSINE", 0.99999)
    int8 = Settings.model_validate({"model": {**model, "sentiment_variant": "int8"}})
    with pytest.raises(SharedEncoderMismatchError, match="the int8 variant .* moves an embedding too far"):
        link_shared_encoder(int8, train_dir, texts)
    assert link_shared_encoder(settings, train_dir, texts) == version
    out = export_recommend(train_dir, tmp_path / "onnx", texts, None)
    card = json.loads((out / "card.json").read_text())
    assert card["shared_sentiment_model"] == version
    assert "Shared encoder" in (out / "MODEL_CARD.md").read_text()
    check_shared_encoder(out, version, card["dim"])  # the worker's start-up check passes
    from finpulse.export.runtime.recommend import rebuild_reason

    served = settings.model_copy(update={"recommend": settings.recommend.model_copy(update={"model_dir": out})})
    assert served.recommend.shared_encoder  # one pass is the default
    assert rebuild_reason(served) is None  # `finpulse model build recommend` keeps it

    other = _train(build_tiny_bert(tmp_path / "other-bert", seed=1), mind_dir, tmp_path / "other")
    with pytest.raises(SharedEncoderMismatchError, match="not the encoder the recommender was trained over"):
        link_shared_encoder(settings, other, texts)
    own = export_recommend(other, tmp_path / "other-onnx", texts, None)
    with pytest.raises(SharedEncoderMismatchError, match="its own encoder"):
        check_shared_encoder(own, version, card["dim"])
    # The build trains again for the shared pass, not for a worker that runs the recommender's own encoder.
    over_own = served.model_copy(update={"recommend": served.recommend.model_copy(update={"model_dir": own})})
    assert "its own encoder" in (rebuild_reason(over_own) or "")
    two_passes = over_own.model_copy(update={"recommend": over_own.recommend.model_copy(update={"shared_encoder": False})})
    assert rebuild_reason(two_passes) is None
    (own / "user_tower.npz").write_bytes(b"damaged")
    assert "sha256" in (rebuild_reason(two_passes) or "")
    assert "no recommendation model" in (rebuild_reason(two_passes.model_copy(update={
        "recommend": two_passes.recommend.model_copy(update={"model_dir": tmp_path / "none"})})) or "")
