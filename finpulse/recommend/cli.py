"""Commands of the recommendation subsystem: ``clicks-api``, ``simulate clicks``, ``recommend bench``, ``model eval``.

``finpulse model train|export recommend`` dispatch here from ``finpulse.models.cli``.
"""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from finpulse.settings import Settings

logger = logging.getLogger(__name__)

#: The headlines simulated readers choose among, under the settings' data dir (FINPULSE_MODEL__DATA_DIR).
DEFAULT_CSV = Path("twitter-financial-news-sentiment") / "sent_train.csv"


class ArticleSource(str, Enum):
    csv = "csv"
    news_scored = "news-scored"
    es_index = "index"  # not `index`: that name is str.index


def register(app: typer.Typer) -> None:
    """Add ``clicks-api``, the ``simulate`` group and the ``recommend`` group to the root app."""
    app.command("clicks-api")(clicks_api)
    simulate = typer.Typer(name="simulate", help="Simulated traffic.", no_args_is_help=True)
    simulate.command("clicks")(simulate_clicks)
    app.add_typer(simulate)
    recommend = typer.Typer(name="recommend", help="Recommendation feed tools.", no_args_is_help=True)
    recommend.command("bench")(bench)
    app.add_typer(recommend)
    from finpulse.models.cli import model_app  # the model group's owner holds train/export; eval is ours

    model_app.command("eval")(eval_cmd)


def clicks_api(ctx: typer.Context) -> None:
    """Serve POST /v1/events (impressions and clicks into the clicks topic), /healthz and /metrics."""
    from finpulse.cli import settings_of
    from finpulse.recommend.api import run_api

    run_api(settings_of(ctx))


def simulate_clicks(
    ctx: typer.Context,
    mind_out: Path | None = typer.Option(None, "--mind-out", help="Write offline MIND-format logs here instead of sending."),
    source: ArticleSource = typer.Option(ArticleSource.csv, "--source", help="Articles to choose among."),
    csv_file: Path | None = typer.Option(
        None, "--csv", help="CSV of headlines (text,label) for --source csv (default: <data_dir>/" + str(DEFAULT_CSV) + ")."),
    users: int = typer.Option(1000, "--users", min=1),
    days: float = typer.Option(7.0, "--days", min=0.1, help="Simulated days of offline logs."),
    seed: int = typer.Option(7, "--seed"),
    limit: int = typer.Option(20_000, "--limit", min=1, help="Articles to choose among at most."),
    api_url: str = typer.Option("http://127.0.0.1:8000", "--api-url"),
    token: str | None = typer.Option(None, "--token", help="Bearer token (default FINPULSE_RECOMMEND__API_TOKEN)."),
    rate: float = typer.Option(20.0, "--rate", min=0.01, help="Pages per second sent to the API."),
    duration: float = typer.Option(60.0, "--duration", min=0.1, help="Seconds to send for."),
) -> None:
    """Simulated users reading real articles: offline MIND logs (--mind-out) or live events through the clicks API."""
    import asyncio
    import time

    from finpulse.cli import settings_of
    from finpulse.recommend.live import articles_from_index, articles_from_topic, send_live
    from finpulse.recommend.simulate import ClickSimulator, SimConfig, articles_from_csv, default_start, write_mind_logs

    settings = settings_of(ctx)
    start = default_start() if mind_out is not None else time.time() - days * 86_400.0
    if source is ArticleSource.csv:
        articles = articles_from_csv(csv_file or settings.model.data_dir / DEFAULT_CSV, start, days, seed, limit=limit)
    elif source is ArticleSource.news_scored:
        articles = articles_from_topic(settings, limit)
    else:
        articles = articles_from_index(settings, limit)
    simulator = ClickSimulator(articles, SimConfig(users=users, days=days), seed)
    if mind_out is not None:
        n_news, n_impressions = write_mind_logs(simulator, mind_out, start)
        typer.echo(f"wrote {n_news} articles and {n_impressions} impressions (seed {seed}) to {mind_out}")
        return
    secret = token or (settings.recommend.api_token.get_secret_value() if settings.recommend.api_token else None)
    if not secret:
        raise typer.BadParameter("no token: pass --token or set FINPULSE_RECOMMEND__API_TOKEN", param_hint="--token")
    stats = asyncio.run(send_live(simulator, api_url, secret, rate, duration))
    typer.echo(f"{stats.pages} pages, {stats.events} events ({stats.clicks} clicks) in {stats.elapsed_s:.1f} s; "
               f"{stats.rejected} rejected")


class BenchTarget(str, Enum):
    rank = "rank"
    roundtrip = "roundtrip"
    encoder = "encoder"


def bench(
    ctx: typer.Context,
    what: BenchTarget = typer.Argument(..., help="rank: top-10 over N candidates; roundtrip: click → feed via Kafka; "
                                       "encoder: one shared encoder pass vs two."),
    candidates: int = typer.Option(50_000, "--candidates"),
    repeats: int = typer.Option(2000, "--repeats"),
    clicks_per_s: list[float] = typer.Option([200.0], "--rate", help="roundtrip: clicks per second (repeatable: one run each)."),
    duration: float = typer.Option(30.0, "--duration"),
    via_api: bool = typer.Option(False, "--via-api", help="roundtrip: send the clicks through a clicks API of its own."),
    worker_role: list[str] = typer.Option([], "--worker-role", help="roundtrip: what its worker runs (repeatable; "
                                          "default stream.roles): news, alerts, recommend."),
    compare_roles: bool = typer.Option(False, "--compare-roles", help="roundtrip: each rate also with a worker that "
                                       "runs only the recommend role, back to back."),
    out: Path | None = typer.Option(None, "--out", help="roundtrip: write roundtrip.json and roundtrip.png here."),
) -> None:
    """Print benchmark figures (p50/p99) of the recommendation path."""
    from finpulse.cli import settings_of
    from finpulse.recommend import bench as b

    settings = settings_of(ctx)
    if what is BenchTarget.rank:
        report = b.bench_rank(candidates, repeats=repeats, top_k=settings.recommend.top_k)
    elif what is BenchTarget.encoder:
        report = b.bench_encoder(settings)
    else:
        report = _roundtrip(settings, clicks_per_s, duration, via_api, worker_role, compare_roles, out)
    for line in report:
        typer.echo(line)


def _roundtrip(settings: Settings, rates: list[float], duration: float, via_api: bool, roles: list[str],
               compare_roles: bool, out: Path | None) -> list[str]:
    """One round-trip run per rate (and per role set), each printed as it ends; the report files when ``out``."""
    from finpulse.recommend.roundtrip import bench_roundtrip

    role_sets: list[list[str] | None] = [roles or None] + ([["recommend"]] if compare_roles else [])
    runs = []
    for rate in rates:
        for role_set in role_sets:
            runs.append(bench_roundtrip(settings, rate, duration, via_api, roles=role_set))
            for line in runs[-1].lines():
                typer.echo(line)
    if out is None:
        return []
    from finpulse.recommend.roundtrip_report import write_report

    return [f"wrote {path}" for path in write_report(runs, out).values()]


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
    from finpulse.cli import settings_of
    from finpulse.export.recommend import export_recommend
    from finpulse.models.eval_recommend import evaluate_recommend, format_table, ratio_lines
    from finpulse.models.train_recommend import RecTrainConfig, load_mind, train_recommend

    settings = settings_of(ctx)
    if shared_encoder is None:
        shared_encoder = settings.recommend.shared_encoder
    mind_dir, train_dir, onnx_dir = _recommend_dirs(settings)
    if mind is None:
        from finpulse.recommend.training_logs import DEFAULT_LOGS, ensure_logs

        ensure_logs(mind_dir, settings.model.data_dir / DEFAULT_CSV, DEFAULT_LOGS)
    logs = mind or mind_dir
    budget = (time_budget_min if time_budget_min is not None else DEFAULT_BUDGET_MIN) * 60
    config = RecTrainConfig(base=base or settings.model.base_model, epochs=epochs, time_budget_s=budget, seed=seed,
                            categories=categories)
    if trainable_layers is not None:
        config.trainable_layers = trainable_layers
    if shared_encoder:
        from finpulse.recommend.shared import sentiment_encoder_dir
        from finpulse.runtime.card import ModelCard

        if base is not None or trainable_layers not in (None, 0):
            raise typer.BadParameter("a shared encoder is the sentiment model's, frozen: drop --base and "
                                     "--trainable-layers, or train the recommender's own encoder with --own-encoder")
        config.base, config.trainable_layers = str(sentiment_encoder_dir(settings)), 0
        # The titles as the sentiment pass reads them (its max_length), so training sees the served embeddings.
        config.max_length = min(settings.model.max_length, ModelCard.read(settings.model.sentiment_path()).max_length)
    result = train_recommend(config, logs, train_dir)
    train = result.metrics["train"]
    typer.echo(f"trained {result.metrics['model_version']} in {train['seconds']:.0f} s ({train['steps']} steps, "
               f"{train['stop_reason']})")
    # The untuned row stays the configured base model (MiniLM) whatever encoder this run started from.
    results = evaluate_recommend(logs, train_dir, settings.model.base_model, config.test_days)
    (train_dir / "eval.json").write_text(__import__("json").dumps(results, indent=2), encoding="utf-8")
    data = load_mind(logs, config.test_days)
    samples = [data.news[n].title for n in list(data.news)[:64]]
    if shared_encoder:
        from finpulse.recommend.shared import link_shared_encoder

        typer.echo(f"shared encoder: sentiment model {link_shared_encoder(settings, train_dir, samples)}")
    export_recommend(train_dir, onnx_dir, samples, eval_results=results)
    typer.echo(f"held-out impressions of {logs} (simulated logs, not MIND):")
    for line in [*format_table(results), *ratio_lines(results)]:
        typer.echo(line)
    typer.echo(f"exported to {onnx_dir}")


def build_recommend_cmd(ctx: typer.Context, force: bool = False) -> None:
    """``finpulse model build recommend``: train and export with the defaults unless the exported model is intact and,
    with a shared encoder, was trained over the current sentiment model."""
    from finpulse.cli import settings_of
    from finpulse.recommend.encoder import RecommendCard, rebuild_reason

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

    from finpulse.cli import settings_of
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
) -> None:
    """AUC, MRR, nDCG@5, nDCG@10 on held-out impressions: random, popularity, untuned MiniLM, fine-tuned."""
    import json

    from finpulse.cli import settings_of
    from finpulse.models.eval_recommend import evaluate_recommend, format_table, ratio_lines

    settings = settings_of(ctx)
    mind_dir, train_dir, _ = _recommend_dirs(settings)
    metrics = json.loads((train_dir / "metrics.json").read_text(encoding="utf-8")) if (train_dir / "metrics.json").is_file() else None
    logs = mind or (Path(metrics["mind_dir"]) if metrics else mind_dir)
    results = evaluate_recommend(logs, train_dir if metrics else None, settings.model.base_model, test_days)
    simulated = "simulated logs, not MIND" if mind is None else "logs given with --mind"
    typer.echo(f"held-out impressions of {logs} ({simulated}):")
    for line in [*format_table(results), *ratio_lines(results)]:
        typer.echo(line)
