"""Errors of the streaming subsystem."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class StreamError(FinpulseError):
    """Base class of streaming errors."""

    exit_code = 7


class ScorerUnavailable(StreamError):
    """No sentiment model could be loaded for the worker."""


class ChangelogDeliveryError(StreamError):
    """Kafka did not acknowledge a table changelog record: offsets are not committed past it."""


class FaustFixError(StreamError):
    """The installed Faust or aiokafka lacks an attribute that ``streams/faust_fixes`` patches."""
