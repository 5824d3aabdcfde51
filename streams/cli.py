"""Commands of the streaming subsystem: ``finpulse worker`` and ``finpulse demo``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``worker`` and ``demo`` to the root app."""

    @app.command("worker")
    def worker(ctx: typer.Context) -> None:
        """Run the streaming worker: score news, index it, detect spikes, deliver alerts."""
        from finpulse.cli import settings_of
        from finpulse.streams.worker import run_worker

        run_worker(settings_of(ctx))

    @app.command("demo")
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
        from finpulse.cli import settings_of
        from finpulse.streams.demo import run_demo

        run_demo(settings_of(ctx), limit=limit, rate=rate, keep_running=keep_running, dashboard_port=dashboard_port,
                 readers_seconds=readers_seconds)
