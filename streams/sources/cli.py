"""Commands of the sources (registered on the root ``finpulse`` app): ``replay``, ``scrape`` and ``clicks-api``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this subsystem's commands to the root app."""
    app.command("replay")(replay)
    app.command("scrape")(scrape)
    app.command("clicks-api")(clicks_api)


def replay(
    ctx: typer.Context,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV (text column) or JSON-lines file, .gz ok."),
    speed: float = typer.Option(1.0, "--speed", help="Scale of the original timestamps (2 = twice as fast, 0 = no waiting)."),
    rate: float | None = typer.Option(None, "--rate", min=0.001, help="Fixed rate in articles per second (ignores timestamps)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Articles to send at most."),
    repeat: int = typer.Option(1, "--repeat", min=1, help="Read the file this many times (repeats get new ids)."),
    text_column: str = typer.Option("text", "--text-column", help="CSV column (or JSON field) holding the headline."),
    source: str | None = typer.Option(None, "--source", help="Source name of the articles (default replay:<file>)."),
    retime: bool = typer.Option(False, "--retime", help="Stamp published_at with the send time."),
) -> None:
    """Replay a file of headlines to news.raw, tagging tickers."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from finpulse.context import settings_of
    from finpulse.contracts.topics import NEWS_RAW, topic_name
    from finpulse.streams.sources.replay import ReplayStats, count_rows, replay_file

    settings = settings_of(ctx)
    console = Console(stderr=True)
    total = count_rows(file, limit=limit, repeat=repeat)
    topic = topic_name(settings.kafka, NEWS_RAW)
    with Progress(
        TextColumn(f"[bold]replay[/] {file.name} → {topic}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8.1f}/s"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("replay", total=total, rate=0.0)

        def on_progress(stats: ReplayStats) -> None:
            elapsed = progress.tasks[task].elapsed or 0.0
            progress.update(task, completed=stats.read, rate=stats.produced / elapsed if elapsed > 0 else 0.0)

        stats = replay_file(
            settings,
            file,
            speed=speed,
            rate=rate,
            limit=limit,
            repeat=repeat,
            text_column=text_column,
            source=source,
            retime=retime,
            on_progress=on_progress,
        )
        progress.update(task, total=stats.read, completed=stats.read)
    console.print(
        f"[green]{stats.delivered}[/] delivered to {stats.topic}, [red]{stats.failed}[/] failed, "
        f"{stats.skipped} skipped, {stats.tagged} with tickers, {stats.elapsed_s:.1f} s ({stats.rate:.0f}/s)"
    )
    if stats.failed:
        raise typer.Exit(1)


def scrape(
    ctx: typer.Context,
    feeds: Path | None = typer.Option(None, "--feeds", exists=True, dir_okay=False, help="File of feed URLs, one a line."),
    once: bool = typer.Option(False, "--once", help="Poll every feed once, then stop."),
) -> None:
    """Poll RSS/Atom feeds, fetch and extract new articles, and produce them to news.raw."""
    import asyncio

    from rich.console import Console

    from finpulse.context import settings_of
    from finpulse.streams.sources.feeds import load_feed_list
    from finpulse.streams.sources.scraper import run_scraper

    settings = settings_of(ctx)
    urls = load_feed_list(feeds) if feeds is not None else list(settings.scrape.feeds)
    console = Console(stderr=True)
    if not urls:
        from finpulse.streams.sources.exceptions import FeedListError

        raise FeedListError("no feeds: give --feeds FILE or set FINPULSE_SCRAPE__FEEDS to a JSON list of URLs")
    console.print(f"scraping {len(urls)} feeds{' once' if once else f' every {settings.scrape.poll_interval_s:.0f} s'}")
    try:
        totals = asyncio.run(run_scraper(settings, urls, once=once))
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print("stopped during a poll; articles not yet sent will be sent by the next run")
        raise typer.Exit(130) from None
    console.print(
        f"[green]{totals.sent}[/] articles sent, {totals.duplicates} duplicates, "
        f"{totals.feed_errors} feed errors, {totals.page_errors} page errors"
    )


def clicks_api(ctx: typer.Context) -> None:
    """Serve POST /v1/events (impressions and clicks into the clicks topic), /healthz and /metrics."""
    from finpulse.context import settings_of
    from finpulse.streams.sources.clicks_api import run_api

    run_api(settings_of(ctx))
