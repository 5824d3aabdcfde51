"""``finpulse stack up | down | status | logs`` and ``finpulse topics create | list``."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from finpulse.context import settings_of

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from finpulse.infra.stack.manager import ServerStatus

logger = logging.getLogger(__name__)

JSON_OPTION = typer.Option(False, "--json", help="One JSON object on stdout instead of the table.")

stack_app = typer.Typer(help="The embedded stack of real servers (Kafka, Elasticsearch API, Alerta) on loopback.",
                        no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics of finpulse.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this subsystem's commands to the root app."""
    app.add_typer(stack_app, name="stack")
    app.add_typer(topics_app, name="topics")


def _console() -> Console:
    from rich.console import Console

    return Console()


def _emit_statuses(title: str, statuses: list[ServerStatus], as_json: bool) -> None:
    """The servers' states: a table, or with ``--json`` one JSON object on stdout."""
    if as_json:
        import dataclasses
        import json

        typer.echo(json.dumps({"servers": [dataclasses.asdict(s) for s in statuses]}, default=str))
    else:
        _console().print(_status_table(title, statuses))


def _status_table(title: str, statuses: list[ServerStatus]) -> Table:
    from rich.table import Table

    table = Table(title=title)
    for column in ("server", "address", "pid", "state", "healthy", "start-up s", "log"):
        table.add_column(column)
    for s in statuses:
        healthy = "[green]yes[/]" if s.healthy else ("[red]no[/]" if s.running else "-")
        state = s.action + (f" ({s.detail})" if s.detail else "")
        table.add_row(s.name, f"{s.host}:{s.port}", str(s.pid or "-"), state, healthy,
                      f"{s.startup_s:.2f}" if s.startup_s is not None else "-", str(s.log_file))
    return table


@stack_app.command("up")
def stack_up(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Start every server that is not running (healthy ones are kept) and write <state_dir>/stack.env."""
    from finpulse.infra.stack.manager import Stack

    stack = Stack(settings_of(ctx).stack)
    t0 = time.monotonic()
    statuses = stack.up()
    elapsed = time.monotonic() - t0
    _emit_statuses(f"finpulse stack up in {elapsed:.2f} s", statuses, as_json)
    logger.info("settings written to %s (finpulse reads .finpulse/stack.env by default; elsewhere pass --env-file %s)",
                stack.env_file, stack.env_file)


@stack_app.command("down")
def stack_down(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Stop every server of the stack (SIGTERM, then SIGKILL) and remove stack.env."""
    from finpulse.infra.stack.manager import Stack

    statuses = Stack(settings_of(ctx).stack).down()
    _emit_statuses("finpulse stack down", statuses, as_json)


@stack_app.command("status")
def stack_status(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Each server's address, pid and health (one real request each); exit code 1 unless all are healthy."""
    from finpulse.infra.stack.manager import Stack

    statuses = Stack(settings_of(ctx).stack).status()
    _emit_statuses("finpulse stack status", statuses, as_json)
    if not all(s.healthy for s in statuses):
        # SystemExit, not typer.Exit: finpulse.cli.main runs click with standalone_mode=False, which turns
        # typer.Exit into a return value that main() drops.
        raise SystemExit(1)


@stack_app.command("logs")
def stack_logs(
    ctx: typer.Context,
    server: str | None = typer.Argument(None, help="kafka, elasticsearch, postgres or alerta (default: all)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines (Ctrl-C stops)."),
    lines: int = typer.Option(40, "--lines", "-n", min=0, help="Lines of each log to show first."),
) -> None:
    """Show the servers' log files."""
    from finpulse.infra.stack.manager import Stack

    stack = Stack(settings_of(ctx).stack)
    servers = [stack.server(server)] if server else stack.servers
    console = _console()
    files: dict[str, Path] = {s.name: s.log_file for s in servers}
    positions: dict[str, int] = {}
    for name, path in files.items():
        if not path.is_file():
            console.print(f"[dim]== {name}: no log yet ({path})[/]")
            positions[name] = 0
            continue
        text = path.read_text(errors="replace")
        positions[name] = len(text.encode(errors="replace"))
        console.print(f"[bold]== {name} ({path})[/]")
        for line in text.splitlines()[-lines:] if lines else []:
            console.print(line, markup=False, highlight=False)
    while follow:
        time.sleep(0.5)
        for name, path in files.items():
            if not path.is_file():
                continue
            with path.open("rb") as fh:
                size = fh.seek(0, 2)
                if size < positions[name]:  # truncated or replaced
                    positions[name] = 0
                fh.seek(positions[name])
                chunk = fh.read()
                positions[name] = fh.tell()
            for line in chunk.decode(errors="replace").splitlines():
                console.print(f"{name} | {line}" if len(files) > 1 else line, markup=False, highlight=False)


@topics_app.command("create")
def topics_create(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Create every topic of finpulse/contracts/topics.py under FINPULSE_KAFKA__TOPIC_PREFIX (existing ones are kept)."""
    from rich.table import Table

    from finpulse.infra.topics_admin import create_topics

    states = create_topics(settings_of(ctx))
    if as_json:
        typer.echo(json.dumps({"topics": [{"topic": s.name, "partitions": s.partitions, "state": s.action,
                                           "configs": s.spec.configs() if s.spec else {}} for s in states]}))
        return
    table = Table(title="finpulse topics")
    for column in ("topic", "partitions", "state", "configs"):
        table.add_column(column)
    for s in states:
        configs = ", ".join(f"{k}={v}" for k, v in s.spec.configs().items()) if s.spec else ""
        table.add_row(s.name, str(s.partitions), s.action, configs)
    _console().print(table)


@topics_app.command("list")
def topics_list(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Topics on the brokers under the topic prefix."""
    from rich.table import Table

    from finpulse.infra.topics_admin import list_topics

    found = list_topics(settings_of(ctx))
    if as_json:
        typer.echo(json.dumps({"topics": [{"topic": s.name, "partitions": s.partitions,
                                           "finpulse_topic": s.spec.description if s.spec else None} for s in found]}))
        return
    table = Table(title="topics on " + settings_of(ctx).kafka.bootstrap_servers)
    for column in ("topic", "partitions", "finpulse topic"):
        table.add_column(column)
    for s in found:
        table.add_row(s.name, str(s.partitions), s.spec.description if s.spec else "-")
    _console().print(table)
