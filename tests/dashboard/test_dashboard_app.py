"""The live page's server without a browser: JSON shaping, security headers, static files, the CLI process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from finpulse.dashboard.app import CSP, _alert, _points, create_app, plotly_js_path, serve_dashboard
from finpulse.dashboard.exceptions import DashboardError
from finpulse.dashboard.recommendations import flatten_recommendations
from finpulse.settings import Settings, child_process_env


def test_points_count_negatives_per_bucket() -> None:
    histogram = {"buckets": [
        {"key": 1, "key_as_string": "2026-01-01T00:00:00.000Z", "doc_count": 4,
         "labels": {"buckets": [{"key": "negative", "doc_count": 3}, {"key": "neutral", "doc_count": 1}]}},
        {"key": 2, "doc_count": 2, "labels": {"buckets": [{"key": "positive", "doc_count": 2}]}},
        {"key": 3, "doc_count": 0, "labels": {"buckets": []}},
    ]}
    assert _points(histogram) == [
        {"t": "2026-01-01T00:00:00.000Z", "n": 4, "negative": 3, "share": 0.75},
        {"t": 2, "n": 2, "negative": 0, "share": 0.0},
        {"t": 3, "n": 0, "negative": 0, "share": None},
    ]


def test_alert_keeps_the_evidence_and_nothing_else() -> None:
    alert = _alert({
        "id": "a1", "resource": "ACME", "severity": "major", "status": "open", "text": "12 of 14 ...\n- [0.99] x",
        "attributes": {"n": 14, "k": 12, "share": 0.857, "baseline": 0.1, "pValue": 1e-7, "windowStart": "s", "windowEnd": "e",
                       "headlines": [{"id": "h", "title": "<b>t</b>", "url": "javascript:alert(1)", "negative_score": 0.99}, "junk"]},
        "customer": "secret-ish",
    })
    assert alert["summary"] == "12 of 14 ..."
    assert (alert["n"], alert["k"], alert["pValue"]) == (14, 12, 1e-7)
    assert alert["headlines"] == [{"title": "<b>t</b>", "url": "javascript:alert(1)", "negative_score": 0.99}]  # the page refuses the URL
    assert "customer" not in alert


def test_recommendation_documents_of_either_shape() -> None:
    assert flatten_recommendations({"user_id": "u", "article_id": "a"}) == [{"user_id": "u", "article_id": "a"}]
    listed = {"user_id": "u", "recommended_at": "t", "items": [{"article_id": "a", "rank": 1}, {"article_id": "b", "rank": 2}, 3]}
    assert flatten_recommendations(listed) == [
        {"user_id": "u", "recommended_at": "t", "article_id": "a", "rank": 1},
        {"user_id": "u", "recommended_at": "t", "article_id": "b", "rank": 2},
    ]


@pytest.fixture
def client() -> Any:
    with TestClient(create_app(Settings.model_validate({}))) as test_client:  # clients are built, nothing is contacted yet
        yield test_client


def test_page_and_assets_carry_the_security_headers(client: Any) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP
    assert "script-src 'self';" in CSP and "unsafe-eval" not in CSP
    assert "<script>" not in page.text and "on" + "load=" not in page.text  # no inline script in the page
    assert 'src="/vendor/plotly.min.js"' in page.text
    for path in ("/static/app.js", "/static/app.css", "/vendor/plotly.min.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["x-content-type-options"] == "nosniff"
    script = client.get("/static/app.js").text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert client.get("/vendor/plotly.min.js").content == plotly_js_path().read_bytes()


def test_bad_range_is_a_400(client: Any) -> None:
    response = client.get("/api/series", params={"minutes": 7})
    assert response.status_code == 400 and "minutes must be one of" in response.json()["error"]


def test_unreachable_servers_are_a_503_with_a_reason() -> None:
    settings = Settings.model_validate({"elasticsearch": {"url": "http://127.0.0.1:9", "request_timeout_s": 2},
                                        "alerta": {"endpoint": "http://127.0.0.1:9/api", "timeout_s": 2}})
    with TestClient(create_app(settings)) as client:
        headlines = client.get("/api/headlines")
        assert headlines.status_code == 503 and headlines.json()["error"].startswith("Elasticsearch")
        alerts = client.get("/api/alerts")
        assert alerts.status_code == 503 and alerts.json()["error"].startswith("Alerta")


def test_serve_dashboard_refuses_a_taken_port() -> None:
    settings = Settings.model_validate({"pseudonym_key": "a-test-key-of-at-least-32-bytes-long"})
    handle = serve_dashboard(settings, port=0)
    try:
        assert httpx.get(handle.url + "healthz", timeout=5).json() == {"ok": True}
        with pytest.raises(DashboardError, match=f"cannot listen on 127.0.0.1:{handle.port}"):
            serve_dashboard(settings, port=handle.port)
    finally:
        handle.stop()
    assert not handle.thread.is_alive()


@pytest.mark.integration
def test_cli_serves_the_stack_data(stack: Any, unique_name: str, tmp_path: Path) -> None:
    from tests.streams.harness import free_port

    port = free_port()
    env = child_process_env(stack.settings)
    env["FINPULSE_ELASTICSEARCH__INDEX_PREFIX"] = unique_name
    log = (tmp_path / "dashboard.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "finpulse", "dashboard", "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/api/headlines", timeout=5).json()
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "dashboard.log").read_text()
                time.sleep(0.3)
        assert body == {"headlines": []}  # no index for this prefix yet: empty, not an error
        users = httpx.get(f"http://127.0.0.1:{port}/api/users", timeout=5).json()
        assert users == {"available": False, "users": []}
        assert "alerts" in httpx.get(f"http://127.0.0.1:{port}/api/alerts", timeout=10).json()
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
