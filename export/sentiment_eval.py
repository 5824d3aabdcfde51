"""Evaluation of the exported sentiment model through the runtime the workers use: both variants, both heads.

Each evaluation set belongs to one head: the sentiment sets (twitter-fin valid, PhraseBank) to the sentiment head, the
topic sets (twitter-fin topic valid and its rows unseen in train) to the topic head. Every report carries its ``task``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finpulse.contracts.records import LABELS, TOPICS
from finpulse.export.exceptions import ExportError
from finpulse.models.data import Example
from finpulse.models.metrics import classification_report, format_report

if TYPE_CHECKING:
    from finpulse.settings import ModelSettings

logger = logging.getLogger(__name__)

VARIANTS = ("fp32", "int8")


def evaluate_variants(out_dir: Path, settings: ModelSettings, sets: Mapping[str, Sequence[Example]], max_length: int,
                      topic_sets: Mapping[str, Sequence[Example]] | None = None) -> dict[str, dict[str, Any]]:
    """Metrics of each variant on every sentiment set (its sentiment head) and topic set (its topic head), from one
    pass over the distinct texts of all sets."""
    from finpulse.export.runtime.sentiment import SentimentRuntime

    topic_sets = topic_sets or {}
    unique = list(dict.fromkeys(e.text for group in (sets, topic_sets) for examples in group.values() for e in examples))
    metrics: dict[str, dict[str, Any]] = {}
    local = settings.model_copy(update={"max_length": max_length, "providers": ["cpu"]})
    for variant in VARIANTS:
        runtime = SentimentRuntime.load(out_dir, variant, local, batch_size=64)  # type: ignore[arg-type]
        if topic_sets and runtime.topic_slugs is None:
            raise ExportError(f"{out_dir}: the {variant} model has no topic head to evaluate on {sorted(topic_sets)}")
        started = time.perf_counter()
        outputs = runtime.infer(unique)
        seconds = time.perf_counter() - started
        row = {text: i for i, text in enumerate(unique)}
        sentiment = outputs.probabilities.argmax(axis=1)
        metrics[variant] = {"scoring_seconds": seconds, "texts": len(unique)}
        for name, examples in sets.items():
            metrics[variant][name] = _report("sentiment", examples, [int(sentiment[row[e.text]]) for e in examples])
        if topic_sets:
            assert outputs.topic_probabilities is not None  # the runtime has the topic head (checked above)
            topic = outputs.topic_probabilities.argmax(axis=1)
            for name, examples in topic_sets.items():
                metrics[variant][name] = _report("topic", examples, [int(topic[row[e.text]]) for e in examples])
        for name, report in metrics[variant].items():
            if isinstance(report, dict):
                logger.info("%s %s: accuracy %.4f macro-F1 %.4f", variant, name, report["accuracy"], report["macro_f1"])
    return metrics


def _report(task: str, examples: Sequence[Example], predicted: list[int]) -> dict[str, Any]:
    labels = LABELS if task == "sentiment" else TOPICS
    return {**classification_report([e.label for e in examples], predicted, labels), "task": task}


def reports_of(metrics: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The classification reports of :func:`evaluate_variants`' metrics, by variant and set (timings left out)."""
    return {variant: {name: r for name, r in metrics.get(variant, {}).items() if isinstance(r, dict)} for variant in VARIANTS}


def write_eval_reports(metrics: Mapping[str, Any], out_dir: Path, model_version: str) -> list[Path]:
    """``eval.json``, and per variant and set a confusion-matrix PNG and a per-class text report; return their paths."""
    from finpulse.models.plots import plot_confusion_matrix

    out_dir.mkdir(parents=True, exist_ok=True)
    summary = out_dir / "eval.json"
    summary.write_text(json.dumps({"model_version": model_version, "metrics": metrics}, indent=2), encoding="utf-8")
    written = [summary]
    for variant, reports in reports_of(metrics).items():
        for name, report in reports.items():
            title = f"{name} ({report['task']}, {variant})"
            written.append(plot_confusion_matrix(report["confusion_matrix"], report["labels"],
                                                 out_dir / f"confusion_{variant}_{name}.png", title=title))
            text = out_dir / f"report_{variant}_{name}.txt"
            text.write_text(format_report(report, title=title), encoding="utf-8")
            written.append(text)
    return written
