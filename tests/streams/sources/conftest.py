"""A local HTTP site (``http.server`` in a thread on 127.0.0.1, port 0) serving feed and page fixtures; more sites on
other loopback addresses (``serve_site``), and an event loop that answers some host names itself (``HostsLoop``)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from finpulse.settings import ScrapeSettings

FIXTURES = Path(__file__).parent / "fixtures"
T = TypeVar("T")


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
    drip_s: float = 0.0  # send the body one byte at a time, this many seconds apart


@dataclass
class Site:
    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    connections: int = 0  # TCP connections accepted, whether or not a request followed

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
    site: Site | None = None

    def get_request(self) -> tuple[socket.socket, object]:
        accepted = super().get_request()
        if self.site is not None:
            with self.site.lock:
                self.site.connections += 1
        return accepted

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that timed out on purpose close their sockets; nothing to report


class _Server6(_Server):
    address_family = socket.AF_INET6


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
                if route is not None and route.drip_s:
                    for index in range(len(body)):
                        self.wfile.write(body[index : index + 1])
                        self.wfile.flush()
                        time.sleep(route.drip_s)
                elif body:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@contextmanager
def serve_site(host: str = "127.0.0.1", port: int = 0) -> Iterator[Site]:
    """An empty site on ``host`` (an IPv4 or IPv6 address; port 0 = a free one) for the duration of the block."""
    server = (_Server6 if ":" in host else _Server)((host, port), BaseHTTPRequestHandler)
    bound = server.server_address[1]
    served = Site(base=f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}")
    server.site = served
    server.RequestHandlerClass = _handler(served)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=f"fixture-site-{host}", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    """An empty local site; tests add routes with ``site.fixture(path, file)`` or ``site.routes[path] = Route(...)``."""
    with serve_site() as served:
        yield served


@pytest.fixture
def scrape_config(tmp_path: Path) -> ScrapeSettings:
    """Fast settings for tests: quick timeouts and back-offs, a high rate limit, state under tmp_path; the fixture
    site's pages are on loopback, which links found in feeds may reach only when their network is allowed."""
    return ScrapeSettings(
        allowed_networks=["127.0.0.0/8"],
        host_rate_per_s=500.0,
        timeout_s=1.0,
        max_retries=2,
        retry_backoff_s=0.01,
        concurrency=4,
        user_agent="finpulse-test/1.0",
        state_file=tmp_path / "state.json",
        max_seen=1000,
    )


class HostsLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``getaddrinfo`` answers the names of ``hosts`` itself (an /etc/hosts of the test: name
    -> address, or -> a function giving the address of each lookup), and asks the system for every other name."""

    def __init__(self, hosts: Mapping[str, str | Callable[[], str]]) -> None:
        super().__init__()
        self.hosts = dict(hosts)
        self.lookups: dict[str, int] = {}

    async def getaddrinfo(self, host: object, port: object, *, family: int = 0, type: int = 0, proto: int = 0,  # noqa: A002
                          flags: int = 0) -> list[tuple[Any, ...]]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        answer = self.hosts.get(name)
        if answer is None:
            return await super().getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags)
        self.lookups[name] = self.lookups.get(name, 0) + 1
        address = answer if isinstance(answer, str) else answer()
        number = int(port or 0)
        if ":" in address:
            return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, number, 0, 0))]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, number))]


def run_with_hosts(coro: Coroutine[Any, Any, T], hosts: Mapping[str, str | Callable[[], str]]) -> T:
    """``asyncio.run(coro)`` on a :class:`HostsLoop` of ``hosts``."""
    with asyncio.Runner(loop_factory=lambda: HostsLoop(hosts)) as runner:
        return runner.run(coro)
