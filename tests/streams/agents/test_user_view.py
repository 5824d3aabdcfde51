"""The worker's web port on the real embedded servers: ``GET /v1/users/{id}/recommendations`` needs the view's
bearer token and answers the same shape for users it has never seen; Faust's ``/table`` and ``/router`` views
are off."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from finpulse.contracts.events import ClickEvent
from finpulse.contracts.topics import CLICKS, topic_name
from finpulse.streams.agents.recommend import PROFILES_TABLE
from tests.streams.agents.test_feed_e2e import settings_for
from tests.streams.harness import WorkerProcess, produce, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "a-view-token-for-this-test"
KNOWN = "reader-with-a-click"


def _get(port: int, path: str, token: str | None = None) -> httpx.Response | None:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=10)
    except httpx.TransportError:
        return None


def test_view_needs_its_token_hides_who_exists_and_faust_views_are_off(
    stack: Any, unique_name: str, tiny_onnx_dir: Path, tmp_path: Path
) -> None:
    settings = settings_for(stack, unique_name, tiny_onnx_dir, tmp_path)
    data = settings.model_dump()
    data["stream"]["roles"] = ["recommend"]
    data["recommend"]["view_token"] = TOKEN
    settings = type(settings).model_validate(data)
    port = settings.stream.web_port
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        click = ClickEvent(user_id=KNOWN, article_id="a" * 32, event_type="click", timestamp=datetime.now(UTC),
                           position=0, session_id="s")
        produce(settings, topic_name(settings.kafka, CLICKS), [(KNOWN.encode(), click.to_bytes())])

        def answered(user: str) -> httpx.Response | None:
            response = _get(port, f"/v1/users/{user}/recommendations", TOKEN)
            return response if response is not None and response.status_code != 503 else None

        wait_for(lambda: answered("nobody"), 120, "the view (partitions assigned)", worker)
        known = wait_for(lambda: (r := answered(KNOWN)) and r.status_code == 200 and r.json()["clicks_seen"] == 1 and r,
                         60, "the known reader's profile", worker)

        for token in (None, "wrong-token", TOKEN + "x"):
            refused = _get(port, f"/v1/users/{KNOWN}/recommendations", token)
            assert refused is not None and refused.status_code == 401, (token, refused and refused.text)
            assert KNOWN not in refused.text
            assert refused.headers.get("WWW-Authenticate", "").startswith("Bearer")
        unknown = _get(port, "/v1/users/never-seen-user/recommendations", TOKEN)
        assert unknown is not None and unknown.status_code == 200, unknown and unknown.text
        assert set(unknown.json()) == set(known.json()), "the same answer shape for users seen and not seen"
        assert unknown.json()["items"] == [] and unknown.json()["clicks_seen"] == 0

        for path in ("/table/", f"/table/{PROFILES_TABLE}/", "/router/", "/router/topics",
                     "/graph/", "/assignment/", "/performance/"):
            response = _get(port, path, TOKEN)
            assert response is not None and response.status_code == 404, (path, response and response.text[:300])
    finally:
        worker.stop()
