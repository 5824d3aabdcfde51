"""``finpulse config show`` / ``table`` / ``schema``, docs/configuration.md's settings table and the committed
news article schema (docs/schemas/news-article.schema.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finpulse.cli import app
from finpulse.config_cli import TABLE_END, TABLE_START, markdown_table, news_article_schema, replace_table
from finpulse.contracts.records import NewsArticle
from finpulse.exceptions import FinpulseError
from finpulse.settings import settings_table

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION = ROOT / "docs" / "configuration.md"
SCHEMA = ROOT / "docs" / "schemas" / "news-article.schema.json"
SECRET = "s3cr3t-value-never-shown"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("FINPULSE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_configuration_table_is_current() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    assert "# Configuration" in text
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    assert text[start:end].strip() == markdown_table(), (
        "docs/configuration.md's settings table is stale: run `finpulse config table --write docs/configuration.md`"
    )


def test_committed_news_article_schema_is_current() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == news_article_schema(), (
        "docs/schemas/news-article.schema.json is stale: run "
        "`finpulse config schema --write docs/schemas/news-article.schema.json`"
    )
    assert json.loads(news_article_schema()) == NewsArticle.model_json_schema()


def test_schema_prints_and_writes(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["config", "schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == NewsArticle.model_json_schema()

    target = tmp_path / "out" / "news-article.schema.json"
    result = CliRunner().invoke(app, ["config", "schema", "--write", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == news_article_schema()


def test_table_has_a_row_per_setting() -> None:
    rows = markdown_table().splitlines()
    assert rows[0] == "| Variable | Default | Description |"
    assert len(rows) == 2 + len(settings_table())
    assert all(row.startswith("| `FINPULSE_") and row.endswith(" |") for row in rows[2:])


def test_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPULSE_ALERTA__API_KEY", SECRET)
    monkeypatch.setenv("FINPULSE_ELASTICSEARCH__PASSWORD", SECRET)
    monkeypatch.setenv("FINPULSE_PSEUDONYM_KEY", SECRET)
    monkeypatch.setenv("FINPULSE_KAFKA__TOPIC_PREFIX", "t1-")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    shown = json.loads(result.output)
    assert shown["kafka"]["topic_prefix"] == "t1-"
    assert shown["alerta"]["api_key"] == "**********"

    result = CliRunner().invoke(app, ["config", "show", "--format", "env"])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    lines = dict(line.split("=", 1) for line in result.output.splitlines())
    assert lines["FINPULSE_KAFKA__TOPIC_PREFIX"] == "t1-"
    assert lines["FINPULSE_PSEUDONYM_KEY"] == "**********"
    assert lines["FINPULSE_MODEL__PROVIDERS"] == '["cuda", "cpu"]'


def test_show_rejects_unknown_format() -> None:
    result = CliRunner().invoke(app, ["config", "show", "--format", "yaml"])
    assert result.exit_code != 0


def test_table_prints_and_writes(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["config", "table"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == markdown_table()

    doc = tmp_path / "doc.md"
    doc.write_text(f"# t\n\n{TABLE_START}\nSTALE-TABLE\n{TABLE_END}\n\nafter\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "table", "--write", str(doc)])
    assert result.exit_code == 0, result.output
    text = doc.read_text(encoding="utf-8")
    assert "STALE-TABLE" not in text and text.endswith(f"{TABLE_END}\n\nafter\n") and markdown_table() in text


def test_replace_table_needs_markers() -> None:
    with pytest.raises(FinpulseError):
        replace_table("no markers here", "| x |")
