"""``finpulse config``: show the current settings (secrets masked), the table of every variable and the JSON
schema of the articles finpulse takes in (``NewsArticle``, topic ``news.raw``)."""

from __future__ import annotations

import json
import logging
from enum import Enum
from pathlib import Path

import typer

from finpulse.exceptions import FinpulseError
from finpulse.settings import Settings, settings_table, settings_to_env

logger = logging.getLogger(__name__)

TABLE_START = "<!-- settings-table:start -->"
TABLE_END = "<!-- settings-table:end -->"
MASK = "**********"


class ShowFormat(str, Enum):
    JSON = "json"
    ENV = "env"


def markdown_table() -> str:
    """The Markdown table of every setting: variable, default and description (no trailing newline)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| Variable | Default | Description |", "|---|---|---|"]
    for name, default, description in settings_table():
        shown = f"`{cell(default)}`" if default else ""
        lines.append(f"| `{name}` | {shown} | {cell(description)} |")
    return "\n".join(lines)


def replace_table(text: str, table: str) -> str:
    """``text`` with the part between the settings-table markers replaced by ``table``."""
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise FinpulseError(f"no {TABLE_START} ... {TABLE_END} section found")
    return text[: start + len(TABLE_START)] + "\n" + table + "\n" + text[end:]


def news_article_schema() -> str:
    """The JSON schema of ``NewsArticle`` (the records of ``news.raw``), indented, with a trailing newline."""
    from finpulse.contracts.records import NewsArticle

    return json.dumps(NewsArticle.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


def masked_env(settings: Settings) -> dict[str, str]:
    """Every set value as its ``FINPULSE_`` variable, secrets masked."""
    return settings_to_env(settings, mask=MASK)


def register(app: typer.Typer) -> None:
    """Add ``finpulse config show``, ``finpulse config table`` and ``finpulse config schema``."""
    config = typer.Typer(name="config", help="Inspect the settings and the schema of a news article.", no_args_is_help=True)

    @config.command("show")
    def show(
        ctx: typer.Context,
        fmt: ShowFormat = typer.Option(ShowFormat.JSON, "--format", help="json (nested) or env (FINPULSE_ variables)."),
    ) -> None:
        """Print the current settings, secrets masked."""
        from finpulse.context import settings_of

        settings = settings_of(ctx)
        if fmt is ShowFormat.JSON:
            typer.echo(settings.model_dump_json(indent=2))
        else:
            for name, value in masked_env(settings).items():
                typer.echo(f"{name}={value}")

    @config.command("table")
    def table(
        write: Path | None = typer.Option(
            None,
            "--write",
            help="Replace the table between the settings-table markers of this file (docs/configuration.md).",
        ),
    ) -> None:
        """Print the Markdown table of every variable, its default and description."""
        generated = markdown_table()
        if write is None:
            typer.echo(generated)
            return
        text = write.read_text(encoding="utf-8")
        updated = replace_table(text, generated)
        if updated != text:
            write.write_text(updated, encoding="utf-8")
            logger.info("updated the settings table in %s", write)

    @config.command("schema")
    def schema(
        write: Path | None = typer.Option(
            None, "--write", help="Write the schema to this file (docs/schemas/news-article.schema.json) instead of stdout."
        ),
    ) -> None:
        """Print the JSON schema of a news article (NewsArticle, the records of news.raw)."""
        generated = news_article_schema()
        if write is None:
            typer.echo(generated, nl=False)
            return
        if not write.is_file() or write.read_text(encoding="utf-8") != generated:
            write.parent.mkdir(parents=True, exist_ok=True)
            write.write_text(generated, encoding="utf-8")
            logger.info("wrote the news article schema to %s", write)

    app.add_typer(config)
