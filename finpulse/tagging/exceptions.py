"""Errors of the tagging package."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class TaggingError(FinpulseError):
    """Base class of the tagging errors."""

    exit_code = 6


class CompanyDataError(TaggingError):
    """The company list (tickers, names, sectors) cannot be read."""
