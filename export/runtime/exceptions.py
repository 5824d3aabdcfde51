"""Errors of the inference runtime."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class ModelRuntimeError(FinpulseError):
    """Base class of the errors raised by ``finpulse.export.runtime``."""

    exit_code = 5


class ArtefactMissingError(ModelRuntimeError):
    """The model directory, its card or a file the card names does not exist."""


class CardError(ModelRuntimeError):
    """The model card is unreadable or does not describe a usable model."""


class ArtefactCorruptError(ModelRuntimeError):
    """A file's sha256 differs from the one in the model card (corrupt, truncated or swapped)."""


class InferenceError(ModelRuntimeError):
    """onnxruntime failed to create a session or to run the model."""


class ModelArtefactError(ModelRuntimeError):
    """A recommendation artefact is missing, corrupt or inconsistent with its card."""


class SharedEncoderMismatchError(ModelRuntimeError):
    """``FINPULSE_RECOMMEND__SHARED_ENCODER`` is on, but the recommendation model was not trained over the encoder
    of the sentiment model in use (or that model has no embedding output)."""
