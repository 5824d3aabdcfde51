"""Commands of the streaming subsystem: ``finpulse worker``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``worker`` to the root app."""

    @app.command("worker")
    def worker(
        ctx: typer.Context,
        role: list[str] = typer.Option(
            [], "--role", help="Run only this part (repeatable): news (score, index), alerts (spikes, delivery), "
            "recommend (candidates, profiles, feeds). Default: stream.roles, all three."),
    ) -> None:
        """Run the streaming worker: score news, index it, detect spikes, deliver alerts, serve recommendation feeds."""
        from finpulse.context import settings_of
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
