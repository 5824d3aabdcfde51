"""Commands of the demo app: ``finpulse demo`` and ``finpulse simulate clicks``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from finpulse.models.training_logs import HEADLINES_CSV


def register(app: typer.Typer) -> None:
    """Add ``demo`` and the ``simulate`` group to the root app."""
    app.command("demo")(demo)
    simulate = typer.Typer(name="simulate", help="Simulated traffic.", no_args_is_help=True)
    simulate.command("clicks")(simulate_clicks)
    app.add_typer(simulate)


def demo(
    ctx: typer.Context,
    limit: int = typer.Option(600, help="Headlines to replay."),
    rate: float = typer.Option(40.0, help="Headlines per second."),
    keep_running: bool = typer.Option(False, help="Leave the worker and the live page running at the end."),
    dashboard_port: int = typer.Option(8050, help="Port of the live page."),
    readers_seconds: float = typer.Option(
        20.0, help="Then simulated readers click through the clicks API for this long and their live feeds are "
                   "shown (0 = skip)."),
) -> None:
    """The main job on the embedded stack: stack up, model, worker, replay with a negative burst."""
    from finpulse.context import settings_of
    from finpulse.demo.job import run_demo

    run_demo(settings_of(ctx), limit=limit, rate=rate, keep_running=keep_running, dashboard_port=dashboard_port,
             readers_seconds=readers_seconds)


class ArticleSource(str, Enum):
    csv = "csv"
    news_scored = "news-scored"
    es_index = "index"  # not `index`: that name is str.index


def simulate_clicks(
    ctx: typer.Context,
    mind_out: Path | None = typer.Option(None, "--mind-out", help="Write offline MIND-format logs here instead of sending."),
    source: ArticleSource = typer.Option(ArticleSource.csv, "--source", help="Articles to choose among."),
    csv_file: Path | None = typer.Option(
        None, "--csv", help="CSV of headlines (text,label) for --source csv (default: <data_dir>/" + str(HEADLINES_CSV) + ")."),
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

    from finpulse.context import settings_of
    from finpulse.demo.live import articles_from_index, articles_from_topic, send_live
    from finpulse.models.simulate import ClickSimulator, SimConfig, articles_from_csv, default_start, write_mind_logs

    settings = settings_of(ctx)
    start = default_start() if mind_out is not None else time.time() - days * 86_400.0
    if source is ArticleSource.csv:
        articles = articles_from_csv(csv_file or settings.model.data_dir / HEADLINES_CSV, start, days, seed, limit=limit)
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
