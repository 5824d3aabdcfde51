"""Errors of the export subsystem."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class ExportError(FinpulseError):
    """The model could not be exported or quantised."""

    exit_code = 5


class OutputMismatchError(ExportError):
    """The exported model disagrees with the torch model (fp32 logits) or with fp32 (int8 labels)."""


class ExportCheckError(ExportError):
    """The exported model's outputs differ from the trained model's beyond tolerance."""
