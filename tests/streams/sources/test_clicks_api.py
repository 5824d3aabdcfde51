"""The clicks API: auth, validation per event, body and rate limits (a recording sink), and 202 after Kafka's ack."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from finpulse.contracts.events import ClickEvent
from finpulse.settings import RecommendSettings
from finpulse.streams.sources.clicks_api import TokenBucket, create_api
from finpulse.streams.sources.exceptions import ClicksApiConfigError

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class RecordingSink:
    def __init__(self) -> None:
        self.sent: list[ClickEvent] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def send(self, events: Sequence[ClickEvent]) -> None:
        self.sent.extend(events)

    async def stop(self) -> None:
        self.stopped = True


def event(**overrides: Any) -> dict[str, Any]:
    base = {"user_id": "u1", "article_id": "a" * 32, "event_type": "click", "timestamp": datetime.now(UTC).isoformat(),
            "position": 0, "session_id": "s1"}
    base.update(overrides)
    return base


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def client(sink: RecordingSink) -> Iterator[TestClient]:
    settings = RecommendSettings(api_token=SecretStr(TOKEN), max_body_bytes=4096, rate_per_s=1000, rate_burst=1000)
    with TestClient(create_api(settings, sink)) as c:
        yield c


def test_refuses_to_start_without_a_token(sink: RecordingSink) -> None:
    with pytest.raises(ClicksApiConfigError, match="API_TOKEN"):
        create_api(RecommendSettings(), sink)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}])
def test_401_without_the_right_bearer_token(client: TestClient, sink: RecordingSink, headers: dict[str, str]) -> None:
    response = client.post("/v1/events", json={"events": [event()]}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert sink.sent == []


def test_202_produces_every_event(client: TestClient, sink: RecordingSink) -> None:
    response = client.post("/v1/events", json={"events": [event(), event(event_type="impression", position=3)]}, headers=AUTH)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 2}
    assert [e.event_type for e in sink.sent] == ["click", "impression"]
    assert all(e.received_at is not None for e in sink.sent)


def test_422_names_each_bad_event_and_accepts_nothing(client: TestClient, sink: RecordingSink) -> None:
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    batch = [event(), event(event_type="like"), event(position=-1), "nope", event(timestamp=future), event(user_id="")]
    response = client.post("/v1/events", json={"events": batch}, headers=AUTH)
    assert response.status_code == 422
    errors = response.json()["errors"]
    by_index = {e["index"]: e for e in errors}
    assert set(by_index) == {1, 2, 3, 4, 5}
    assert by_index[1]["field"] == "event_type"
    assert by_index[2]["field"] == "position"
    assert "JSON object" in by_index[3]["error"]
    assert "future" in by_index[4]["error"]
    assert by_index[5]["field"] == "user_id"
    assert sink.sent == []


def test_received_at_is_the_servers(client: TestClient) -> None:
    response = client.post("/v1/events", json=[event(received_at=datetime.now(UTC).isoformat())], headers=AUTH)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "received_at"


@pytest.mark.parametrize("body", [b"{not json", b'{"events": []}', b'{"events": 3}', b"[]"])
def test_4xx_on_bad_bodies(client: TestClient, body: bytes) -> None:
    response = client.post("/v1/events", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code in (400, 422)
    assert "error" in response.json()


def test_413_on_an_oversized_body(client: TestClient, sink: RecordingSink) -> None:
    batch = [event(session_id=f"s{i}") for i in range(100)]
    response = client.post("/v1/events", content=json.dumps({"events": batch}), headers=AUTH)
    assert response.status_code == 413
    # Without a Content-Length (chunked), the limit holds while reading.
    chunks = iter([json.dumps({"events": batch}).encode()[i : i + 512] for i in range(0, 20000, 512)])
    response = client.post("/v1/events", content=chunks, headers=AUTH)
    assert response.status_code == 413
    assert sink.sent == []


def test_429_when_a_client_floods(sink: RecordingSink) -> None:
    settings = RecommendSettings(api_token=SecretStr(TOKEN), rate_per_s=1.0, rate_burst=3)
    with TestClient(create_api(settings, sink)) as c:
        codes = [c.post("/v1/events", json=[event()], headers=AUTH).status_code for _ in range(6)]
        assert codes[:3] == [202, 202, 202]
        assert set(codes[3:]) == {429}
        flooded = c.post("/v1/events", json=[event()], headers=AUTH)
        assert int(flooded.headers["retry-after"]) >= 1
        assert c.get("/healthz").status_code == 200  # the API keeps serving


def test_token_bucket_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=2, clock=lambda: now[0])
    assert bucket.take("a") == 0 and bucket.take("a") == 0
    assert bucket.take("a") == pytest.approx(0.5)
    assert bucket.take("b") == 0  # per client
    now[0] = 0.5
    assert bucket.take("a") == 0


def test_healthz_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    client.post("/v1/events", json=[event()], headers=AUTH)
    metrics = client.get("/metrics").text
    assert 'finpulse_clicks_api_events_total{event_type="click"} 1.0' in metrics
    assert 'finpulse_clicks_api_requests_total{status="202"}' in metrics
