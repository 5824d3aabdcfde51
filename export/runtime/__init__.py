"""ONNX inference runtime of the streaming workers (onnxruntime + tokenizers + numpy; never torch).

``from finpulse.export.runtime import SentimentRuntime`` is cheap: onnxruntime is imported when a model loads.
"""

from __future__ import annotations

from finpulse.export.runtime.card import CARD_FILE, ModelCard
from finpulse.export.runtime.exceptions import (
    ArtefactCorruptError,
    ArtefactMissingError,
    CardError,
    ModelRuntimeError,
)
from finpulse.export.runtime.sentiment import Prediction, SentimentRuntime

__all__ = [
    "CARD_FILE",
    "ArtefactCorruptError",
    "ArtefactMissingError",
    "CardError",
    "ModelCard",
    "ModelRuntimeError",
    "Prediction",
    "SentimentRuntime",
]
