"""Commands of trend viewing: ``finpulse kibana import`` and ``finpulse dashboard``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``kibana`` group and the ``dashboard`` command to the root app."""
    kibana = typer.Typer(name="kibana", help="Kibana data views and dashboards (infra/kibana/*.ndjson).", no_args_is_help=True)

    @kibana.command("import")
    def kibana_import(
        ctx: typer.Context,
        url: str | None = typer.Option(None, "--url", help="Kibana base URL (default: FINPULSE_KIBANA__URL)."),
        space: str | None = typer.Option(None, "--space", help="Kibana space (default: FINPULSE_KIBANA__SPACE)."),
        timeout: float = typer.Option(60.0, "--timeout", min=1.0, help="HTTP timeout in seconds."),
    ) -> None:
        """Load the saved objects into Kibana through its _import API (existing objects are overwritten)."""
        from rich.console import Console

        from finpulse.context import settings_of
        from finpulse.dashboard.kibana import import_saved_objects
        from finpulse.settings import KibanaSettings

        settings = settings_of(ctx)
        changes = {k: v for k, v in {"url": url, "space": space}.items() if v is not None}
        kibana_settings = KibanaSettings.model_validate({**settings.kibana.model_dump(), **changes}) if changes else settings.kibana
        result = import_saved_objects(kibana_settings, settings.elasticsearch.index_prefix, timeout_s=timeout)
        Console().print(f"[green]✓[/] imported {result.success_count} saved objects into Kibana at {kibana_settings.url}")

    app.add_typer(kibana)

    @app.command("dashboard")
    def dashboard(
        ctx: typer.Context,
        port: int = typer.Option(8050, "--port", min=0, max=65535, help="Port of the page (0 = a free one)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    ) -> None:
        """Serve the live page: sentiment trends, open alerts, latest headlines, recommendations."""
        from finpulse.context import settings_of
        from finpulse.dashboard.app import run_dashboard

        run_dashboard(settings_of(ctx), host=host, port=port)
