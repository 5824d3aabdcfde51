"""Errors of the inference runtime."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class ModelRuntimeError(FinpulseError):
    """Base class of the errors raised by ``finpulse.runtime``."""


class ArtefactMissingError(ModelRuntimeError):
    """The model directory, its card or a file the card names does not exist."""


class CardError(ModelRuntimeError):
    """The model card is unreadable or does not describe a usable model."""


class ArtefactCorruptError(ModelRuntimeError):
    """A file's sha256 differs from the one in the model card (corrupt, truncated or swapped)."""


class InferenceError(ModelRuntimeError):
    """onnxruntime failed to create a session or to run the model."""
