"""Batches of the sentiment classifier: tokenisation, length-grouped batching, dynamic padding, batched inference
and evaluation of either head (``task``: sentiment or topic). :mod:`finpulse.models.train_sentiment` trains over them.

torch is imported inside the functions.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from finpulse.contracts.records import LABELS, TOPICS
from finpulse.models.data import Example
from finpulse.models.exceptions import TopicHeadError
from finpulse.models.metrics import classification_report

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Task = Literal["sentiment", "topic"]
#: The labels each head predicts.
TASK_LABELS: dict[Task, tuple[str, ...]] = {"sentiment": LABELS, "topic": TOPICS}


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text (special tokens included, truncated, not padded)."""
    if not texts:
        return []
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False, return_attention_mask=False)
    return [list(ids) for ids in enc["input_ids"]]


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, group: int = 50) -> list[list[int]]:
    """Shuffled batches of indices whose texts have similar lengths (less padding, same randomness per epoch)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    mega = batch_size * group
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: lengths[i], reverse=True)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def collate(ids: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest sequence of this batch (dynamic padding)."""
    import torch

    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(mask),
        "token_type_ids": torch.zeros_like(torch.from_numpy(input_ids)),
    }


def sorted_batches(ids: Sequence[Sequence[int]], batch_size: int) -> Iterator[list[int]]:
    """Batches of indices in order of length (for inference: the least padding, results put back by index)."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def predict_logits(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, batch_size: int = 128,
    task: Task = "sentiment",
) -> np.ndarray:
    """Logits of ``task``'s head on ``texts`` in input order (length-sorted batches, dynamic padding, no grad)."""
    import torch

    from finpulse.models.topic_head import forward_heads, topic_head

    if task == "topic" and topic_head(model) is None:
        raise TopicHeadError("the model has no topic head to predict topics with")
    ids = tokenize(tokenizer, texts, max_length)
    out = np.zeros((len(texts), len(TASK_LABELS[task])), dtype=np.float32)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for idx in sorted_batches(ids, batch_size):
            batch = collate([ids[i] for i in idx], tokenizer.pad_token_id or 0)
            heads = forward_heads(model, batch)
            logits = heads.logits if task == "sentiment" else heads.topic_logits
            assert logits is not None  # checked above
            out[idx] = logits.float().numpy()
    model.train(was_training)
    return out


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` over the unmasked positions: what the topic head reads."""
    m = mask.to(hidden.dtype)[:, :, None]
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def mean_pooled(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L2-normalised mean of ``hidden`` over the unmasked positions: the embedding the export's second output gives."""
    import torch

    return torch.nn.functional.normalize(masked_mean(hidden, mask), dim=-1)


def _softmax_ce(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean()) if len(labels) else 0.0


def evaluate_sets(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, sets: Mapping[str, Sequence[Example]], max_length: int,
    batch_size: int, task: Task = "sentiment",
) -> dict[str, tuple[dict[str, Any], float]]:
    """(classification report with its ``task``, mean cross-entropy) of ``task``'s head on every set, each distinct text
    predicted once (PhraseBank's agreement levels are nested: 14,849 rows, 4,846 texts)."""
    texts = list(dict.fromkeys(e.text for examples in sets.values() for e in examples))
    logits = predict_logits(model, tokenizer, texts, max_length, batch_size, task)
    row = {text: i for i, text in enumerate(texts)}
    results: dict[str, tuple[dict[str, Any], float]] = {}
    for name, examples in sets.items():
        own = logits[[row[e.text] for e in examples]]
        y = np.array([e.label for e in examples], dtype=np.int64)
        report = classification_report(y.tolist(), own.argmax(axis=1).tolist(), TASK_LABELS[task])
        results[name] = ({**report, "task": task}, _softmax_ce(own, y))
    return results


def evaluate(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example], max_length: int, batch_size: int,
    task: Task = "sentiment",
) -> tuple[dict[str, Any], float]:
    """(classification report with its ``task``, mean cross-entropy) of ``task``'s head on ``examples``."""
    return evaluate_sets(model, tokenizer, {"examples": examples}, max_length, batch_size, task)["examples"]
