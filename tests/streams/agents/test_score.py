from dataclasses import dataclass, field
from typing import Any

from finpulse.contracts.records import MARKET_KEY, NewsArticle
from finpulse.streams.agents.score import Deduplicator, observations, to_scored


@dataclass
class _Prediction:
    label: str
    probabilities: dict[str, float]
    embedding: list[float] | None = None


@dataclass
class _Message:
    partition: int
    offset: int
    topic: str = "news.raw"


@dataclass
class _Event:
    message: _Message


@dataclass
class _Table:
    data: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value


def _article(tickers: list[str]) -> NewsArticle:
    return NewsArticle(id="ab" * 16, source="t", title="Tesla recalls cars", tickers=tickers)


def test_to_scored_carries_label_probabilities_and_version() -> None:
    scored = to_scored(_article(["TSLA"]), _Prediction("negative", {"negative": 0.9, "neutral": 0.05,
                                                                    "positive": 0.05}), "m1")
    assert scored.label == "negative"
    assert scored.negative_score == 0.9
    assert scored.model_version == "m1"
    assert scored.title == "Tesla recalls cars"


def test_the_embedding_of_the_scoring_pass_travels_with_the_article() -> None:
    from finpulse.streams.agents.score import EmbeddingScorer

    class Runtime:
        model_version = "m2"

        def score(self, texts: list[str], embed: bool = False) -> list[_Prediction]:
            return [_Prediction("neutral", {"negative": 0.1, "neutral": 0.8, "positive": 0.1},
                                [0.6, 0.8] if embed else None) for _ in texts]

    scorer = EmbeddingScorer(Runtime())
    assert scorer.model_version == "m2"
    (prediction,) = scorer.score(["Tesla recalls cars"])
    assert to_scored(_article(["TSLA"]), prediction, "m2").embedding == [0.6, 0.8]
    assert to_scored(_article(["TSLA"]), Runtime().score(["x"])[0], "m2").embedding is None


def test_a_scored_record_built_from_an_invalid_prediction_fails_loudly_when_encoded() -> None:
    """to_scored does not validate again (the article was validated when decoded); encode_checked's read-back
    turns a prediction our own code got wrong into SerializationBug, not a record on the topic."""
    import pytest

    from finpulse.contracts.codecs import encode_checked
    from finpulse.contracts.exceptions import SerializationBug
    from finpulse.contracts.records import ScoredArticle

    good = to_scored(_article(["TSLA"]), _Prediction("neutral", {"negative": 0.1, "neutral": 0.8, "positive": 0.1},
                                                     [0.6, 0.8]), "m1")
    assert ScoredArticle.model_validate_json(encode_checked(good)) == good
    bad = to_scored(_article(["TSLA"]), _Prediction("bearish", {"negative": 0.1, "neutral": 0.8, "positive": 0.1}), "m1")
    with pytest.raises(SerializationBug, match="label"):
        encode_checked(bad)
    too_sure = to_scored(_article([]), _Prediction("negative", {"negative": 1.5, "neutral": 0.0, "positive": 0.0}), "m")
    with pytest.raises(SerializationBug, match="negative_score"):
        encode_checked(too_sure)


def test_observations_fan_out_to_tickers_and_market() -> None:
    scored = to_scored(_article(["TSLA", "F"]), _Prediction("negative", {"negative": 0.8, "neutral": 0.1,
                                                                         "positive": 0.1}), "m1")
    keys = [o.key for o in observations(scored, 0.5)]
    assert keys == ["TSLA", "F", MARKET_KEY]
    assert all(o.negative for o in observations(scored, 0.5))


def test_unknown_ticker_counts_for_market_only() -> None:
    scored = to_scored(_article([]), _Prediction("neutral", {"negative": 0.2, "neutral": 0.7, "positive": 0.1}), "m")
    obs = observations(scored, 0.5)
    assert [o.key for o in obs] == [MARKET_KEY]
    assert not obs[0].negative


def test_deduplicator_drops_true_duplicates_but_not_redeliveries(monkeypatch: Any) -> None:
    import finpulse.streams.agents.score as scoring

    monkeypatch.setattr(scoring, "in_event", _null_context)
    now = [1000.0]
    dedup = Deduplicator(_Table(), ttl_s=60, clock=lambda: now[0])
    first = _Event(_Message(0, 10))
    assert not dedup.is_duplicate(first, "a1")
    assert not dedup.is_duplicate(_Event(_Message(0, 10)), "a1"), "a re-delivery of the same message is re-scored"
    assert dedup.is_duplicate(_Event(_Message(1, 99)), "a1"), "the same article in another message is a duplicate"
    now[0] += 61
    assert not dedup.is_duplicate(_Event(_Message(1, 100)), "a1"), "after the TTL the article counts again"


class _null_context:
    def __init__(self, _event: Any) -> None: ...

    def __enter__(self) -> None: ...

    def __exit__(self, *exc: object) -> None: ...
