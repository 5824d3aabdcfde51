"""Commands of the streaming subsystem: ``finpulse worker`` and ``finpulse demo``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``worker`` and ``demo`` to the root app."""

    @app.command("worker")
    def worker(
        ctx: typer.Context,
        role: list[str] = typer.Option(
            [], "--role", help="Run only this part (repeatable): news (score, index), alerts (spikes, delivery), "
            "recommend (candidates, profiles, feeds). Default: stream.roles, all three."),
    ) -> None:
        """Run the streaming worker: score news, index it, detect spikes, deliver alerts, serve recommendation feeds."""
        from finpulse.cli import settings_of
        from finpulse.settings import WORKER_ROLES
        from finpulse.streams.worker import run_worker

        settings = settings_of(ctx)
        unknown = sorted(set(role) - set(WORKER_ROLES))
        if unknown:
            raise typer.BadParameter(f"unknown role(s) {', '.join(unknown)}; choose from {', '.join(WORKER_ROLES)}",
                                     param_hint="--role")
        if role:
            settings = settings.model_copy(update={"stream": settings.stream.model_copy(update={"roles": role})})
        run_worker(settings)

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
