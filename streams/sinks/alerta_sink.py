"""Alert sink for Alerta: one alert per ticker (resource), de-duplicated by Alerta itself.

A raise is sent with a severity from the p-value; a resolve sends the same resource/event with
``normal`` severity, which closes the alert in Alerta, and keeps the raise's evidence on it. Transient failures (connection errors, 5xx,
408, 429) are retried with capped back-off until Alerta accepts the alert; any other 4xx is a refusal
for good and raises :class:`AlertDeliveryError` with the status and Alerta's reason (the alert agent
dead-letters the alert).
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
    """The Alerta JSON body of a spike alert, with the evidence in text and attributes.

    Alerta closes the raise's alert with the resolve (same resource and event), replacing its text and merging
    the resolve's attributes over the raise's. So a resolve sends the raise's evidence again (``alert.raised``)
    under the raise's names and text, and its own figures beside them (``resolve*``, ``resolvedBy``); a
    resolve written before it carried ``raised`` sends only its own attributes, and the merge keeps the raise's.
    """
    resolved = alert.status == "resolve"
    if not resolved:
        lines, attributes = _evidence_lines(alert.key, alert), _evidence_attributes(alert)
    elif alert.raised is None:
        lines, attributes = [_resolve_line(alert)], _resolve_attributes(alert)
    else:
        lines = [*_evidence_lines(alert.key, alert.raised), _resolve_line(alert)]
        attributes = {**_evidence_attributes(alert.raised), **_resolve_attributes(alert)}
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
        "attributes": attributes,
    }


def _evidence_lines(key: str, ev: SpikeAlert) -> list[str]:
    lines = [
        f"{ev.k} of {ev.n} articles about {key} were negative "
        f"({ev.share:.0%}; baseline {ev.baseline:.0%}; p={ev.p_value:.3g}) "
        f"in {ev.window_start:%Y-%m-%d %H:%M}–{ev.window_end:%H:%M} UTC."
    ]
    for h in ev.headlines:
        lines.append(f"- [{h.negative_score:.2f}] {h.title}" + (f" <{h.url}>" if h.url else ""))
    return lines


def _evidence_attributes(ev: SpikeAlert) -> dict[str, Any]:
    return {
        "n": ev.n,
        "k": ev.k,
        "share": round(ev.share, 4),
        "baseline": round(ev.baseline, 4),
        "pValue": ev.p_value,
        "windowStart": ev.window_start.isoformat(),
        "windowEnd": ev.window_end.isoformat(),
        "headlines": [h.model_dump(mode="json") for h in ev.headlines],
    }


def _resolve_line(alert: SpikeAlert) -> str:
    if alert.resolved_by == "quiet":
        return (f"Closed by the quiet timeout: no window held enough articles about {alert.key} for "
                f"{_duration(alert.quiet_timeout_s or 0.0)}, so its negative share was not seen back to normal.")
    if alert.resolved_by == "share":
        return (f"Resolved: {alert.k} of {alert.n} articles about {alert.key} were negative ({alert.share:.0%}; "
                f"baseline {alert.baseline:.0%}) in {alert.window_start:%Y-%m-%d %H:%M}–{alert.window_end:%H:%M} UTC.")
    return f"Negative share for {alert.key} is back to {alert.share:.0%} (baseline {alert.baseline:.0%})."


def _resolve_attributes(alert: SpikeAlert) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "resolvedBy": alert.resolved_by or "share",
        "resolveN": alert.n,
        "resolveK": alert.k,
        "resolveShare": round(alert.share, 4),
        "resolveBaseline": round(alert.baseline, 4),
        "resolveWindowStart": alert.window_start.isoformat(),
        "resolveWindowEnd": alert.window_end.isoformat(),
    }
    if alert.quiet_timeout_s is not None:
        attributes["quietTimeoutS"] = alert.quiet_timeout_s
    return attributes


def _duration(seconds: float) -> str:
    """``40 s``, ``60 min``, ``2.5 h``: the quiet timeout as the alert text states it."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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
                    reason = response.text[:2000]
                    raise AlertDeliveryError(f"Alerta refused {alert.alert_id} with {response.status_code}: {reason}",
                                             status=response.status_code, reason=reason)
                logger.warning("Alerta answered %s; retry %d for %s", response.status_code, attempt, alert.alert_id)
            self._on_retry(self.name)
            await asyncio.sleep(min(MAX_BACKOFF_S, 0.5 * 2 ** min(attempt - 1, 16)))

    async def close(self) -> None:
        await self._client.aclose()
