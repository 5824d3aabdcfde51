"""``finpulse model train|build|export|eval recommend``: the recommender's commands, dispatched from :mod:`.cli`."""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from finpulse.models.train_recommend import RecTrainConfig
    from finpulse.settings import Settings

logger = logging.getLogger(__name__)



DEFAULT_BUDGET_MIN = 10.0


def _recommend_dirs(settings: object) -> tuple[Path, Path, Path]:
    """(MIND logs, training run, ONNX export) directories under the artifacts dir."""
    from finpulse.settings import Settings

    assert isinstance(settings, Settings)
    root = settings.model.artifacts_dir / "recommend"
    return root / "mind", root / "train", settings.recommend_model_path()


def train_recommend_cmd(
    ctx: typer.Context,
    time_budget_min: float | None = None,
    epochs: float = 3.0,
    base: str | None = None,
    seed: int = 13,
    mind: Path | None = None,
    trainable_layers: int | None = None,
    shared_encoder: bool | None = None,
    categories: bool = True,
) -> None:
    """``finpulse model train recommend``: simulated MIND logs (made once if missing), fine-tuning, export, evaluation.

    ``shared_encoder``: train only the user tower over the sentiment model's frozen encoder (:mod:`.shared`);
    ``None`` follows ``FINPULSE_RECOMMEND__SHARED_ENCODER``."""
    from finpulse.context import settings_of
    from finpulse.models.train_recommend import RecTrainConfig, train_recommend

    settings = settings_of(ctx)
    if shared_encoder is None:
        shared_encoder = settings.recommend.shared_encoder
    mind_dir, train_dir, onnx_dir = _recommend_dirs(settings)
    if mind is None:
        from finpulse.models.training_logs import DEFAULT_LOGS, HEADLINES_CSV, ensure_logs

        ensure_logs(mind_dir, settings.model.data_dir / HEADLINES_CSV, DEFAULT_LOGS)
    logs = mind or mind_dir
    budget = (time_budget_min if time_budget_min is not None else DEFAULT_BUDGET_MIN) * 60
    config = RecTrainConfig(base=base or settings.model.base_model, epochs=epochs, time_budget_s=budget, seed=seed,
                            categories=categories)
    if trainable_layers is not None:
        config.trainable_layers = trainable_layers
    if shared_encoder:
        _over_shared_encoder(settings, config, base, trainable_layers)
    result = train_recommend(config, logs, train_dir)
    train = result.metrics["train"]
    typer.echo(f"trained {result.metrics['model_version']} in {train['seconds']:.0f} s ({train['steps']} steps, "
               f"{train['stop_reason']})")
    _evaluate_and_export(settings, logs, train_dir, onnx_dir, config.test_days, shared_encoder)


def _over_shared_encoder(settings: Settings, config: RecTrainConfig, base: str | None, trainable_layers: int | None) -> None:
    """Point ``config`` at the sentiment model's encoder, frozen, reading titles as the sentiment pass does."""
    from finpulse.export.runtime.card import ModelCard
    from finpulse.export.shared import sentiment_encoder_dir

    if base is not None or trainable_layers not in (None, 0):
        raise typer.BadParameter("a shared encoder is the sentiment model's, frozen: drop --base and "
                                 "--trainable-layers, or train the recommender's own encoder with --own-encoder")
    config.base, config.trainable_layers = str(sentiment_encoder_dir(settings)), 0
    # The titles as the sentiment pass reads them (its max_length), so training sees the served embeddings.
    config.max_length = min(settings.model.max_length, ModelCard.read(settings.model.sentiment_path()).max_length)


def _evaluate_and_export(settings: Settings, logs: Path, train_dir: Path, onnx_dir: Path, test_days: float,
                         shared_encoder: bool) -> None:
    """Evaluate the training run on the held-out impressions (``eval.json``), link the shared encoder, export."""
    import json

    from finpulse.export.recommend import export_recommend
    from finpulse.models.eval_recommend import evaluate_recommend, format_table, ratio_lines
    from finpulse.models.train_recommend import load_mind

    # The untuned row stays the configured base model (MiniLM) whatever encoder this run started from.
    results = evaluate_recommend(logs, train_dir, settings.model.base_model, test_days)
    (train_dir / "eval.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    data = load_mind(logs, test_days)
    samples = [data.news[n].title for n in list(data.news)[:64]]
    if shared_encoder:
        from finpulse.export.shared import link_shared_encoder

        typer.echo(f"shared encoder: sentiment model {link_shared_encoder(settings, train_dir, samples)}")
    export_recommend(train_dir, onnx_dir, samples, eval_results=results)
    typer.echo(f"held-out impressions of {logs} (simulated logs, not MIND):")
    for line in [*format_table(results), *ratio_lines(results)]:
        typer.echo(line)
    typer.echo(f"exported to {onnx_dir}")


def build_recommend_cmd(ctx: typer.Context, force: bool = False) -> None:
    """``finpulse model build recommend``: train and export with the defaults unless the exported model is intact and,
    with a shared encoder, was trained over the current sentiment model."""
    from finpulse.context import settings_of
    from finpulse.export.runtime.recommend import RecommendCard, rebuild_reason

    settings = settings_of(ctx)
    reason = "--force" if force else rebuild_reason(settings)
    if reason is None:
        onnx_dir = settings.recommend_model_path()
        typer.echo(f"recommend is up to date: {onnx_dir} ({RecommendCard.read(onnx_dir).model_version})")
        return
    logger.info("recommendation artefacts need building: %s", reason)
    train_recommend_cmd(ctx)


def export_recommend_cmd(ctx: typer.Context) -> None:
    """``finpulse model export recommend``: export the last training run again (ONNX + numpy, output check, cards)."""
    import json

    from finpulse.context import settings_of
    from finpulse.export.recommend import export_recommend
    from finpulse.models.train_recommend import load_mind

    settings = settings_of(ctx)
    _, train_dir, onnx_dir = _recommend_dirs(settings)
    metrics = json.loads((train_dir / "metrics.json").read_text(encoding="utf-8")) if (train_dir / "metrics.json").is_file() else {}
    logs = Path(metrics.get("mind_dir", _recommend_dirs(settings)[0]))
    eval_file = train_dir / "eval.json"
    data = load_mind(logs, 1.0)
    export_recommend(train_dir, onnx_dir, [data.news[n].title for n in list(data.news)[:64]],
                     json.loads(eval_file.read_text()) if eval_file.is_file() else None)
    typer.echo(f"exported to {onnx_dir}")


class EvalName(str, Enum):
    recommend = "recommend"


def eval_cmd(
    ctx: typer.Context,
    name: EvalName = typer.Argument(..., help="Model to evaluate."),
    mind: Path | None = typer.Option(None, "--mind", help="MIND-format logs (default: the simulated logs it was trained on)."),
    test_days: float = typer.Option(1.0, "--test-days", help="Last days of the logs held out."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object (logs, metrics per method) on stdout."),
) -> None:
    """AUC, MRR, nDCG@5, nDCG@10 on held-out impressions: random, popularity, untuned MiniLM, fine-tuned."""
    import json

    from finpulse.context import settings_of
    from finpulse.models.eval_recommend import evaluate_recommend, format_table, ratio_lines

    settings = settings_of(ctx)
    mind_dir, train_dir, _ = _recommend_dirs(settings)
    metrics = json.loads((train_dir / "metrics.json").read_text(encoding="utf-8")) if (train_dir / "metrics.json").is_file() else None
    logs = mind or (Path(metrics["mind_dir"]) if metrics else mind_dir)
    results = evaluate_recommend(logs, train_dir if metrics else None, settings.model.base_model, test_days)
    simulated = "simulated logs, not MIND" if mind is None else "logs given with --mind"
    if as_json:
        typer.echo(json.dumps({"logs": str(logs), "simulated": mind is None, "results": results}, default=str))
        return
    typer.echo(f"held-out impressions of {logs} ({simulated}):")
    for line in [*format_table(results), *ratio_lines(results)]:
        typer.echo(line)
