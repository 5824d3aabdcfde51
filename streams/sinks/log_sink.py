"""Alert sink that writes alerts to the log (structured fields for JSON logs)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from finpulse.contracts.records import SpikeAlert
from finpulse.settings import Settings
from finpulse.streams.sinks.alert_base import AlertSink

logger = logging.getLogger(__name__)


class LogSink(AlertSink):
    name = "log"

    @classmethod
    def from_settings(cls, settings: Settings, on_retry: Callable[[str], None] | None = None) -> LogSink:
        return cls()

    async def deliver(self, alert: SpikeAlert) -> None:
        level = logging.WARNING if alert.status == "raise" else logging.INFO
        logger.log(
            level,
            "%s negative-sentiment spike for %s: %d/%d negative (%.0f%% vs baseline %.0f%%, p=%.2g)",
            "RAISED" if alert.status == "raise" else "resolved",
            alert.key, alert.k, alert.n, 100 * alert.share, 100 * alert.baseline, alert.p_value,
            extra={"alert_key": alert.key, "alert_status": alert.status, "p_value": alert.p_value},
        )
