"""Errors of the training and evaluation subsystem."""

from __future__ import annotations

from finpulse.exceptions import FinpulseError


class ModelsError(FinpulseError):
    """Base class of the errors raised by ``finpulse.models``."""

    exit_code = 5


class DataError(ModelsError):
    """A data set is missing, unreadable or has an unexpected format."""


class BaseModelNotFoundError(ModelsError):
    """The base model named in the settings cannot be found locally."""


class TrainingError(ModelsError):
    """Training could not run or produced no usable model."""


class TopicHeadError(ModelsError):
    """A saved topic head predicts other topics, or from another pooling, than this finpulse expects."""


class ArtefactMissingError(ModelsError):
    """A trained model or an export the command needs does not exist yet."""


class MindFormatError(ModelsError):
    """A MIND-format file has a malformed line; the message names the file and the line number."""


class ArticleSourceError(ModelsError):
    """The articles a simulation chooses among could not be read."""
