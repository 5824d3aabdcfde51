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


class FetchRefusedError(FetchError):
    """A fetch not made, or given up, on purpose; the scraper counts each subclass as its own reason."""


class BadLinkError(FetchRefusedError):
    """A URL that is not a fetchable http(s) URL (no host, port out of range, invalid address, other scheme)."""


class UnsafeAddressError(FetchRefusedError):
    """A host that resolves to a loopback, private, link-local, multicast or reserved address not allowed by the settings."""


class RobotsDeniedError(FetchRefusedError):
    """robots.txt disallows the URL (or a redirect target), or was unavailable."""


class FetchDeadlineError(FetchRefusedError):
    """The fetch was not done within its total deadline (retries, redirects and robots.txt included)."""


class ProducerError(SourceError):
    """The Kafka producer cannot be built or could not deliver records."""


class ClicksApiConfigError(SourceError):
    """The clicks API cannot start with these settings (e.g. no bearer token)."""
