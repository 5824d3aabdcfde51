"""Errors of the pipeline benchmark."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class BenchError(FinpulseError):
    """The benchmark cannot run or a measurement did not complete."""

    exit_code = 8


class BenchModelMissing(BenchError):
    """No exported sentiment model (with its card) to benchmark."""


class BenchTimeout(BenchError):
    """The pipeline did not index the expected documents in time."""
