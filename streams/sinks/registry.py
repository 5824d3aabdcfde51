"""Alert sinks chosen by name from settings (``FINPULSE_ALERTS__SINKS``), imported only when chosen."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

from finpulse.settings import Settings
from finpulse.streams.sinks.alert_base import AlertSink
from finpulse.streams.sinks.exceptions import UnknownSinkError

logger = logging.getLogger(__name__)

#: name → "module:class" of the plugin; a plugin's optional dependencies are imported with its module.
ALERT_SINKS: dict[str, str] = {
    "alerta": "finpulse.streams.sinks.alerta_sink:AlertaSink",
    "log": "finpulse.streams.sinks.log_sink:LogSink",
}


def alert_sink_class(name: str) -> type[AlertSink]:
    """The plugin class registered as ``name``."""
    try:
        module_name, _, class_name = ALERT_SINKS[name].partition(":")
    except KeyError:
        raise UnknownSinkError(f"unknown alert sink {name!r}; choose from {', '.join(sorted(ALERT_SINKS))}") from None
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, AlertSink)):
        raise TypeError(f"{ALERT_SINKS[name]} is not an AlertSink")
    return cls


def build_sinks(settings: Settings, on_retry: Callable[[str], None] | None = None) -> list[AlertSink]:
    """The sinks named in settings, in order."""
    sinks = [alert_sink_class(name).from_settings(settings, on_retry) for name in settings.alerts.sinks]
    logger.info("alert sinks: %s", ", ".join(s.name for s in sinks) or "none")
    return sinks
