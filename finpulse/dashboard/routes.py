"""The dashboard's routes, from which :func:`finpulse.dashboard.app.create_app` builds the app: the page, its static
files and Plotly, and the JSON API over the :class:`~finpulse.dashboard.app.DashboardData` that the app's lifespan
opens. Every response carries :data:`~finpulse.dashboard.app.SECURITY_HEADERS`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from elasticsearch import ApiError, TransportError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from finpulse.dashboard.app import (
    DEFAULT_RANGE_MIN,
    MAX_TICKERS,
    RANGES,
    SECURITY_HEADERS,
    DashboardData,
    plotly_js_path,
    static_dir,
)
from finpulse.settings import Settings

logger = logging.getLogger(__name__)

ApiHandler = Callable[[Request, DashboardData], Awaitable[dict[str, Any]]]


class DashboardState:
    """What the routes share: the data clients, open while the app runs (from its lifespan's start to its end)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._data: DashboardData | None = None

    @property
    def data(self) -> DashboardData:
        if self._data is None:
            raise RuntimeError("the dashboard's data clients are not open: the app's lifespan has not started")
        return self._data

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        data = DashboardData(self.settings)
        self._data = data
        try:
            yield
        finally:
            self._data = None
            await data.close()

    def guarded(self, handler: ApiHandler) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` as an endpoint: its answer as JSON, a failed Elasticsearch or Alerta query as 503 and a bad
        parameter (``ValueError``) as 400."""

        async def endpoint(request: Request) -> Response:
            try:
                return JSONResponse(await handler(request, self.data))
            except (ApiError, TransportError) as exc:
                logger.warning("Elasticsearch query of %s failed: %s", request.url.path, exc)
                return JSONResponse({"error": f"Elasticsearch: {type(exc).__name__}"}, status_code=503)
            except httpx.HTTPError as exc:
                logger.warning("Alerta query of %s failed: %s", request.url.path, exc)
                return JSONResponse({"error": f"Alerta: {type(exc).__name__}"}, status_code=503)
            except ValueError as exc:
                return JSONResponse({"error": f"bad request: {exc}"}, status_code=400)

        return endpoint


# --- the JSON API -------------------------------------------------------------------------------------


async def series(request: Request, data: DashboardData) -> dict[str, Any]:
    minutes = int(request.query_params.get("minutes", DEFAULT_RANGE_MIN))
    if minutes not in RANGES:
        raise ValueError(f"minutes must be one of {sorted(RANGES)}")
    raw = request.query_params.get("tickers", "")
    tickers = [t.strip().upper() for t in raw.split(",") if t.strip()][:MAX_TICKERS]
    return await data.series(minutes, tickers or None)


async def headlines(request: Request, data: DashboardData) -> dict[str, Any]:
    size = min(max(int(request.query_params.get("size", 20)), 1), 100)
    return {"headlines": await data.headlines(size)}


async def alerts(_request: Request, data: DashboardData) -> dict[str, Any]:
    return {"alerts": await data.alerts()}


async def users(_request: Request, data: DashboardData) -> dict[str, Any]:
    return await data.users()


async def recommendations(request: Request, data: DashboardData) -> dict[str, Any]:
    """``?user=<pseudonym>`` (as listed by /api/users) or ``?raw_user=<id>`` (pseudonymised here, never stored)."""
    raw = request.query_params.get("raw_user", "").strip()[:256]
    user = data.pseudonym(raw) if raw else request.query_params.get("user", "")[:256]
    return await data.user_recommendations(user, 20)


# --- the page -----------------------------------------------------------------------------------------


async def index(_request: Request) -> Response:
    return FileResponse(static_dir() / "index.html", media_type="text/html; charset=utf-8")


async def plotly_js(_request: Request) -> Response:
    return FileResponse(plotly_js_path(), media_type="text/javascript; charset=utf-8")


async def health(_request: Request) -> Response:
    return JSONResponse({"ok": True})


async def no_icon(_request: Request) -> Response:
    return Response(status_code=204)


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def build_app(settings: Settings) -> Starlette:
    """The dashboard's Starlette app over the data of ``settings``."""
    state = DashboardState(settings)
    routes = [
        Route("/", index),
        Route("/healthz", health),
        Route("/favicon.ico", no_icon),
        Route("/vendor/plotly.min.js", plotly_js),
        Route("/api/series", state.guarded(series)),
        Route("/api/headlines", state.guarded(headlines)),
        Route("/api/alerts", state.guarded(alerts)),
        Route("/api/users", state.guarded(users)),
        Route("/api/recommendations", state.guarded(recommendations)),
        Mount("/static", app=StaticFiles(directory=static_dir()), name="static"),
    ]
    return Starlette(routes=routes, lifespan=state.lifespan, middleware=[Middleware(SecurityHeaders)])
