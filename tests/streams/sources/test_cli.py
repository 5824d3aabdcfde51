"""``finpulse replay`` and ``finpulse scrape`` as commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from finpulse.cli import app
from finpulse.contracts.topics import NEWS_RAW, TOPICS
from finpulse.infra.topics_admin import create_topics
from finpulse.streams.sources.exceptions import FeedListError

from .conftest import Site

runner = CliRunner()


def test_scrape_without_feeds_is_one_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--env-file", str(tmp_path / "none.env"), "scrape", "--once"], env={"FINPULSE_SCRAPE__FEEDS": "[]"})
    assert isinstance(result.exception, FeedListError)
    assert "FINPULSE_SCRAPE__FEEDS" in str(result.exception)


def test_replay_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["replay", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2 and "does not exist" in result.output


def _prefixed(stack, unique_name: str) -> dict[str, str]:  # noqa: ANN001
    settings = stack.settings.model_copy(update={"kafka": stack.settings.kafka.model_copy(update={"topic_prefix": f"{unique_name}."})})
    create_topics(settings, tuple(spec for spec in TOPICS if spec.name == NEWS_RAW))
    return {
        "FINPULSE_KAFKA__BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "FINPULSE_KAFKA__TOPIC_PREFIX": f"{unique_name}.",
    }


@pytest.mark.integration
def test_replay_command(stack, unique_name: str, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "news.jsonl"
    path.write_text("".join(f'{{"title": "Nvidia headline {i}", "published_at": {1700000000 + i}}}\n' for i in range(20)))
    env = _prefixed(stack, unique_name)
    result = runner.invoke(app, ["--env-file", str(stack.env_file), "replay", str(path), "--speed", "100"], env=env)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # rich wraps lines at the terminal width
    assert f"20 delivered to {unique_name}.news.raw, 0 failed, 0 skipped, 20 with tickers" in output


@pytest.mark.integration
def test_scrape_command(stack, unique_name: str, site: Site, tmp_path: Path) -> None:  # noqa: ANN001
    site.fixture("/feed.rss", "feed_update.rss", content_type="application/rss+xml")
    feeds = tmp_path / "feeds.txt"
    feeds.write_text(f"# test feeds\n{site.url('/feed.rss')}\n")
    env = {
        **_prefixed(stack, unique_name),
        "FINPULSE_SCRAPE__STATE_FILE": str(tmp_path / "state.json"),
        "FINPULSE_SCRAPE__FETCH_ARTICLES": "false",
    }
    args = ["--env-file", str(stack.env_file), "scrape", "--feeds", str(feeds), "--once"]
    first = runner.invoke(app, args, env=env)
    assert first.exit_code == 0, first.output
    assert "2 articles sent, 0 duplicates" in " ".join(first.output.split())
    second = runner.invoke(app, args, env=env)
    assert "0 articles sent, 2 duplicates" in " ".join(second.output.split())
