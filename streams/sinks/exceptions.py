"""Errors of the sinks (Elasticsearch, Alerta, log)."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class SinkError(FinpulseError):
    """Base class of sink errors."""

    exit_code = 7


class BulkRequestRefused(SinkError):
    """Elasticsearch refused a whole bulk request for a reason no document explains (401, 403, 404: credentials,
    permissions, a wrong URL): the settings need fixing, retrying or dead-lettering the documents would not help."""


class AlertDeliveryError(SinkError):
    """An alert sink refused an alert for good (not a transient failure); the alert agent dead-letters the alert
    with ``status`` and ``reason``."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason or message


class ElasticsearchConfigError(SinkError):
    """The Elasticsearch settings cannot build a client (conflicting auth, missing CA file, no aiohttp)."""


class TemplateError(SinkError):
    """An index template file is missing or Elasticsearch refused it."""


class UnknownSinkError(SinkError):
    """A sink name in settings that no plugin is registered under."""
