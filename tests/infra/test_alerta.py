"""Alerta on the embedded PostgreSQL: authentication is required and the stack's API key works."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_alert_with_key_is_stored_and_read_back(stack, unique_name: str) -> None:
    headers = {"Authorization": f"Key {stack.alerta_api_key}"}
    alert = {"resource": unique_name, "event": "NegativeSentimentSpike", "environment": "Production",
             "service": ["finpulse"], "severity": "major", "text": "test alert", "value": "0.9"}
    sent = httpx.post(f"{stack.alerta_endpoint}/alert", json=alert, headers=headers, timeout=10)
    assert sent.status_code == 201, sent.text
    found = httpx.get(f"{stack.alerta_endpoint}/alerts", params={"resource": unique_name}, headers=headers, timeout=10)
    assert found.status_code == 200
    alerts = found.json()["alerts"]
    assert [(a["resource"], a["event"], a["severity"]) for a in alerts] == [(unique_name, "NegativeSentimentSpike", "major")]


def test_requests_without_a_key_get_401(stack) -> None:
    assert httpx.get(f"{stack.alerta_endpoint}/alerts", timeout=10).status_code == 401
    bad = httpx.get(f"{stack.alerta_endpoint}/alerts", headers={"Authorization": "Key not-a-key"}, timeout=10)
    assert bad.status_code == 401
    post = httpx.post(f"{stack.alerta_endpoint}/alert", json={"resource": "x", "event": "y"}, timeout=10)
    assert post.status_code == 401
