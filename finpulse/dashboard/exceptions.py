"""Errors of trend viewing (Kibana import, the live dashboard)."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class TrendsError(FinpulseError):
    """Base class of trend-viewing errors."""

    exit_code = 8


class KibanaObjectsError(TrendsError):
    """The shipped saved-object files are missing or not valid ndjson."""


class KibanaImportError(TrendsError):
    """Kibana could not be reached or refused the saved objects."""


class DashboardError(TrendsError):
    """The live dashboard could not start (port taken, bad settings)."""
