"""Polite HTTP fetching for the scraper: per-host rate limit, conditional requests, retries with back-off.

Retried: connection errors, timeouts, 5xx and 429 (honouring ``Retry-After``), with exponential back-off.
Not retried: every other 4xx. Bodies larger than ``max_bytes`` are cut there.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from finpulse.settings import ScrapeSettings
from finpulse.streams.sources.exceptions import FetchError

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class HostRateLimiter:
    """At most ``rate_per_s`` request starts per host; a host's ``Crawl-delay`` can slow it further."""

    def __init__(self, rate_per_s: float) -> None:
        self.interval = 1.0 / rate_per_s
        self._next: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._host_interval: dict[str, float] = {}

    def set_min_interval(self, host: str, seconds: float) -> None:
        """Space requests to ``host`` by at least ``seconds`` (robots.txt Crawl-delay)."""
        self._host_interval[host] = max(seconds, self.interval)

    async def wait(self, host: str) -> None:
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            loop = asyncio.get_running_loop()
            now = loop.time()
            due = self._next.get(host, now)
            if due > now:
                await asyncio.sleep(due - now)
                now = loop.time()
            self._next[host] = now + self._host_interval.get(host, self.interval)


@dataclass
class FetchResult:
    url: str
    final_url: str
    status: int
    content: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    attempts: int = 1

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
    """One ``httpx.AsyncClient`` with the scraper's politeness rules; use ``async with Fetcher(cfg) as f``."""

    def __init__(
        self,
        config: ScrapeSettings,
        *,
        limiter: HostRateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.limiter = limiter or HostRateLimiter(config.host_rate_per_s)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout_s),
            follow_redirects=True,
            max_redirects=5,
            headers={"User-Agent": config.user_agent, "Accept-Encoding": "gzip, deflate"},
            transport=transport,
        )
        self.requests = 0

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None, accept: str | None = None) -> FetchResult:
        """GET ``url``; 2xx and 304 come back, anything else raises :class:`FetchError` (after retries)."""
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        if accept:
            headers["Accept"] = accept
        host = host_of(url)
        attempts = self.config.max_retries + 1
        for attempt in range(1, attempts + 1):
            await self.limiter.wait(host)
            delay: float | None = None
            try:
                result = await self._once(url, headers)
            except httpx.TimeoutException as exc:
                reason, status = f"timed out after {self.config.timeout_s:g} s ({type(exc).__name__})", None
            except httpx.TransportError as exc:
                reason, status = f"connection error: {exc!r}", None
            except httpx.HTTPError as exc:  # too many redirects, bad URL, decoding: not worth a retry
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

    async def _once(self, url: str, headers: dict[str, str]) -> FetchResult:
        self.requests += 1
        async with self._client.stream("GET", url, headers=headers) as response:
            chunks: list[bytes] = []
            size = 0
            if response.status_code < 300:
                async for chunk in response.aiter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= self.config.max_page_bytes:
                        logger.warning("GET %s: more than %d bytes; cut there", url, self.config.max_page_bytes)
                        break
            return FetchResult(
                url=url,
                final_url=str(response.url),
                status=response.status_code,
                content=b"".join(chunks)[: self.config.max_page_bytes],
                headers={k.lower(): v for k, v in response.headers.items()},
            )
