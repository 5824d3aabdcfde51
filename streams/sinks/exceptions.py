"""Errors of the sinks (Elasticsearch, Alerta, log)."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class SinkError(FinpulseError):
    """Base class of sink errors."""

    exit_code = 7


class DocumentRejected(SinkError):
    """Elasticsearch refused a document for good (not a transient failure): a bug in our records."""


class AlertDeliveryError(SinkError):
    """An alert sink refused an alert for good (not a transient failure)."""


class ElasticsearchConfigError(SinkError):
    """The Elasticsearch settings cannot build a client (conflicting auth, missing CA file, no aiohttp)."""


class TemplateError(SinkError):
    """An index template file is missing or Elasticsearch refused it."""


class UnknownSinkError(SinkError):
    """A sink name in settings that no plugin is registered under."""
