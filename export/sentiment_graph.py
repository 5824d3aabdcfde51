"""The sentiment model as the export sees it: the trained torch model (with its topic head when it has one), the
module whose outputs become the graph's, and the padded inputs the output check feeds both.

torch, transformers and onnxruntime are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finpulse.export.exceptions import ExportError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: Every output the sentiment graph can have, in the order a graph lists them.
OUTPUTS = ("logits", "topic_logits", "embedding")


def load_trained(model_dir: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The trained sentiment model of ``model_dir`` in eval mode, its topic head attached when the dir holds one."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from finpulse.models.topic_head import load_topic_head

    if not (model_dir / "config.json").is_file():
        raise ExportError(f"no trained model at {model_dir}: run `finpulse model train sentiment` first")
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    load_topic_head(model, model_dir)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return model, tokenizer


def graph_outputs(model: PreTrainedModel, wanted: Sequence[str]) -> tuple[str, ...]:
    """The outputs of ``wanted`` the model can give: ``topic_logits`` only with a topic head."""
    from finpulse.models.topic_head import topic_head

    unknown = set(wanted) - set(OUTPUTS)
    if unknown:
        raise ExportError(f"unknown sentiment outputs {sorted(unknown)}")
    has_topics = topic_head(model) is not None
    return tuple(o for o in wanted if o != "topic_logits" or has_topics)


def encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> dict[str, np.ndarray]:
    """``texts`` tokenised and padded to the longest, as the graph's int64 inputs."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding="longest", return_tensors="np")
    ids = enc["input_ids"].astype(np.int64)
    return {
        "input_ids": ids,
        "attention_mask": enc["attention_mask"].astype(np.int64),
        "token_type_ids": np.zeros_like(ids),
    }


def with_outputs(model: PreTrainedModel, output_names: Sequence[str]) -> Any:
    """``model`` as a module returning the export's outputs from one pass: ``logits``, and, if asked, ``topic_logits``
    and ``embedding`` (the L2-normalised mean of the last hidden state, the vector the topic head reads)."""
    import torch

    from finpulse.models.topic_head import forward_heads

    names = tuple(output_names)
    if graph_outputs(model, names) != names:
        raise ExportError(f"the model cannot give the outputs {list(names)} (no topic head?)")
    embed, topics = "embedding" in names, "topic_logits" in names

    class Outputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> Any:
            batch = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            heads = forward_heads(self.model, batch, pooled=embed, topics=topics)
            values = {"logits": heads.logits, "topic_logits": heads.topic_logits}
            if embed:
                assert heads.pooled is not None  # asked for
                values["embedding"] = torch.nn.functional.normalize(heads.pooled, dim=-1)
            out = tuple(values[name] for name in names)
            return out if len(out) > 1 else out[0]

    return Outputs().eval()


def ort_session(path: Path) -> Any:
    """A plain CPU onnxruntime session of one exported graph (for the output check)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
