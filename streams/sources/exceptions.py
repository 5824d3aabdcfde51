"""Errors of the news sources (scraper, replay, ticker tagging)."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class SourceError(FinpulseError):
    """Base class of the errors of :mod:`finpulse.streams.sources`."""

    exit_code = 6


class ReplayFileError(SourceError):
    """A replay file cannot be read (missing, unknown format, missing text column)."""


class FeedListError(SourceError):
    """The list of feeds to scrape cannot be read."""


class FetchError(SourceError):
    """An HTTP fetch failed for good (4xx, or 5xx/connection errors after the last retry)."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status


class ProducerError(SourceError):
    """The Kafka producer cannot be built or could not deliver records."""


class ClicksApiConfigError(SourceError):
    """The clicks API cannot start with these settings (e.g. no bearer token)."""
