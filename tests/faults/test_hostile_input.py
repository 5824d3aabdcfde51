"""Hostile payloads (hypothesis) into news.raw: each lands in the DLQ with a reason or is indexed as a valid
article; the worker stays up; the good events are counted exactly. The clicks API half posts hostile events to
the API app and expects 4xx."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from finpulse.contracts.ids import article_id
from finpulse.contracts.records import DeadLetter, NewsArticle
from finpulse.contracts.topics import NEWS_RAW, NEWS_RAW_DLQ, topic_name
from finpulse.settings import Settings

from ..streams.harness import WorkerProcess, consume_all, wait_for
from .support import count, env_int, indexed_ids, isolated, produce_checked

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

EXAMPLES = env_int("HOSTILE_EXAMPLES", 3)
PER_EXAMPLE = env_int("HOSTILE_PAYLOADS", 40)

GOOD, BAD, EITHER = "good", "bad", "either"
FIELDS = ["id", "url", "source", "title", "summary", "body", "published_at", "fetched_at", "tickers", "language",
          "schema_version"]
HTML = ["<script>alert(1)</script>", "<img src=x onerror=alert(document.cookie)>", "\"><svg onload=alert(1)>",
        "javascript:alert(1)", "<iframe src=//evil.example></iframe>", "{{7*7}} ${7*7} <%= 7*7 %>"]


def _base(title: str = "Acme schedules quarterly results call") -> dict[str, Any]:
    url = f"https://hostile.example/{uuid.uuid4().hex}"
    return json.loads(NewsArticle(id=article_id(url), url=url, source="hostile", title=title, tickers=["ACME"]).to_bytes())


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


odd_values = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
                       st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
                       st.text(max_size=30))
wrong_type = st.builds(lambda f, v: (EITHER, _encode({**_base(), f: v})), st.sampled_from(FIELDS), odd_values)
huge = st.integers(1_000_001, 2_500_000).map(lambda n: (BAD, _encode({**_base(), "body": "x" * n})))
big_ok = st.integers(100_000, 400_000).map(lambda n: (GOOD, _encode({**_base(), "body": "word " * (n // 5)})))
bad_utf8 = st.binary(min_size=1, max_size=300).filter(_not_utf8).map(lambda b: (BAD, b))
bad_utf8_in_json = st.binary(min_size=1, max_size=8).filter(_not_utf8).map(
    lambda b: (BAD, _encode(_base()).replace(b"Acme", b"Acme" + b, 1)))
deep = st.tuples(st.integers(100, 50_000), st.sampled_from(["list", "dict"])).map(
    lambda t: (BAD, ("[" * t[0] + "]" * t[0]).encode() if t[1] == "list" else ('{"a":' * t[0] + "1" + "}" * t[0]).encode()))
deep_inside = st.integers(100, 20_000).map(lambda n: (BAD, _encode({**_base(), "summary": None}).replace(
    b'"summary":null', b'"summary":' + b"[" * n + b"]" * n)))
control = st.text(st.characters(max_codepoint=0x1F) | st.characters(categories=["Cc", "Cf", "Zl", "Zp"]),
                  min_size=1, max_size=50).map(lambda t: (GOOD, _encode(_base("Acme " + t + " shares"))))
html = st.tuples(st.sampled_from(HTML), st.text(max_size=20)).map(lambda t: (GOOD, _encode(_base(f"{t[0]} {t[1]} Acme"))))
junk_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                         lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
                         max_leaves=20).map(lambda v: (BAD, _encode(v)))
junk_text = st.text(max_size=200).map(lambda t: (BAD, t.encode("utf-8", "surrogatepass")))
tombstone = st.just((BAD, None))

payload = st.one_of(wrong_type, huge, big_ok, bad_utf8, bad_utf8_in_json, deep, deep_inside, control, html, junk_json,
                    junk_text, tombstone)


@dataclass
class Run:
    settings: Settings
    worker: WorkerProcess
    dlq_seen: int = 0
    good: set[str] = field(default_factory=set)  # ids that must be indexed
    indexed: set[str] = field(default_factory=set)  # ids that may be indexed (good or "either" that validated)
    sent: int = 0


@pytest.fixture
def hostile_run(pipeline_settings: Settings, tmp_path: Path) -> Iterator[Run]:
    settings = isolated(pipeline_settings, tmp_path)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        yield Run(settings, worker)
    finally:
        worker.stop()


@settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example])
@given(payloads=st.lists(payload, min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
def test_hostile_payloads_land_in_the_dlq_or_are_indexed(hostile_run: Run, es_client: Any,
                                                         payloads: list[tuple[str, bytes | None]]) -> None:
    run = hostile_run
    s = run.settings
    records: list[tuple[bytes | None, bytes | None]] = []
    expect: dict[bytes, tuple[str, str | None]] = {}
    for kind, value in payloads:
        key = f"h-{uuid.uuid4().hex}".encode()
        ident = None
        if value is not None and not _not_utf8(value):
            try:
                maybe = json.loads(value)
                ident = maybe.get("id") if isinstance(maybe, dict) and isinstance(maybe.get("id"), str) else None
            except (ValueError, RecursionError):
                ident = None
        expect[key] = (kind, ident)
        records.append((key, value))
    # One known-good article per example as well, so the good count is never zero.
    anchor = _base("Acme anchors the good count")
    records.append((anchor["id"].encode(), _encode(anchor)))
    expect[anchor["id"].encode()] = (GOOD, anchor["id"])
    produce_checked(s, topic_name(s.kafka, NEWS_RAW), records)
    run.sent += len(records)

    must_index = {ident for kind, ident in expect.values() if kind == GOOD and ident}
    run.good |= must_index
    # Wait until every record is accounted for: DLQ letters of this batch + its documents = its records.
    letters: list[DeadLetter] = []

    def accounted() -> bool:
        nonlocal letters
        raw = consume_all(s, topic_name(s.kafka, NEWS_RAW_DLQ), expect=run.dlq_seen + len(records), timeout_s=8)
        letters = [DeadLetter.model_validate_json(r.value) for r in raw]
        mine = [letter for letter in letters if letter.key_b64 is not None and _key(letter) in expect]
        ids = set(indexed_ids(es_client, s))
        indexed_here = {ident for _, ident in expect.values() if ident and ident in ids}
        return len(mine) + len(indexed_here) >= len(records)

    wait_for(accounted, 180, "every hostile record in the DLQ or indexed", run.worker)
    mine = {_key(letter): letter for letter in letters if letter.key_b64 is not None and _key(letter) in expect}
    ids = set(indexed_ids(es_client, s))
    for key, (kind, ident) in expect.items():
        in_dlq = key in mine
        in_es = ident is not None and ident in ids
        assert in_dlq != in_es, f"{kind} record {key!r} (id {ident}): in DLQ {in_dlq}, indexed {in_es}"
        if kind == GOOD:
            assert in_es, f"a valid article went to the DLQ: {mine.get(key)}"
        if kind == BAD:
            assert in_dlq, f"an invalid record was indexed: {key!r}"
        if in_dlq:
            letter = mine[key]
            assert letter.error_type and letter.error, letter
        if in_es:
            run.indexed.add(ident)  # type: ignore[arg-type]
    run.dlq_seen = len(letters)
    assert count(es_client, s) == len(run.indexed), "the good events are counted exactly"
    assert run.good <= run.indexed
    assert run.worker.alive, run.worker.log()[-3000:]


def _key(letter: DeadLetter) -> bytes:
    import base64

    return base64.b64decode(letter.key_b64 or "")


def test_hostile_events_to_the_clicks_api_get_4xx(stack: Any) -> None:
    """The clicks API app (its own factory, the real Kafka sink) answers hostile bodies with 4xx, never 5xx."""
    pytest.importorskip("starlette.testclient")
    from starlette.testclient import TestClient

    from finpulse.streams.sources import clicks_api

    if not hasattr(clicks_api, "create_api"):
        pytest.skip("finpulse.streams.sources.clicks_api has no create_api app factory")
    from ..conftest import with_overrides

    s = with_overrides(stack.settings, recommend={"api_token": "t0ken-for-faults"})
    sink = clicks_api.KafkaEventSink(s)  # the real sink on the stack's Kafka: hostile events must not reach it
    app = clicks_api.create_api(s.recommend, sink)
    hostile = [b"{not json", b"\xff\xfe\xfa", b"[" * 50_000 + b"]" * 50_000, json.dumps({"events": "nope"}).encode(),
               json.dumps({"events": [{"user_id": "<script>", "event_type": "explode"}]}).encode(),
               json.dumps([{"user_id": 1}]).encode(), b"", b"null"]
    with TestClient(app, raise_server_exceptions=False) as client:
        for body in hostile:
            response = client.post("/v1/events", content=body, headers={"Authorization": "Bearer t0ken-for-faults",
                                                                        "Content-Type": "application/json"})
            assert 400 <= response.status_code < 500, (body[:60], response.status_code, response.text[:300])
        response = client.post("/v1/events", content=b"{}", headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401
