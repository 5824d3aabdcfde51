"""Loaders of the labelled data sets of the sentiment model's two heads.

A sentiment :class:`Example`'s label indexes :data:`finpulse.contracts.records.LABELS` (negative, neutral,
positive); a topic example's indexes :data:`finpulse.contracts.records.TOPICS`.

* twitter-financial-news-sentiment (MIT): train and evaluate; ``sent_valid.csv`` is the test set.
* Financial PhraseBank (CC BY-NC-SA 3.0): EVALUATION ONLY, never used for training.
* twitter-financial-news-topic (MIT): train and evaluate the topic head; ``topic_valid.csv`` is the test set. About
  680 of its tweets repeat a train tweet with another t.co link, so the evaluation also reports the validation rows
  whose link-stripped text is not in train (``topic-valid-unseen``).
"""

from __future__ import annotations

import csv
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from finpulse.contracts.records import LABELS, TOPICS
from finpulse.models.exceptions import DataError

logger = logging.getLogger(__name__)

TWITTER_DIR = "twitter-financial-news-sentiment"
PHRASEBANK_DIR = "financial-phrasebank"
TOPIC_DIR = "twitter-financial-news-topic"
TwitterSplit = Literal["train", "valid"]
Agreement = Literal["50", "66", "75", "All"]
AGREEMENTS: tuple[Agreement, ...] = ("50", "66", "75", "All")

#: twitter-fin labels: 0 = Bearish, 1 = Bullish, 2 = Neutral -> finpulse label index.
TWITTER_TO_LABEL: dict[int, int] = {0: LABELS.index("negative"), 1: LABELS.index("positive"), 2: LABELS.index("neutral")}

DATASETS: dict[str, dict[str, str]] = {
    "twitter-financial-news-sentiment": {
        "source": "zeroshot/twitter-financial-news-sentiment (Ricky Costa, 2022)",
        "license": "MIT",
        "use": "training (sent_train.csv minus a validation split) and test (sent_valid.csv)",
    },
    "financial-phrasebank": {
        "source": "Financial PhraseBank v1.0 (Malo et al., 2014)",
        "license": "CC BY-NC-SA 3.0 (non-commercial)",
        "use": "evaluation only; never trained on",
    },
    "twitter-financial-news-topic": {
        "source": "zeroshot/twitter-financial-news-topic (Ricky Costa, 2022)",
        "license": "MIT",
        "use": "topic head: training (topic_train.csv minus a validation split) and test (topic_valid.csv, and its rows "
               "whose link-stripped text is not in train)",
    },
}
_LINK = re.compile(r"https?://\S+")


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text; ``label`` indexes :data:`LABELS` (a sentiment example) or :data:`TOPICS` (a topic one)."""

    text: str
    label: int


def load_twitter(data_dir: Path, split: TwitterSplit) -> list[Example]:
    """The twitter-financial-news-sentiment split ``train`` or ``valid`` (CRLF CSV, header ``text,label``)."""
    path = data_dir / TWITTER_DIR / f"sent_{split}.csv"
    if not path.is_file():
        raise DataError(f"twitter-fin {split} split not found at {path} (set FINPULSE_MODEL__DATA_DIR)")
    examples = [Example(e.text, TWITTER_TO_LABEL[e.label]) for e in _read_labelled_csv(path, len(TWITTER_TO_LABEL))]
    logger.debug("loaded %d twitter-fin %s examples", len(examples), split)
    return examples


def _read_labelled_csv(path: Path, n_labels: int) -> list[Example]:
    """The rows of a ``text,label`` CSV whose labels are indices in ``[0, n_labels)``."""
    examples: list[Example] = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
            raise DataError(f"{path}: expected header text,label, got {reader.fieldnames}")
        for lineno, row in enumerate(reader, start=2):
            try:
                label = int(row["label"])
            except (ValueError, TypeError) as exc:
                raise DataError(f"{path}:{lineno}: bad label {row.get('label')!r}") from exc
            if not 0 <= label < n_labels:
                raise DataError(f"{path}:{lineno}: bad label {label} (expected 0..{n_labels - 1})")
            examples.append(Example(row["text"], label))
    return examples


def load_topics(data_dir: Path, split: TwitterSplit, seed: int | None = None) -> list[Example]:
    """The twitter-financial-news-topic split ``train`` or ``valid``; labels index :data:`TOPICS`.

    The file's rows come in blocks by label: with ``seed``, they are shuffled (reproducibly), so that a capped or
    split-off part of them holds every topic.
    """
    path = data_dir / TOPIC_DIR / f"topic_{split}.csv"
    if not path.is_file():
        raise DataError(f"twitter-fin topic {split} split not found at {path} (set FINPULSE_MODEL__DATA_DIR)")
    examples = _read_labelled_csv(path, len(TOPICS))
    if seed is not None:
        random.Random(seed).shuffle(examples)
    logger.debug("loaded %d twitter-fin topic %s examples", len(examples), split)
    return examples


def link_stripped(text: str) -> str:
    """``text`` without its links, whitespace collapsed, case folded: how a tweet posted again with a new short
    link is recognised."""
    return " ".join(_LINK.sub(" ", text).split()).casefold()


def seen_in_train(valid: Sequence[Example], train: Sequence[Example]) -> list[bool]:
    """Per validation row, whether its link-stripped text is a train row's."""
    seen = {link_stripped(e.text) for e in train}
    return [link_stripped(e.text) in seen for e in valid]


def topic_eval_sets(data_dir: Path) -> dict[str, list[Example]]:
    """The topic test sets: ``topic-valid`` (the whole split) and ``topic-valid-unseen`` (its rows whose
    link-stripped text is not in train)."""
    valid = load_topics(data_dir, "valid")
    seen = seen_in_train(valid, load_topics(data_dir, "train"))
    return {"topic-valid": valid, "topic-valid-unseen": [e for e, s in zip(valid, seen, strict=True) if not s]}


def load_phrasebank(data_dir: Path, agreement: Agreement) -> list[Example]:
    """Financial PhraseBank at an annotator-agreement level (latin-1, ``sentence@label``). Evaluation only."""
    path = data_dir / PHRASEBANK_DIR / f"Sentences_{agreement}Agree.txt"
    if not path.is_file():
        raise DataError(f"Financial PhraseBank {agreement}Agree not found at {path}")
    examples: list[Example] = []
    with path.open(encoding="latin-1") as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            sentence, sep, label = line.rpartition("@")
            if not sep or label.strip() not in LABELS:
                raise DataError(f"{path}:{lineno}: expected 'sentence@label', got {line[:80]!r}")
            examples.append(Example(sentence.strip(), LABELS.index(label.strip())))  # type: ignore[arg-type]
    return examples


def stratified_split(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Split into (rest, held-out) with ``fraction`` of each label held out, reproducibly."""
    if not 0.0 < fraction < 1.0:
        raise ValueError("fraction must be in (0, 1)")
    rng = random.Random(seed)
    by_label: dict[int, list[Example]] = {}
    for ex in examples:
        by_label.setdefault(ex.label, []).append(ex)
    rest: list[Example] = []
    held: list[Example] = []
    for label in sorted(by_label):
        group = list(by_label[label])
        rng.shuffle(group)
        n_held = max(1, round(len(group) * fraction)) if len(group) > 1 else 0
        held.extend(group[:n_held])
        rest.extend(group[n_held:])
    rng.shuffle(rest)
    rng.shuffle(held)
    return rest, held


def eval_sets(data_dir: Path) -> dict[str, list[Example]]:
    """Every evaluation set by name: ``twitter-fin-valid`` and ``phrasebank-<level>agree``."""
    sets = {"twitter-fin-valid": load_twitter(data_dir, "valid")}
    for level in AGREEMENTS:
        sets[f"phrasebank-{level.lower()}agree"] = load_phrasebank(data_dir, level)
    return sets
