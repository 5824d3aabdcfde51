"""Alert sink for Alerta: one alert per ticker (resource), de-duplicated by Alerta itself.

A raise is sent with a severity from the p-value; a resolve sends the same resource/event with
``normal`` severity, which closes the alert in Alerta. Transient failures (connection errors, 5xx,
429) are retried with capped back-off until Alerta accepts the alert.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx

from finpulse.contracts.records import SpikeAlert
from finpulse.settings import AlertaSettings, Settings
from finpulse.streams.sinks.alert_base import AlertSink
from finpulse.streams.sinks.exceptions import AlertDeliveryError

logger = logging.getLogger(__name__)

EVENT = "NegativeSentimentSpike"
MAX_BACKOFF_S = 30.0


def alerta_payload(alert: SpikeAlert, settings: AlertaSettings) -> dict[str, Any]:
    """The Alerta JSON body of a spike alert, with the evidence in text and attributes."""
    resolved = alert.status == "resolve"
    lines = [
        f"{alert.k} of {alert.n} articles about {alert.key} were negative "
        f"({alert.share:.0%}; baseline {alert.baseline:.0%}; p={alert.p_value:.3g}) "
        f"in {alert.window_start:%Y-%m-%d %H:%M}–{alert.window_end:%H:%M} UTC."
    ]
    if resolved:
        lines = [f"Negative share for {alert.key} is back to {alert.share:.0%} (baseline {alert.baseline:.0%})."]
    for h in alert.headlines:
        lines.append(f"- [{h.negative_score:.2f}] {h.title}" + (f" <{h.url}>" if h.url else ""))
    return {
        "resource": alert.key,
        "event": EVENT,
        "environment": settings.environment,
        "service": [settings.service],
        "group": "Sentiment",
        "severity": "normal" if resolved else alert.severity,
        "value": f"{alert.share:.3f}",
        "text": "\n".join(lines),
        "origin": "finpulse",
        "type": "finpulseAlert",
        "tags": [f"ticker:{alert.key}"],
        "attributes": {
            "n": alert.n,
            "k": alert.k,
            "share": round(alert.share, 4),
            "baseline": round(alert.baseline, 4),
            "pValue": alert.p_value,
            "windowStart": alert.window_start.isoformat(),
            "windowEnd": alert.window_end.isoformat(),
            "headlines": [h.model_dump(mode="json") for h in alert.headlines],
        },
    }


class AlertaSink(AlertSink):
    name = "alerta"

    @classmethod
    def from_settings(cls, settings: Settings, on_retry: Callable[[str], None] | None = None) -> AlertaSink:
        return cls(settings.alerta, on_retry=on_retry)

    def __init__(self, settings: AlertaSettings, on_retry: Callable[[str], None] | None = None) -> None:
        self._settings = settings
        self._on_retry = on_retry or (lambda _name: None)
        headers = {"Content-Type": "application/json"}
        if settings.api_key is not None:
            headers["Authorization"] = f"Key {settings.api_key.get_secret_value()}"
        self._client = httpx.AsyncClient(base_url=settings.endpoint, headers=headers, timeout=settings.timeout_s)

    async def deliver(self, alert: SpikeAlert) -> None:
        payload = alerta_payload(alert, self._settings)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._client.post("/alert", json=payload)
            except httpx.TransportError as exc:
                logger.warning("Alerta unreachable (%s); retry %d for %s", exc, attempt, alert.alert_id)
            else:
                if response.status_code < 300:
                    return
                if response.status_code not in (408, 429) and response.status_code < 500:
                    raise AlertDeliveryError(
                        f"Alerta refused {alert.alert_id} with {response.status_code}: {response.text[:500]}"
                    )
                logger.warning("Alerta answered %s; retry %d for %s", response.status_code, attempt, alert.alert_id)
            self._on_retry(self.name)
            await asyncio.sleep(min(MAX_BACKOFF_S, 0.5 * 2 ** min(attempt - 1, 16)))

    async def close(self) -> None:
        await self._client.aclose()
