"""End to end on the real embedded servers: news.raw → worker → Elasticsearch + Alerta."""

from __future__ import annotations

import json
import math
import time
import urllib.request
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from finpulse.contracts.ids import article_id
from finpulse.contracts.records import DeadLetter, NewsArticle
from finpulse.contracts.topics import NEWS_RAW, NEWS_RAW_DLQ, NEWS_SCORED, topic_name
from finpulse.settings import Settings

from .harness import WorkerProcess, alerts, consume_all, json_if, produce, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WINDOW_S = 60.0
# In the vocabulary of the tiny trained model (finpulse.export.testing.synthetic_examples); the ticker
# travels in the record's tickers field.
NEGATIVE = "Globex plunges"
NEUTRAL = "Globex schedules call"


def _article(ticker: str, i: int, when: datetime, negative: bool) -> NewsArticle:
    title = NEGATIVE if negative else NEUTRAL
    url = f"https://news.example/{ticker.lower()}/{i}"
    return NewsArticle(id=article_id(url), url=url, source="e2e", title=title, published_at=when, tickers=[ticker])


def _window_articles(ticker: str, start: int, window: datetime, n: int, negatives: int) -> list[NewsArticle]:
    return [_article(ticker, start + j, window + timedelta(seconds=1 + j), j < negatives) for j in range(n)]


def _send(settings: Settings, articles: list[NewsArticle]) -> None:
    produce(settings, topic_name(settings.kafka, NEWS_RAW), [(a.id.encode(), a.to_bytes()) for a in articles])


def _count(es: Any, settings: Settings) -> int:
    index = f"{settings.elasticsearch.index_prefix}-news-*"
    es.indices.refresh(index=index, ignore_unavailable=True, allow_no_indices=True)
    return int(es.count(index=index, ignore_unavailable=True, allow_no_indices=True)["count"])




def _positions(settings: Settings, offsets: Iterable[tuple[int, int]], missing: list[tuple[int, int]]) -> list[str]:
    """Per news.raw partition: the last offset, the group's committed offset and the first missing offset (a
    worker that stopped fetching shows committed == first missing < last)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    topic = topic_name(settings.kafka, NEWS_RAW)
    offsets = list(offsets)
    reader = KafkaConsumer(bootstrap_servers=settings.kafka.broker_list(), group_id=settings.kafka.consumer_group,
                           enable_auto_commit=False)
    try:  # OffsetFetch only: this does not join the group
        committed = {p: reader.committed(TopicPartition(topic, p)) for p in {partition for partition, _ in offsets}}
    except KafkaError as err:  # part of a failure report: say why this part is missing
        return [f"committed offsets unavailable: {err!r}"]
    finally:
        reader.close()
    last: dict[int, int] = {}
    for partition, offset in offsets:
        last[partition] = max(offset, last.get(partition, -1))
    first_missing: dict[int, int] = {}
    for partition, offset in missing:
        first_missing[partition] = min(offset, first_missing.get(partition, offset))
    return [f"news.raw[{p}]: last offset {last[p]}, committed {committed.get(p)}, first missing {first_missing.get(p)}"
            for p in sorted(last)]


def _where_they_stopped(settings: Settings, es: Any, articles: list[NewsArticle]) -> str:
    """For a failure report: the document count, the worker's per-agent counters, and for each article missing
    from Elasticsearch its news.raw offset and whether news.scored has it (scored but not indexed, or never scored)."""
    index = f"{settings.elasticsearch.index_prefix}-news-*"
    es.indices.refresh(index=index, ignore_unavailable=True, allow_no_indices=True)
    hits = es.search(index=index, size=len(articles) + 100, source=False)["hits"]["hits"]
    missing = [a for a in articles if a.id not in {h["_id"] for h in hits}]
    scored = {r.key for r in consume_all(settings, topic_name(settings.kafka, NEWS_SCORED), expect=10**9, timeout_s=10)}
    raw = {r.key: (r.partition, r.offset) for r in consume_all(settings, topic_name(settings.kafka, NEWS_RAW),
                                                                expect=10**9, timeout_s=10)}
    metrics_url = f"http://127.0.0.1:{settings.stream.metrics_port}/metrics"
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as answer:
            counters = [line for line in answer.read().decode().splitlines()
                        if line.startswith(("finpulse_events_in_total", "finpulse_events_out_total"))]
    except OSError as err:
        counters = [f"metrics unavailable: {err!r}"]
    lines = [f"{len(hits)} documents for {len(articles)} articles; {len(missing)} missing", *counters]
    lines += _positions(settings, raw.values(), [raw[a.id.encode()] for a in missing if a.id.encode() in raw])
    lines += [f"missing {a.id}: news.raw (partition, offset) {raw.get(a.id.encode())}, "
              f"in news.scored: {a.id.encode() in scored}" for a in missing[:60]]
    return "\n".join(lines)


def test_burst_for_one_ticker_raises_one_alert_and_recovery_resolves_it(
    pipeline_settings: Settings, es_client: Any, tmp_path: Path
) -> None:
    settings = pipeline_settings
    suffix = settings.kafka.consumer_group[-5:].upper()
    x, y = f"X{suffix}", f"Y{suffix}"
    now = datetime.now(UTC)
    t0 = datetime.fromtimestamp(math.floor(now.timestamp() / WINDOW_S) * WINDOW_S, UTC) - timedelta(hours=1)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        sent = 0
        for w in range(8):  # history: 10% negative for both tickers
            window = t0 + timedelta(seconds=w * WINDOW_S)
            batch = _window_articles(x, w * 100, window, 10, 1) + _window_articles(y, w * 100, window, 10, 1)
            _send(settings, batch)
            sent += len(batch)
            wait_for(lambda n=sent: _count(es_client, settings) >= n, 120, f"{sent} documents", worker)
        burst_window = t0 + timedelta(seconds=8 * WINDOW_S)
        burst = _window_articles(x, 1000, burst_window, 12, 12)
        _send(settings, burst + _window_articles(y, 1000, burst_window, 10, 1))
        sent += 22
        spikes = f"http://127.0.0.1:{settings.stream.web_port}/spikes/{x}/"
        state = wait_for(lambda: json_if(spikes, lambda s: s["raised"]), 120, f"the spike state of {x} to raise", worker)
        assert state["k"] >= 4, state
        raised = wait_for(lambda: [a for a in alerts(settings, x) if a["status"] == "open"], 120,
                          f"an open alert for {x}", worker)
        assert len(raised) == 1
        text = raised[0]["text"]
        assert NEGATIVE in text and raised[0]["attributes"]["headlines"][0]["url"].startswith("https://news.example/"), text
        attributes = raised[0]["attributes"]
        assert attributes["n"] >= 5 and attributes["k"] / attributes["n"] > 0.5, attributes
        assert alerts(settings, y) == [], "normal traffic must not raise"
        for w in (9, 10):  # recovery: calm windows
            window = t0 + timedelta(seconds=w * WINDOW_S)
            calm = _window_articles(x, 5000 + w * 100, window, 10, 0)
            _send(settings, calm)
            sent += len(calm)
        wait_for(lambda: all(a["status"] == "closed" for a in alerts(settings, x)), 120,
                 f"the alert for {x} to close", worker)
        wait_for(lambda: _count(es_client, settings) >= sent, 120, f"{sent} documents", worker)
        time.sleep(2)
        assert _count(es_client, settings) == sent
        assert len(alerts(settings, x)) == 1, "the raise and the resolve are one Alerta alert"
        hits = es_client.search(index=f"{settings.elasticsearch.index_prefix}-news-*", size=1,
                                query={"term": {"tickers": x}}, sort=[{"published_at": "desc"}])["hits"]["hits"]
        assert hits[0]["_source"]["label"] in {"negative", "neutral", "positive"}
        assert worker.alive
    finally:
        worker.stop()


def test_bad_input_goes_to_the_dlq_and_counts_stay_exact(
    pipeline_settings: Settings, es_client: Any, tmp_path: Path
) -> None:
    settings = pipeline_settings
    when = datetime.now(UTC)
    good = [_article("GOOD", i, when, negative=False) for i in range(20)]
    valid = json.loads(good[0].to_bytes())
    missing = {k: v for k, v in valid.items() if k != "title"}
    wrong_type = {**valid, "tickers": "AAPL", "id": article_id("https://x/wrong")}
    bad: list[tuple[bytes | None, bytes | None]] = [
        (b"k1", b"{not json"),
        (b"k2", json.dumps(missing).encode()),
        (b"k3", json.dumps(wrong_type).encode()),
        (b"k4", b"\xff\xfe\xfa invalid utf-8"),
        (b"k5", json.dumps({**valid, "id": article_id("https://x/huge"), "body": "x" * (10 * 1024 * 1024)}).encode()),
        (b"k6", b"[]"),
    ]
    duplicates = [(a.id.encode(), a.to_bytes()) for a in good[:5]]
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        produce(settings, topic_name(settings.kafka, NEWS_RAW), [(a.id.encode(), a.to_bytes()) for a in good] + bad)
        wait_for(lambda: _count(es_client, settings) >= len(good), 120, "good documents", worker)
        produce(settings, topic_name(settings.kafka, NEWS_RAW), duplicates)
        letters = consume_all(settings, topic_name(settings.kafka, NEWS_RAW_DLQ), expect=len(bad), timeout_s=60)
        assert len(letters) == len(bad)
        reasons = {DeadLetter.model_validate_json(r.value).error_type for r in letters}
        assert reasons == {"invalid_json", "invalid_record", "invalid_utf8", "too_large", "not_an_object"}
        raw = {r.key: DeadLetter.model_validate_json(r.value) for r in letters}
        assert raw[b"k4"].value_b64 == "//76IGludmFsaWQgdXRmLTg="  # the raw bytes survive
        time.sleep(5)  # give the duplicates time to (not) arrive
        assert _count(es_client, settings) == len(good)
        assert worker.alive
    finally:
        worker.stop()


def test_restart_mid_stream_loses_and_duplicates_nothing(
    pipeline_settings: Settings, es_client: Any, tmp_path: Path
) -> None:
    settings = pipeline_settings
    now = datetime.now(UTC).timestamp()
    when = datetime.fromtimestamp(math.floor(now / 600) * 600 + 1, UTC)  # all in one spike window
    articles = [_article("RST", i, when + timedelta(milliseconds=i), negative=i % 4 == 0) for i in range(600)]
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    _send(settings, articles[:300])
    wait_for(lambda: _count(es_client, settings) >= 50, 120, "the first documents", worker)
    assert worker.stop() == 0, worker.log()[-3000:]
    _send(settings, articles[300:])
    worker = WorkerProcess(settings, tmp_path / "worker2.log").start()
    try:
        try:
            wait_for(lambda: _count(es_client, settings) >= len(articles), 180, "all documents", worker)
        except AssertionError as exc:
            raise AssertionError(f"{_where_they_stopped(settings, es_client, articles)}\n{exc}") from None
        spikes = f"http://127.0.0.1:{settings.stream.web_port}/spikes/RST/"
        state = wait_for(lambda: json_if(spikes, lambda s: s["n"] >= len(articles)), 60, "spike state", worker)
        time.sleep(3)
        assert _count(es_client, settings) == len(articles)
        assert state["n"] == len(articles), "the spike table survived the restart and counted each article once"
        assert state["counted_ids"] == len(articles)
    finally:
        worker.stop()
