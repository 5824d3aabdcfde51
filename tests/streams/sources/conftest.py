"""A local HTTP site (``http.server`` in a thread on 127.0.0.1, port 0) serving feed and page fixtures."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from finpulse.settings import ScrapeSettings

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    delay_s: float = 0.0
    fail_times: int = 0  # answer 503 this many times first
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Site:
    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return self.base + path

    def fixture(self, path: str, name: str, **options: object) -> Route:
        """Serve fixture file ``name`` at ``path``; ``{base}`` in text fixtures becomes the site's base URL."""
        body = (FIXTURES / name).read_bytes()
        if name.endswith((".rss", ".atom", ".xml", ".txt")):
            body = body.replace(b"{base}", self.base.encode())
        route = Route(body=body, **options)  # type: ignore[arg-type]
        self.routes[path] = route
        return route

    def hits(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _ in self.requests if p.split("?")[0] == path)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that timed out on purpose close their sockets; nothing to report


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            with site.lock:
                site.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = site.routes.get(self.path.split("?")[0])
                failing = route is not None and route.fail_times > 0
                if failing and route is not None:
                    route.fail_times -= 1
            if route is None:
                self._answer(404, b"not found", "text/plain")
                return
            if route.delay_s:
                time.sleep(route.delay_s)
            if failing:
                self._answer(503, b"try later", "text/plain")
                return
            if route.etag and self.headers.get("If-None-Match") == route.etag:
                self._answer(304, b"", None, route)
                return
            if route.last_modified and self.headers.get("If-Modified-Since") == route.last_modified:
                self._answer(304, b"", None, route)
                return
            self._answer(route.status, route.body, route.content_type, route)

        def _answer(self, status: int, body: bytes, content_type: str | None, route: Route | None = None) -> None:
            try:
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                if route is not None:
                    if route.etag:
                        self.send_header("ETag", route.etag)
                    if route.last_modified:
                        self.send_header("Last-Modified", route.last_modified)
                    for name, value in route.headers.items():
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@pytest.fixture
def site() -> Iterator[Site]:
    """An empty local site; tests add routes with ``site.fixture(path, file)`` or ``site.routes[path] = Route(...)``."""
    server = _Server(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    served = Site(base=f"http://127.0.0.1:{port}")
    server.RequestHandlerClass = _handler(served)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fixture-site", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def scrape_config(tmp_path: Path) -> ScrapeSettings:
    """Fast settings for tests: quick timeouts and back-offs, a high rate limit, state under tmp_path."""
    return ScrapeSettings(
        host_rate_per_s=500.0,
        timeout_s=1.0,
        max_retries=2,
        retry_backoff_s=0.01,
        concurrency=4,
        user_agent="finpulse-test/1.0",
        state_file=tmp_path / "state.json",
        max_seen=1000,
    )
