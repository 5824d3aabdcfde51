"""The topic head of the sentiment model: a linear layer over the encoder's mean-pooled last hidden state.

The sentiment model stays a transformers sequence-classification model (its classifier is the sentiment head); the
topic head is a ``torch.nn.Linear`` attached to it as the submodule ``topic_classifier``, so the optimiser, gradient
clipping, the best-weights copy and ``train()/eval()`` cover it with the rest. It reads the masked mean of the last
hidden state, the vector the export's ``embedding`` output normalises, so one encoder pass gives sentiment logits,
topic logits and the embedding. On disk it sits beside the ``save_pretrained`` files as :data:`TOPIC_HEAD_WEIGHTS`
(safetensors) and :data:`TOPIC_HEAD_CONFIG` (labels, slugs, pooling), and a model dir without them is the old,
sentiment-only model.

torch is imported inside the functions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finpulse.contracts.records import TOPIC_SLUGS, TOPICS
from finpulse.models.exceptions import TopicHeadError
from finpulse.models.sentiment_batches import masked_mean

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

TOPIC_HEAD_WEIGHTS = "topic_head.safetensors"
TOPIC_HEAD_CONFIG = "topic_head.json"
#: The submodule name of the head on the sequence-classification model (and the prefix of its state-dict keys).
ATTRIBUTE = "topic_classifier"
POOLING = "mean"


def topic_head(model: PreTrainedModel) -> torch.nn.Linear | None:
    """The model's topic head, or None for a sentiment-only model."""
    return getattr(model, ATTRIBUTE, None)


def attach_topic_head(model: PreTrainedModel, n_topics: int = len(TOPICS)) -> torch.nn.Linear:
    """Give ``model`` a fresh topic head (weights ~ N(0, initializer_range), as transformers initialises its heads)."""
    import torch

    head = torch.nn.Linear(int(model.config.hidden_size), n_topics)
    std = float(getattr(model.config, "initializer_range", 0.02))
    torch.nn.init.normal_(head.weight, std=std)
    torch.nn.init.zeros_(head.bias)
    model.add_module(ATTRIBUTE, head)
    return head


@dataclass(frozen=True)
class HeadOutputs:
    """What one encoder pass gives: sentiment logits, topic logits (None without a topic head) and the masked mean
    of the last hidden state (None unless asked for or needed by the topic head)."""

    logits: torch.Tensor
    topic_logits: torch.Tensor | None
    pooled: torch.Tensor | None


def forward_heads(model: PreTrainedModel, batch: Mapping[str, torch.Tensor], pooled: bool = False,
                  topics: bool = True) -> HeadOutputs:
    """One encoder pass over ``batch``: both heads' logits (the topic head's unless ``topics`` is off) and, with
    ``pooled`` (or a topic head at work), the pooled vector.

    In training mode the topic head's input gets the encoder's hidden dropout, as the sentiment head's does."""
    import torch

    head = topic_head(model) if topics else None
    need_hidden = pooled or head is not None
    out = model(**batch, output_hidden_states=need_hidden)
    if not need_hidden:
        return HeadOutputs(out.logits, None, None)
    mean = masked_mean(out.hidden_states[-1], batch["attention_mask"])
    topic_logits = None
    if head is not None:
        p = float(getattr(model.config, "hidden_dropout_prob", 0.1))
        topic_logits = head(torch.nn.functional.dropout(mean, p=p, training=model.training))
    return HeadOutputs(out.logits, topic_logits, mean)


def save_trained(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, model_dir: Path) -> None:
    """``save_pretrained`` files of the sentiment model (without the topic head's keys, so transformers loads them
    cleanly), the tokenizer's, and the topic head's two files when there is one."""
    from safetensors.torch import save_file

    head = topic_head(model)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(f"{ATTRIBUTE}.")}
    model.save_pretrained(model_dir, state_dict=state)
    tokenizer.save_pretrained(model_dir)
    if head is None:
        return
    save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()}, str(model_dir / TOPIC_HEAD_WEIGHTS))
    head_config = {"labels": list(TOPICS), "slugs": list(TOPIC_SLUGS), "pooling": POOLING,
                   "hidden_size": head.in_features, "n_topics": head.out_features}
    (model_dir / TOPIC_HEAD_CONFIG).write_text(json.dumps(head_config, indent=2), encoding="utf-8")


def load_topic_head(model: PreTrainedModel, model_dir: Path) -> bool:
    """Attach the topic head saved in ``model_dir`` to ``model``; False when the dir holds none (an older model)."""
    from safetensors.torch import load_file

    weights, config_path = model_dir / TOPIC_HEAD_WEIGHTS, model_dir / TOPIC_HEAD_CONFIG
    if not weights.is_file():
        return False
    head_config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    _check_head_config(model_dir, head_config)
    head = attach_topic_head(model, len(TOPICS))
    head.load_state_dict(load_file(str(weights)))
    return True


def _check_head_config(model_dir: Path, head_config: Mapping[str, Any]) -> None:
    """A saved head must predict today's topics, in today's order, from the mean-pooled hidden state."""
    labels: Sequence[str] = head_config.get("labels", ())
    if tuple(labels) != TOPICS or head_config.get("pooling") != POOLING:
        raise TopicHeadError(f"{model_dir / TOPIC_HEAD_CONFIG}: a topic head of other topics or pooling "
                            f"({head_config.get('pooling')!r}, {len(labels)} labels); train the model again")
