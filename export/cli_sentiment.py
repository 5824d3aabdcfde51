"""``finpulse model eval sentiment``: both heads of the exported sentiment model, fp32 and int8, on the validation sets.

The sentiment head on twitter-fin valid and PhraseBank, the topic head (when the model has one) on twitter-fin topic
valid and on its rows whose link-stripped text is not in train; through the runtime the workers use. Dispatched from
:mod:`.cli`; heavy imports happen inside the function.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from finpulse.settings import ModelSettings

logger = logging.getLogger(__name__)

#: The test sets whose per-class reports the text output prints (the others are in the report files).
PRINTED_REPORTS = ("twitter-fin-valid", "topic-valid")


def eval_sentiment(settings: ModelSettings, out: Path | None, as_json: bool) -> None:
    """Evaluate the exported model, write ``eval.json``, the confusion matrices and per-class reports under ``out``
    (default ``<artifacts_dir>/sentiment/eval``) and show the figures (``as_json``: one JSON object on stdout)."""
    from finpulse.export.runtime.card import ModelCard
    from finpulse.export.sentiment_eval import evaluate_variants, reports_of, write_eval_reports
    from finpulse.models.data import eval_sets, topic_eval_sets
    from finpulse.models.metrics import format_report

    onnx_dir = settings.sentiment_path()
    card = ModelCard.read(onnx_dir)
    topic_sets = topic_eval_sets(settings.data_dir) if card.topic_labels else None
    max_length = min(settings.max_length, card.max_length)
    metrics = evaluate_variants(onnx_dir, settings, eval_sets(settings.data_dir), max_length, topic_sets)
    out_dir = out or settings.artifacts_dir / "sentiment" / "eval"
    files = write_eval_reports(metrics, out_dir, card.model_version)
    if as_json:
        typer.echo(json.dumps({"model_version": card.model_version, "topic_head": topic_sets is not None,
                               "metrics": metrics, "files": [str(f) for f in files]}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{card.model_version}: accuracy / macro-F1 on the validation sets")
    for column in ("data set", "head", "n", "fp32 acc", "fp32 macro-F1", "int8 acc", "int8 macro-F1"):
        table.add_column(column)
    reports = reports_of(metrics)
    for name, fp32 in reports["fp32"].items():
        int8 = reports["int8"][name]
        table.add_row(name, fp32["task"], str(fp32["n"]), f"{fp32['accuracy']:.4f}", f"{fp32['macro_f1']:.4f}",
                      f"{int8['accuracy']:.4f}", f"{int8['macro_f1']:.4f}")
    Console(width=120).print(table)
    for variant, by_set in reports.items():
        for name in PRINTED_REPORTS:
            if name in by_set:
                typer.echo(format_report(by_set[name], title=f"{name} ({variant})"))
    typer.echo(f"reports and confusion matrices: {out_dir}")
