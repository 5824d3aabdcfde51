"""Commands of this subsystem (registered on the root ``finpulse`` app)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this subsystem's commands to the root app."""
