"""The ``finpulse`` command line: builds the settings once and wires each subsystem's commands.

Each subsystem owns its commands in its own ``cli.py``; this module only assembles them.
Heavy imports (Faust, onnxruntime, torch) happen inside the commands, never here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from finpulse.exceptions import EXIT_CODES, FinpulseError
from finpulse.logs import configure_logging
from finpulse.settings import load_settings

logger = logging.getLogger(__name__)

# Tracebacks never show local variables: they would print settings and their secrets.
app = typer.Typer(name="finpulse", help="Real-time financial-news intelligence.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False, rich_markup_mode=None,
                  epilog="Exit codes: " + "; ".join(f"{code} {text.split(':')[0]}" for code, text in EXIT_CODES.items())
                  + " (docs/design.md).")


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
    from finpulse.dashboard import cli as dashboard_cli
    from finpulse.demo import cli as demo_cli
    from finpulse.export import cli as model_cli
    from finpulse.infra import cli as infra_cli
    from finpulse.streams import cli as streams_cli
    from finpulse.streams.sources import cli as sources_cli

    for module in (config_cli, infra_cli, model_cli, sources_cli, streams_cli, demo_cli, dashboard_cli, bench_cli):
        module.register(app)


_register()


def main() -> None:
    """Entry point: click reports usage errors itself (exit 2); a named finpulse error becomes one line on stderr and
    its room's exit code (``finpulse.exceptions.EXIT_CODES``)."""
    try:
        app()
    except FinpulseError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(exc.exit_code) from None
