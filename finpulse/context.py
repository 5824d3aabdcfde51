"""The settings a command runs with, built once by the root callback of ``finpulse.cli``.

Every subsystem's ``cli.py`` reads them from here, so no subsystem imports the root command line.
"""

from __future__ import annotations

import typer

from finpulse.settings import Settings


def settings_of(ctx: typer.Context) -> Settings:
    """The settings built by the root callback (commands receive them through the context)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        raise RuntimeError("settings were not built: commands must run under the finpulse root command")
    return root.obj
