"""Errors shared by every finpulse subsystem."""

from __future__ import annotations


class FinpulseError(Exception):
    """Base class of every error finpulse raises on purpose."""


class SettingsError(FinpulseError):
    """A setting is missing or has a value that cannot be used.

    The message always names the environment variable to fix.
    """
