"""Polite and guarded HTTP fetching for the scraper: per-host rate limit, conditional requests, retries with
back-off, redirects followed one hop at a time, a total deadline, bodies decoded within a size cap.

Retried: connection errors, timeouts, 5xx and 429 (honouring ``Retry-After``), with exponential back-off.
Not retried: every other 4xx. Bodies are decoded as they stream and cut at ``max_page_bytes`` (``truncated``).
A fetch is *trusted* only for a URL the operator configured (a feed) and its same-origin redirects; every
other hop is checked first (:mod:`finpulse.streams.sources.guard`) and connected to the checked address. A
``permit`` (robots.txt) is asked before each hop, after the address check, so robots.txt of a refused host
is never fetched either.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Generic, TypeVar
from urllib.parse import urlsplit

import httpx

from finpulse.settings import ScrapeSettings
from finpulse.streams.sources.decoding import BodyDecoder
from finpulse.streams.sources.exceptions import BadLinkError, FetchDeadlineError, FetchError, RobotsDeniedError
from finpulse.streams.sources.guard import PinnedTransport, checked_address, checked_url, pinned

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
V = TypeVar("V")
REDIRECTS = frozenset({301, 302, 303, 307, 308})

#: Asked before each hop: may ``url`` be fetched? (``trusted``: the hop is a configured feed's own origin.)
Permit = Callable[[str, bool], Awaitable[bool]]


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class HostTable(Generic[V]):
    """State per host (``scheme://netloc``) for ``max_hosts`` hosts at most, the least recently used forgotten first."""

    def __init__(self, max_hosts: int, factory: Callable[[], V]) -> None:
        self.max_hosts = max_hosts
        self._factory = factory
        self._hosts: OrderedDict[str, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._hosts)

    def get(self, host: str) -> V | None:
        return self._hosts.get(host)

    def __getitem__(self, host: str) -> V:
        """The state of ``host``, made new when it has none; it becomes the most recently used."""
        value = self._hosts.get(host)
        if value is None:
            value = self._hosts[host] = self._factory()
            while len(self._hosts) > self.max_hosts:
                self._hosts.popitem(last=False)
        self._hosts.move_to_end(host)
        return value


@dataclass
class _Pace:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_at: float = 0.0
    interval: float | None = None  # None: the limiter's own


class HostRateLimiter:
    """At most ``rate_per_s`` request starts per host; a host's ``Crawl-delay`` can slow it further.

    The pacing of ``max_hosts`` hosts is remembered, the least recently used forgotten first.
    """

    def __init__(self, rate_per_s: float, max_hosts: int = 10_000) -> None:
        self.interval = 1.0 / rate_per_s
        self._hosts = HostTable(max_hosts, _Pace)

    def min_interval(self, host: str) -> float:
        """Seconds between two request starts to ``host``."""
        pace = self._hosts.get(host)
        return self.interval if pace is None or pace.interval is None else pace.interval

    def set_min_interval(self, host: str, seconds: float) -> None:
        """Space requests to ``host`` by at least ``seconds`` (robots.txt Crawl-delay)."""
        self._hosts[host].interval = max(seconds, self.interval)

    async def wait(self, host: str) -> None:
        pace = self._hosts[host]
        async with pace.lock:
            loop = asyncio.get_running_loop()
            now = loop.time()
            if pace.next_at > now:
                await asyncio.sleep(pace.next_at - now)
                now = loop.time()
            pace.next_at = now + (self.interval if pace.interval is None else pace.interval)


@dataclass
class FetchResult:
    url: str
    final_url: str
    status: int
    content: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    attempts: int = 1
    truncated: bool = False  # the body went on past max_page_bytes and was cut there

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Fetcher:
    """Two ``httpx.AsyncClient`` (trusted hops, checked hops) with the scraper's rules; ``async with Fetcher(cfg) as f``."""

    def __init__(self, config: ScrapeSettings, *, limiter: HostRateLimiter | None = None) -> None:
        self.config = config
        self.limiter = limiter or HostRateLimiter(config.host_rate_per_s, config.max_hosts)
        options = {
            "timeout": httpx.Timeout(config.timeout_s),
            "follow_redirects": False,  # each hop is checked here
            "headers": {"User-Agent": config.user_agent, "Accept-Encoding": "gzip, deflate"},
        }
        self._trusted = httpx.AsyncClient(**options)  # type: ignore[arg-type]
        self._checked = httpx.AsyncClient(transport=PinnedTransport(), trust_env=False, **options)  # type: ignore[arg-type]
        self.requests = 0

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._trusted.aclose()
        await self._checked.aclose()

    async def get(
        self,
        url: str,
        *,
        trusted: bool = False,
        permit: Permit | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str | None = None,
    ) -> FetchResult:
        """GET ``url`` following redirects; 2xx and 304 come back, anything else raises :class:`FetchError` (after
        retries), a refusal its subclass (:class:`~finpulse.streams.sources.exceptions.FetchRefusedError`)."""
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        if accept:
            headers["Accept"] = accept
        deadline = asyncio.timeout(self.config.fetch_deadline_s)
        try:
            async with deadline:
                return await self._follow(url, trusted, permit, headers)
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            raise FetchDeadlineError(url, f"not done within {self.config.fetch_deadline_s:g} s") from exc

    async def _follow(self, url: str, trusted: bool, permit: Permit | None, headers: dict[str, str]) -> FetchResult:
        origin = host_of(url)
        target = url
        for _ in range(self.config.max_redirects + 1):
            parsed = checked_url(target)
            hop_trusted = trusted and host_of(target) == origin
            address = None if hop_trusted else await checked_address(parsed, self.config.allowed_networks)
            if permit is not None and not await permit(target, hop_trusted):
                raise RobotsDeniedError(target, "disallowed by robots.txt" + ("" if target == url else f" (redirected from {url})"))
            result = await self._retrying(target, headers, address)
            location = result.headers.get("location") if result.status in REDIRECTS else None
            if not location:
                result.url = url
                return result
            try:
                target = str(parsed.join(location))
            except httpx.InvalidURL as exc:
                raise BadLinkError(url, f"redirect to an invalid URL {location[:200]!r}") from exc
            logger.debug("GET %s: HTTP %d to %s", result.final_url, result.status, target)
        raise FetchError(url, f"more than {self.config.max_redirects} redirects")

    async def _retrying(self, url: str, headers: dict[str, str], address: str | None) -> FetchResult:
        """One hop with the politeness rules: rate limit, retries with back-off."""
        host = host_of(url)
        attempts = self.config.max_retries + 1
        for attempt in range(1, attempts + 1):
            await self.limiter.wait(host)
            delay: float | None = None
            try:
                result = await self._once(url, headers, address)
            except httpx.TimeoutException as exc:
                reason, status = f"timed out after {self.config.timeout_s:g} s ({type(exc).__name__})", None
            except httpx.TransportError as exc:
                reason, status = f"connection error: {exc!r}", None
            except httpx.HTTPError as exc:  # bad URL, protocol violations: not worth a retry
                raise FetchError(url, f"{type(exc).__name__}: {exc}") from exc
            else:
                result.attempts = attempt
                if result.status < 400:
                    return result
                status, reason = result.status, f"HTTP {result.status}"
                if status != 429 and status < 500:
                    raise FetchError(url, reason, status)
                if status == 429:
                    delay = _retry_after(result.headers.get("retry-after"))
            if attempt == attempts:
                raise FetchError(url, f"{reason} (gave up after {attempts} attempts)", status)
            backoff = self.config.retry_backoff_s * 2 ** (attempt - 1)
            wait = min(MAX_BACKOFF_S, delay if delay is not None else backoff * (1 + random.random() / 4))  # jitter
            logger.info("GET %s: %s; retry %d/%d in %.2f s", url, reason, attempt, attempts - 1, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _once(self, url: str, headers: dict[str, str], address: str | None) -> FetchResult:
        self.requests += 1
        if address is None:
            return await self._request(self._trusted, url, headers)
        with pinned(httpx.URL(url), address):
            return await self._request(self._checked, url, headers)

    async def _request(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> FetchResult:
        async with client.stream("GET", url, headers=headers) as response:
            content, truncated = b"", False
            if response.status_code < 300:
                content, truncated = await self._body(url, response)
            return FetchResult(
                url=url,
                final_url=str(response.url),
                status=response.status_code,
                content=content,
                headers={k.lower(): v for k, v in response.headers.items()},
                truncated=truncated,
            )

    async def _body(self, url: str, response: httpx.Response) -> tuple[bytes, bool]:
        """The decoded body, cut at ``max_page_bytes``; True when there was more."""
        cap = self.config.max_page_bytes
        decoder = BodyDecoder(url, response.headers.get("content-encoding", ""))
        body = io.BytesIO()  # its getvalue() hands over the buffer without a copy: the body is held once
        size = 0
        async for chunk in response.aiter_raw():
            for piece in decoder.feed(chunk):
                room = cap - size
                if len(piece) > room:
                    body.write(piece[:room])
                    logger.warning("GET %s: more than %d bytes decoded; cut there", url, cap)
                    return body.getvalue(), True
                size += body.write(piece)
        return body.getvalue(), False
