"""The clicks API's limits, served over real HTTP against the embedded Kafka: events per second per token (not
only requests), the limiter keyed on the token whatever address the requests come from (a proxy's, or another
one), and unauthenticated requests refused before they spend the token's buckets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from finpulse.settings import Settings
from finpulse.streams.sources.clicks_api import KafkaEventSink, create_api
from tests.streams.harness import consume_all, free_port

pytestmark = [pytest.mark.integration]

TOKEN = "limits-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROXY = "127.0.0.3"  # every request through the proxy arrives from its address
ELSEWHERE = "127.0.0.2"


def _settings(stack: Any, unique_name: str, **recommend: Any) -> Settings:
    from finpulse.infra.topics_admin import create_topics

    data = stack.settings.model_dump()
    data["kafka"]["topic_prefix"] = f"{unique_name}."
    data["recommend"].update(api_token=TOKEN, **recommend)
    settings = Settings.model_validate(data)
    create_topics(settings)
    return settings


@contextmanager
def _serving(settings: Settings, sink: KafkaEventSink) -> Iterator[str]:
    """The clicks API under uvicorn in a thread of this process, on a free loopback port."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_api(settings.recommend, sink), host="127.0.0.1", port=port,
                                           log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the clicks API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def _client(base: str, source: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=30, transport=httpx.HTTPTransport(local_address=source))


def _events(n: int, user: str = "u1") -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [{"user_id": user, "article_id": f"{i:032x}", "event_type": "impression", "timestamp": now, "position": i,
             "session_id": "s"} for i in range(n)]


def test_events_per_second_are_limited_per_token(stack: Any, unique_name: str) -> None:
    settings = _settings(stack, unique_name, rate_per_s=1000, rate_burst=1000, max_batch_events=100,
                         rate_events_per_s=20, rate_events_burst=100)
    sink = KafkaEventSink(settings)
    with _serving(settings, sink) as base, _client(base, PROXY) as client:
        assert client.post("/v1/events", json=_events(100), headers=AUTH).status_code == 202
        flooded = client.post("/v1/events", json=_events(100, "u2"), headers=AUTH)
        assert flooded.status_code == 429, flooded.text
        assert "events" in flooded.json()["error"]
        assert int(flooded.headers["retry-after"]) >= 4  # 100 events at 20/s; requests were far under their limit
    records = consume_all(settings, sink.topic, expect=200, timeout_s=10)  # reads all there is
    assert [r.key for r in records] == [b"u1"] * 100, "nothing of the refused batch reached Kafka"


def test_the_limiter_keys_on_the_token_and_unauthenticated_requests_spend_nothing(stack: Any, unique_name: str) -> None:
    settings = _settings(stack, unique_name, rate_per_s=0.01, rate_burst=3)  # no refill during the test
    sink = KafkaEventSink(settings)
    with _serving(settings, sink) as base, _client(base, PROXY) as proxied, _client(base, ELSEWHERE) as direct:
        anonymous = [proxied.post("/v1/events", json=_events(1), headers=h).status_code
                     for h in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}] * 4]
        assert set(anonymous) == {401}, "refused for the token, not for a rate spent by others"
        accepted = [proxied.post("/v1/events", json=_events(1), headers=AUTH).status_code for _ in range(3)]
        assert accepted == [202, 202, 202], "the flood of unauthenticated requests spent nothing of the token's bucket"
        # Another address, the same token: the same bucket, now empty.
        elsewhere = direct.post("/v1/events", json=_events(1), headers=AUTH)
        assert elsewhere.status_code == 429
        assert int(elsewhere.headers["retry-after"]) >= 1
    assert len(consume_all(settings, sink.topic, expect=3, timeout_s=20)) == 3
