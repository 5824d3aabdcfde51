"""The alert sink plugin interface; :mod:`.registry` chooses plugins by name (``FINPULSE_ALERTS__SINKS``)."""

from __future__ import annotations

import abc
from collections.abc import Callable

from finpulse.contracts.records import SpikeAlert
from finpulse.settings import Settings


class AlertSink(abc.ABC):
    """Delivers one alert; returns only when the alert was accepted (retrying transient failures)."""

    name: str = "base"

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: Settings, on_retry: Callable[[str], None] | None = None) -> AlertSink:
        """The sink as the settings configure it (each sink reads only its own group)."""

    @abc.abstractmethod
    async def deliver(self, alert: SpikeAlert) -> None:
        """Return once the sink accepted ``alert``; raise :class:`~finpulse.streams.sinks.exceptions.AlertDeliveryError`
        (with the status and reason) when it refused the alert for good."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
