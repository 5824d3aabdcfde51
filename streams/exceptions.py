"""Errors of the streaming subsystem."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class StreamError(FinpulseError):
    """Base class of streaming errors."""


class SerializationBug(StreamError):
    """finpulse produced a record it cannot read back: a bug in our own code, never bad input."""


class ScorerUnavailable(StreamError):
    """No sentiment model could be loaded for the worker."""


class ChangelogDeliveryError(StreamError):
    """Kafka did not acknowledge a table changelog record: offsets are not committed past it."""
