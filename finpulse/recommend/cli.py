"""Commands of the recommendation subsystem: ``clicks-api``, ``simulate clicks``, ``recommend bench``."""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path

import typer

logger = logging.getLogger(__name__)

DEFAULT_CSV = Path("../shared/data/twitter-financial-news-sentiment/sent_train.csv")


class ArticleSource(str, Enum):
    csv = "csv"
    news_scored = "news-scored"
    index = "index"


def register(app: typer.Typer) -> None:
    """Add ``clicks-api``, the ``simulate`` group and the ``recommend`` group to the root app."""
    app.command("clicks-api")(clicks_api)
    simulate = typer.Typer(name="simulate", help="Simulated traffic.", no_args_is_help=True)
    simulate.command("clicks")(simulate_clicks)
    app.add_typer(simulate)
    recommend = typer.Typer(name="recommend", help="Recommendation feed tools.", no_args_is_help=True)
    recommend.command("bench")(bench)
    app.add_typer(recommend)


def clicks_api(ctx: typer.Context) -> None:
    """Serve POST /v1/events (impressions and clicks into the clicks topic), /healthz and /metrics."""
    from finpulse.cli import settings_of
    from finpulse.recommend.api import run_api

    run_api(settings_of(ctx))


def simulate_clicks(
    ctx: typer.Context,
    mind_out: Path | None = typer.Option(None, "--mind-out", help="Write offline MIND-format logs here instead of sending."),
    source: ArticleSource = typer.Option(ArticleSource.csv, "--source", help="Articles to choose among."),
    csv_file: Path = typer.Option(DEFAULT_CSV, "--csv", help="CSV of headlines (text,label) for --source csv."),
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
        articles = articles_from_csv(csv_file, start, days, seed, limit=limit)
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
    clicks_per_s: float = typer.Option(200.0, "--rate"),
    duration: float = typer.Option(30.0, "--duration"),
    api_url: str | None = typer.Option(None, "--api-url", help="roundtrip: send clicks through this clicks API."),
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
        report = b.bench_roundtrip(settings, clicks_per_s, duration, api_url)
    for line in report:
        typer.echo(line)
