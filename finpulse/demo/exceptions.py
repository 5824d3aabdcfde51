"""Errors of the demo app."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class DemoError(FinpulseError):
    """A step of the main job on the embedded stack failed; the message says which and where its log is."""

    exit_code = 8
