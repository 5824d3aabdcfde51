"""The ``finpulse`` command line: builds the settings once and wires each subsystem's commands.

Each subsystem owns its commands in its own ``cli.py``; this module only assembles them.
Heavy imports (Faust, onnxruntime, torch) happen inside the commands, never here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from finpulse.exceptions import FinpulseError
from finpulse.logs import configure_logging
from finpulse.settings import Settings, load_settings

logger = logging.getLogger(__name__)

app = typer.Typer(name="finpulse", help="Real-time financial-news intelligence.", no_args_is_help=True)


def settings_of(ctx: typer.Context) -> Settings:
    """The settings built by the root callback (commands receive them through the context)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        raise RuntimeError("settings were not built: commands must run under the finpulse root command")
    return root.obj


@app.callback()
def _root(
    ctx: typer.Context,
    env_file: Path | None = typer.Option(None, "--env-file", help="Env file with FINPULSE_ settings."),
) -> None:
    settings = load_settings(env_file)
    configure_logging(settings.log_level, settings.log_json)
    ctx.obj = settings


def _register() -> None:
    # Each subsystem adds its own commands; those modules import nothing heavy at module level.
    from finpulse import config_cli
    from finpulse.bench import cli as bench_cli
    from finpulse.infra import cli as infra_cli
    from finpulse.models import cli as models_cli
    from finpulse.recommend import cli as recommend_cli
    from finpulse.sources import cli as sources_cli
    from finpulse.streams import cli as streams_cli
    from finpulse.trends import cli as trends_cli

    for module in (config_cli, infra_cli, models_cli, sources_cli, streams_cli, trends_cli, recommend_cli, bench_cli):
        module.register(app)


_register()


def main() -> None:
    """Entry point: click reports usage errors itself; named finpulse errors become one line and exit code 2."""
    try:
        app()
    except FinpulseError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None
