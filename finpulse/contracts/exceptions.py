"""Errors of the contracts: what finpulse itself writes and must be able to read back."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class ContractError(FinpulseError):
    """Base class of the contracts' errors."""

    exit_code = 7


class SerializationBug(ContractError):
    """finpulse produced a record it cannot read back: a bug in our own code, never bad input."""


class VectorFormatError(ContractError):
    """A packed vector in a table value is not base64 of float32 values (our own serialization went wrong)."""
