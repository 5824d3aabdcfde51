"""``finpulse worker --role``: an unknown role is refused before anything starts."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from finpulse.cli import app


def test_an_unknown_role_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--env-file", str(tmp_path / "none.env"), "worker", "--role", "clicks"])

    assert result.exit_code == 2
    text = " ".join(result.output.replace("│", " ").split())  # the message as one line, out of rich's box
    assert "unknown role(s) clicks; choose from news, alerts, recommend" in text
