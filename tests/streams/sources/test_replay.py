"""Replay: reading CSV/JSONL into articles, pacing, publishing (with a stand-in producer; Kafka itself in
``test_replay_kafka.py``)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from finpulse.contracts.ids import article_id
from finpulse.contracts.records import NewsArticle
from finpulse.streams.sources.exceptions import ReplayFileError
from finpulse.streams.sources.replay import Pacer, ReplayStats, count_rows, detect_format, iter_articles, publish_articles

SENT_VALID = Path("/work/shared/data/twitter-financial-news-sentiment/sent_valid.csv")


def write_csv(path: Path) -> Path:
    path.write_bytes(
        b"text,label\r\n$ALLY - Ally Financial pulls outlook https://t.co/G9Zdi1boy5,0\r\n"
        b'"$DELL $HPE - Dell, HPE targets trimmed on compute headwinds",0\r\n'
        b",1\r\n"
        b'"Gold rises\r\nagain",1\r\n'
    )
    return path


def test_csv_with_crlf_quotes_and_empty_rows(tmp_path: Path) -> None:
    stats = ReplayStats()
    articles = list(iter_articles(write_csv(tmp_path / "news.csv"), stats=stats))
    assert [a.title for a in articles] == [
        "$ALLY - Ally Financial pulls outlook https://t.co/G9Zdi1boy5",
        "$DELL $HPE - Dell, HPE targets trimmed on compute headwinds",
        "Gold rises again",
    ]
    assert [a.tickers for a in articles] == [["ALLY"], ["DELL", "HPE"], []]
    assert all(a.source == "replay:news" and a.published_at is None for a in articles)
    assert articles[0].id == article_id(None, "replay:news", articles[0].title)
    assert (stats.read, stats.skipped, stats.tagged) == (4, 1, 2)


def test_real_twitter_file_limit_and_repeat() -> None:
    if not SENT_VALID.is_file():
        pytest.skip(f"{SENT_VALID} is not there")
    first = list(iter_articles(SENT_VALID, limit=5))
    assert len(first) == 5 and first[0].tickers == ["ALLY"]
    repeated = list(iter_articles(SENT_VALID, limit=10, repeat=3))
    assert len(repeated) == 10
    twice = list(iter_articles(SENT_VALID, repeat=2, limit=5000))
    rows = len(list(iter_articles(SENT_VALID)))
    assert len(twice) == min(5000, 2 * rows)
    assert twice[0].title == twice[rows].title and twice[0].id != twice[rows].id
    total = count_rows(SENT_VALID)
    assert total is not None and rows <= total


def test_jsonl_fields_bad_lines_and_given_tickers(tmp_path: Path) -> None:
    path = tmp_path / "news.jsonl"
    lines = [
        json.dumps(
            {
                "title": "Apple unveils a new iPhone",
                "url": "https://www.example.com/a?utm_source=x",
                "source": "example",
                "published_at": "2024-03-01T10:00:00Z",
            }
        ),
        "{not json",
        json.dumps({"text": "Unnamed company does things", "published_at": 1709287260}),
        json.dumps(["a list"]),
        json.dumps({"title": "Custom tickers", "tickers": "xyz, abc", "summary": "about Nvidia"}),
        json.dumps({"title": "bad ticker", "tickers": ["not a ticker!"]}),
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    stats = ReplayStats()
    articles = list(iter_articles(path, stats=stats))
    assert [a.title for a in articles] == ["Apple unveils a new iPhone", "Unnamed company does things", "Custom tickers"]
    assert articles[0].id == article_id("https://example.com/a")
    assert articles[0].source == "example" and articles[0].tickers == ["AAPL"]
    assert articles[0].published_at == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert articles[1].published_at == datetime(2024, 3, 1, 10, 1, tzinfo=UTC)
    assert articles[2].tickers == ["XYZ", "ABC"]
    assert stats.skipped == 3


def test_gzip_and_format_detection(tmp_path: Path) -> None:
    path = tmp_path / "news.dump.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"title": "Microsoft rallies"}) + "\n")
    assert detect_format(path) == "jsonl"
    assert [a.tickers for a in iter_articles(path)] == [["MSFT"]]


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ReplayFileError, match="is not a file"):
        list(iter_articles(tmp_path / "missing.csv"))
    path = tmp_path / "x.csv"
    path.write_text("headline_x,label\nfoo,1\n", encoding="utf-8")
    with pytest.raises(ReplayFileError, match="no column 'body'"):
        list(iter_articles(path, text_column="body"))
    path.write_text("title,label\nApple,1\n", encoding="utf-8")
    assert [a.title for a in iter_articles(path)] == ["Apple"]  # falls back to the title column


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_pacer_scales_timestamps_and_keeps_fixed_rates() -> None:
    clock = FakeClock()
    pacer = Pacer(speed=10.0, clock=clock, sleep=clock.sleep)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for offset in (0, 10, 10, 30, 5, None):
        pacer.wait(None if offset is None else t0 + timedelta(seconds=offset))
    assert clock.sleeps == [1.0, 2.0]  # 10 s and 30 s of news at 10x; late and untimed records go at once

    clock = FakeClock()
    pacer = Pacer(rate=4.0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        pacer.wait(t0)
    assert clock.sleeps == [0.25, 0.25, 0.25, 0.25]

    clock = FakeClock()
    pacer = Pacer(speed=0, clock=clock, sleep=clock.sleep)
    pacer.wait(t0)
    pacer.wait(t0 + timedelta(days=1))
    assert clock.sleeps == []


class FakeFuture:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def add_callback(self, fn: Callable[..., object], *args: object) -> FakeFuture:
        if self.error is None:
            fn(object(), *args)
        return self

    def add_errback(self, fn: Callable[..., object], *args: object) -> FakeFuture:
        if self.error is not None:
            fn(self.error, *args)
        return self


class FakeProducer:
    """Stands in for kafka-python's producer in unit tests (the Kafka integration test uses the real one)."""

    def __init__(self, fail_every: int = 0) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []
        self.fail_every = fail_every
        self.flushed = False

    def send(self, topic: str, value: bytes, key: bytes) -> FakeFuture:
        self.records.append((topic, key, value))
        failing = self.fail_every and len(self.records) % self.fail_every == 0
        return FakeFuture(RuntimeError("broker said no") if failing else None)

    def flush(self, timeout: float | None = None) -> None:
        self.flushed = True


def test_publish_keys_values_counts_and_retime(tmp_path: Path) -> None:
    producer = FakeProducer(fail_every=3)
    articles = list(iter_articles(write_csv(tmp_path / "n.csv")))
    seen: list[int] = []
    stats = publish_articles(
        producer,
        "p.news.raw",
        articles,
        retime=True,
        on_progress=lambda s: seen.append(s.produced),  # type: ignore[arg-type]
    )
    assert producer.flushed
    assert [(t, k.decode()) for t, k, _ in producer.records] == [("p.news.raw", a.id) for a in articles]
    decoded = [NewsArticle.model_validate_json(v) for _, _, v in producer.records]
    assert [a.id for a in decoded] == [a.id for a in articles]
    assert all(a.published_at is not None for a in decoded)
    assert (stats.produced, stats.delivered, stats.failed) == (3, 2, 1)
    assert seen[-1] == 3 and stats.topic == "p.news.raw"
