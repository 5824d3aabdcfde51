"""One export configuration per model: inputs, dynamic axes, opset, outputs and the check tolerances."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Exporter = Literal["legacy", "dynamo"]


def _bert_axes() -> dict[str, dict[int, str]]:
    return {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
        "token_type_ids": {0: "batch", 1: "sequence"},
        "logits": {0: "batch"},
        "embedding": {0: "batch"},
    }


@dataclass(frozen=True)
class ExportConfig:
    """How a model is exported and what the output check accepts."""

    name: str
    input_names: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
    #: ``logits`` (sentiment) and, from the same pass, ``topic_logits`` (the topic head's; left out for a model without
    #: one) and ``embedding``: the L2-normalised mean of the last hidden state (what the recommender can use instead of
    #: running its own encoder; see ``FINPULSE_RECOMMEND__SHARED_ENCODER``).
    output_names: tuple[str, ...] = ("logits", "topic_logits", "embedding")
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=_bert_axes)
    opset: int = 17
    #: Largest |torch - ORT fp32| logit difference accepted.
    atol: float = 1e-3
    #: Smallest share of the test set on which int8 and fp32 must agree on the label.
    min_int8_agreement: float = 0.97
    #: The same for the topic label: 20 classes leave closer margins between the best two than 3 do.
    min_int8_topic_agreement: float = 0.95
    #: Largest |torch - ORT fp32| embedding difference accepted; an int8/fp32 cosine below the second is warned about.
    embedding_atol: float = 1e-3
    min_int8_embedding_cosine: float = 0.95
    #: ``legacy`` (TorchScript-based, ``dynamo=False``) is tried first; the other one if it fails.
    exporter: Exporter = "legacy"
    fp32_file: str = "model.fp32.onnx"
    int8_file: str = "model.int8.onnx"

    def __post_init__(self) -> None:
        if self.opset < 17:
            raise ValueError(f"opset must be >= 17, got {self.opset}")
        unknown = set(self.dynamic_axes) - set(self.input_names) - set(self.output_names)
        if unknown:
            raise ValueError(f"dynamic axes name unknown tensors {sorted(unknown)}")
        if not (0.0 <= self.min_int8_agreement <= 1.0 and 0.0 <= self.min_int8_topic_agreement <= 1.0):
            raise ValueError("min_int8_agreement and min_int8_topic_agreement must be in [0, 1]")
        if not self.output_names or self.output_names[0] != "logits":
            raise ValueError(f"the first output must be 'logits', got {self.output_names}")

    def axes(self) -> dict[str, dict[int, str]]:
        """The dynamic axes of the inputs and outputs: ``dynamic_axes``, and the batch axis of an output it omits."""
        names = (*self.input_names, *self.output_names)
        return {name: self.dynamic_axes.get(name, {0: "batch"}) for name in names}


SENTIMENT_EXPORT = ExportConfig(name="sentiment")
EXPORT_CONFIGS: dict[str, ExportConfig] = {"sentiment": SENTIMENT_EXPORT}
