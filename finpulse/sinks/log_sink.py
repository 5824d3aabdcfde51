"""Alert sink that writes alerts to the log (structured fields for JSON logs)."""

from __future__ import annotations

import logging

from finpulse.sinks.alert_base import AlertSink
from finpulse.streams.records import SpikeAlert

logger = logging.getLogger(__name__)


class LogSink(AlertSink):
    name = "log"

    async def deliver(self, alert: SpikeAlert) -> None:
        level = logging.WARNING if alert.status == "raise" else logging.INFO
        logger.log(
            level,
            "%s negative-sentiment spike for %s: %d/%d negative (%.0f%% vs baseline %.0f%%, p=%.2g)",
            "RAISED" if alert.status == "raise" else "resolved",
            alert.key, alert.k, alert.n, 100 * alert.share, 100 * alert.baseline, alert.p_value,
            extra={"alert_key": alert.key, "alert_status": alert.status, "p_value": alert.p_value},
        )
