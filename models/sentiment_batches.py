"""Batches of the sentiment classifier: tokenisation, length-grouped batching, dynamic padding, batched inference
and evaluation. :mod:`finpulse.models.train_sentiment` trains over them.

torch is imported inside the functions.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from finpulse.contracts.records import LABELS
from finpulse.models.data import Example
from finpulse.models.metrics import classification_report

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


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
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, batch_size: int = 128
) -> np.ndarray:
    """Logits of ``texts`` in input order (length-sorted batches, dynamic padding, no grad)."""
    import torch

    ids = tokenize(tokenizer, texts, max_length)
    out = np.zeros((len(texts), len(LABELS)), dtype=np.float32)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for idx in sorted_batches(ids, batch_size):
            batch = collate([ids[i] for i in idx], tokenizer.pad_token_id or 0)
            out[idx] = model(**batch).logits.float().numpy()
    model.train(was_training)
    return out


def mean_pooled(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L2-normalised mean of ``hidden`` over the unmasked positions: the embedding the export's second output gives."""
    import torch

    m = mask.to(hidden.dtype)[:, :, None]
    return torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1.0), dim=-1)


def _softmax_ce(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean()) if len(labels) else 0.0


def evaluate(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example], max_length: int, batch_size: int
) -> tuple[dict[str, Any], float]:
    """(classification report, mean cross-entropy) of the model on ``examples``."""
    logits = predict_logits(model, tokenizer, [e.text for e in examples], max_length, batch_size)
    y = np.array([e.label for e in examples], dtype=np.int64)
    report = classification_report(y.tolist(), logits.argmax(axis=1).tolist(), LABELS)
    return report, _softmax_ce(logits, y)
