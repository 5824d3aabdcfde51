"""Errors of the training and evaluation subsystem."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class ModelsError(FinpulseError):
    """Base class of the errors raised by ``finpulse.models``."""


class DataError(ModelsError):
    """A data set is missing, unreadable or has an unexpected format."""


class BaseModelNotFoundError(ModelsError):
    """The base model named in the settings cannot be found locally."""


class TrainingError(ModelsError):
    """Training could not run or produced no usable model."""


class ArtefactMissingError(ModelsError):
    """A trained model or an export the command needs does not exist yet."""
