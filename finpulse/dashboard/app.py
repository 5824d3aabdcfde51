"""``finpulse dashboard``: a live page of sentiment trends, open alerts, latest headlines and recommendations.

A Starlette app serves one static page (``static/``), Plotly from the ``plotly`` Python package
(no CDN), and a small JSON API the page polls:

* ``/api/series``: negative share and volume over time for the market and the top tickers
  (``date_histogram`` on the news alias, with a ``terms`` sub-aggregation on the label),
* ``/api/alerts``: open ``NegativeSentimentSpike`` alerts from Alerta with their evidence,
* ``/api/headlines``: the latest scored articles,
* ``/api/users`` and ``/api/recommendations``: the ``<prefix>-recommendations`` index when it exists.

News text is untrusted: the page renders it with ``textContent`` only, and every response carries a
strict Content-Security-Policy (scripts from this origin only, no inline script, no eval).
"""

from __future__ import annotations

import importlib.resources
import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finpulse.dashboard.exceptions import DashboardError
from finpulse.dashboard.recommendations import flatten_recommendations, recommendations_index
from finpulse.settings import Settings, check_pseudonym_key

if TYPE_CHECKING:
    import uvicorn
    from elasticsearch import AsyncElasticsearch
    from starlette.applications import Starlette

logger = logging.getLogger(__name__)

EVENT = "NegativeSentimentSpike"
MARKET = "market"
# Range choices of the page: minutes -> bucket interval.
RANGES: dict[int, str] = {60: "1m", 360: "5m", 1440: "30m", 10080: "3h"}
DEFAULT_RANGE_MIN = 60
TOP_TICKERS = 5
MAX_TICKERS = 10
# Scripts: this origin only, no inline script, no eval. Styles allow inline because Plotly sets style
# attributes on the SVG it draws (blocked, the charts lose their layout); styles cannot run code.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def plotly_js_path() -> Path:
    """``plotly.min.js`` as shipped inside the ``plotly`` Python package."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise DashboardError(f"plotly.min.js not found in the plotly package at {path} (pip install plotly)")
    return path


def static_dir() -> Path:
    return Path(str(importlib.resources.files("finpulse.dashboard").joinpath("static")))


class DashboardData:
    """The page's data: Elasticsearch (async client from the factory) and Alerta's API."""

    def __init__(self, settings: Settings) -> None:
        import httpx

        from finpulse.streams.sinks.elasticsearch import make_async_es_client

        self.settings = settings
        self.prefix = settings.elasticsearch.index_prefix
        self.news = f"{self.prefix}-news"
        self.recommendations = recommendations_index(self.prefix)
        self.es: AsyncElasticsearch = make_async_es_client(settings.elasticsearch)
        headers = {}
        if settings.alerta.api_key is not None:
            headers["Authorization"] = f"Key {settings.alerta.api_key.get_secret_value()}"
        self.alerta = httpx.AsyncClient(base_url=settings.alerta.endpoint, headers=headers, timeout=settings.alerta.timeout_s)

    async def close(self) -> None:
        await self.es.close()
        await self.alerta.aclose()

    async def _search(self, index: str, **body: Any) -> dict[str, Any]:
        from elasticsearch import NotFoundError

        try:
            response = await self.es.search(index=index, ignore_unavailable=True, allow_no_indices=True, **body)
        except NotFoundError:  # no such index or alias yet: nothing indexed
            return {"hits": {"hits": [], "total": {"value": 0}}, "aggregations": {}}
        return dict(response.body)

    async def series(self, minutes: int, tickers: list[str] | None) -> dict[str, Any]:
        interval = RANGES.get(minutes) or RANGES[DEFAULT_RANGE_MIN]
        now = datetime.now(UTC)
        start = now - timedelta(minutes=minutes)
        time_range = {"range": {"published_at": {"gte": start.isoformat(), "lte": (now + timedelta(minutes=5)).isoformat()}}}
        over_time = {
            "date_histogram": {"field": "published_at", "fixed_interval": interval, "min_doc_count": 1},
            "aggs": {"labels": {"terms": {"field": "label", "size": 3}}},
        }
        aggs: dict[str, Any] = {"over_time": over_time}
        if not tickers:
            aggs["top"] = {"terms": {"field": "tickers", "size": TOP_TICKERS}}
        body = await self._search(self.news, size=0, query=time_range, aggs=aggs)
        result = body.get("aggregations", {})
        series = [{"key": MARKET, "points": _points(result.get("over_time", {}))}]
        keys = tickers or [str(b["key"]) for b in result.get("top", {}).get("buckets", [])]
        for ticker in keys[:MAX_TICKERS]:
            query = {"bool": {"filter": [time_range, {"term": {"tickers": ticker}}]}}
            per = await self._search(self.news, size=0, query=query, aggs={"over_time": over_time})
            series.append({"key": ticker, "points": _points(per.get("aggregations", {}).get("over_time", {}))})
        return {"interval": interval, "from": start.isoformat(), "to": now.isoformat(), "series": series}

    async def headlines(self, size: int) -> list[dict[str, Any]]:
        body = await self._search(
            self.news, size=size, sort=[{"scored_at": {"order": "desc"}}],
            source=["id", "title", "url", "source", "tickers", "label", "negative_score", "published_at", "scored_at"],
        )
        return [_headline(hit["_source"]) for hit in body["hits"]["hits"]]

    async def alerts(self) -> list[dict[str, Any]]:
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("event", EVENT), ("environment", self.settings.alerta.environment), ("status", "open"), ("status", "ack"),
            ("sort-by", "lastReceiveTime"),
        ]
        response = await self.alerta.get("/alerts", params=params)
        response.raise_for_status()
        return [_alert(a) for a in response.json().get("alerts", [])]

    async def _recommendations_exist(self) -> bool:
        return bool(await self.es.indices.exists(index=self.recommendations))

    async def users(self) -> dict[str, Any]:
        if not await self._recommendations_exist():
            return {"available": False, "users": []}
        body = await self._search(self.recommendations, size=0, aggs={"users": {"terms": {"field": "user_id", "size": 50}}})
        users = [str(b["key"]) for b in body.get("aggregations", {}).get("users", {}).get("buckets", [])]
        return {"available": True, "users": users}

    async def user_recommendations(self, user: str, size: int) -> dict[str, Any]:
        """The user's latest recommendation list (the index keeps every list: one document per (list, rank))."""
        if not user or not await self._recommendations_exist():
            return {"available": False, "user": user, "items": []}
        latest = await self._search(self.recommendations, size=1, query={"term": {"user_id": user}},
                                    sort=[{"recommended_at": {"order": "desc"}}])
        hits = latest["hits"]["hits"]
        if not hits:
            return {"available": True, "user": user, "items": []}
        when = hits[0]["_source"].get("recommended_at")
        query: dict[str, Any] = {"bool": {"filter": [{"term": {"user_id": user}}]}}
        if when:
            query["bool"]["filter"].append({"range": {"recommended_at": {"gte": when, "lte": when}}})
        body = await self._search(self.recommendations, size=max(size, 50), query=query)
        items = [item for hit in body["hits"]["hits"] for item in flatten_recommendations(hit["_source"])]
        items.sort(key=lambda i: (_number(i.get("rank"), math.inf), -_number(i.get("score"), 0.0)))
        return {"available": True, "user": user, "recommended_at": when, "items": [_recommendation(i) for i in items[:size]]}

    def pseudonym(self, raw_user_id: str) -> str:
        """The pseudonym the recommendations index stores for a raw user id (keyed hash, FINPULSE_PSEUDONYM_KEY)."""
        from finpulse.pseudonym import pseudonymise

        return pseudonymise(raw_user_id, self.settings.pseudonym_key)


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) else default


def _points(histogram: dict[str, Any]) -> list[dict[str, Any]]:
    points = []
    for bucket in histogram.get("buckets", []):
        n = int(bucket.get("doc_count", 0))
        negative = sum(int(b["doc_count"]) for b in bucket.get("labels", {}).get("buckets", []) if b["key"] == "negative")
        points.append({"t": bucket.get("key_as_string") or bucket["key"], "n": n, "negative": negative,
                       "share": round(negative / n, 4) if n else None})
    return points


def _headline(doc: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "title", "url", "source", "tickers", "label", "negative_score", "published_at", "scored_at")
    return {key: doc.get(key) for key in keys}


def _recommendation(item: dict[str, Any]) -> dict[str, Any]:
    keys = ("article_id", "title", "url", "score", "rank", "recommended_at", "tickers")
    return {key: item.get(key) for key in keys}


def _alert(alert: dict[str, Any]) -> dict[str, Any]:
    attributes = alert.get("attributes") or {}
    raw = attributes.get("headlines")
    headlines: list[Any] = raw if isinstance(raw, list) else []
    return {
        "id": alert.get("id"),
        "resource": alert.get("resource"),
        "severity": alert.get("severity"),
        "status": alert.get("status"),
        "lastReceiveTime": alert.get("lastReceiveTime"),
        "summary": str(alert.get("text") or "").split("\n", 1)[0],
        "n": attributes.get("n"),
        "k": attributes.get("k"),
        "share": attributes.get("share"),
        "baseline": attributes.get("baseline"),
        "pValue": attributes.get("pValue"),
        "windowStart": attributes.get("windowStart"),
        "windowEnd": attributes.get("windowEnd"),
        "headlines": [
            {"title": h.get("title"), "url": h.get("url"), "negative_score": h.get("negative_score")}
            for h in headlines if isinstance(h, dict)
        ],
    }


def create_app(settings: Settings) -> Starlette:
    """The dashboard's Starlette app (the data clients open and close with the app's lifespan); its routes are in
    :mod:`finpulse.dashboard.routes`."""
    from finpulse.dashboard.routes import build_app

    return build_app(settings)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DashboardError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _server(settings: Settings) -> uvicorn.Server:
    import uvicorn

    config = uvicorn.Config(create_app(settings), log_config=None, access_log=False, lifespan="on")
    return uvicorn.Server(config)


def run_dashboard(settings: Settings, host: str = "127.0.0.1", port: int = 8050) -> None:
    """Serve the page in this process until interrupted (``finpulse dashboard``)."""
    check_pseudonym_key(settings.pseudonym_key)
    sock = _bind(host, port)
    logger.info("dashboard on http://%s:%d/ (Elasticsearch %s, Alerta %s)", host, sock.getsockname()[1],
                settings.elasticsearch.url, settings.alerta.endpoint)
    _server(settings).run(sockets=[sock])


@dataclass
class DashboardHandle:
    """A dashboard served from a background thread of this process."""

    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout_s)


def serve_dashboard(settings: Settings, port: int = 0, host: str = "127.0.0.1", start_timeout_s: float = 20.0) -> DashboardHandle:
    """Start the page in a background thread (``port=0``: a free port) and return once it answers.

    ``handle.url`` is the page, ``handle.stop()`` stops it. Used by ``finpulse demo`` and the tests.
    """
    check_pseudonym_key(settings.pseudonym_key)
    sock = _bind(host, port)
    bound = int(sock.getsockname()[1])
    server = _server(settings)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="finpulse-dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise DashboardError("the dashboard server stopped while starting (see the log)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise DashboardError(f"the dashboard did not start within {start_timeout_s:.0f} s")
        time.sleep(0.05)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    logger.info("dashboard on %s (pid %d)", url, os.getpid())
    return DashboardHandle(url=url, port=bound, server=server, thread=thread)
