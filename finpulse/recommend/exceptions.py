"""Errors of the recommendation subsystem."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class RecommendError(FinpulseError):
    """Base class of the recommendation errors."""


class MindFormatError(RecommendError):
    """A MIND-format file has a malformed line; the message names the file and the line number."""


class ClicksApiConfigError(RecommendError):
    """The clicks API cannot start with these settings (e.g. no bearer token)."""


class ArticleSourceError(RecommendError):
    """The articles a simulation chooses among could not be read."""


class ModelArtefactError(RecommendError):
    """A recommendation artefact is missing, corrupt or inconsistent with its card."""


class ExportCheckError(RecommendError):
    """The exported model's outputs differ from the trained model's beyond tolerance."""


class SharedEncoderMismatchError(RecommendError):
    """``FINPULSE_RECOMMEND__SHARED_ENCODER`` is on, but the recommendation model was not trained over the encoder
    of the sentiment model in use (or that model has no embedding output)."""


class VectorFormatError(RecommendError):
    """A packed vector in a table value is not base64 of float32 values (our own serialization went wrong)."""
