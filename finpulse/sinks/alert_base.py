"""Alert sinks are small plugins chosen by settings (``FINPULSE_ALERTS__SINKS``), like Alerta's PluginBase."""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable

from finpulse.settings import Settings
from finpulse.streams.records import SpikeAlert

logger = logging.getLogger(__name__)


class AlertSink(abc.ABC):
    """Delivers one alert; returns only when the alert was accepted (retrying transient failures)."""

    name: str = "base"

    @abc.abstractmethod
    async def deliver(self, alert: SpikeAlert) -> None: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def build_sinks(settings: Settings, on_retry: Callable[[str], None] | None = None) -> list[AlertSink]:
    """The sinks named in settings, in order."""
    from finpulse.sinks.alerta_sink import AlertaSink
    from finpulse.sinks.log_sink import LogSink

    sinks: list[AlertSink] = []
    for name in settings.alerts.sinks:
        if name == "alerta":
            sinks.append(AlertaSink(settings.alerta, on_retry=on_retry))
        elif name == "log":
            sinks.append(LogSink())
    logger.info("alert sinks: %s", ", ".join(s.name for s in sinks) or "none")
    return sinks
