"""robots.txt rules per host, fetched once and cached (RFC 9309 semantics).

A 4xx robots.txt (typically 404) allows everything; a 5xx, unreachable or refused one (an address the scraper
may not reach, a fetch past its deadline) disallows the whole host until it is asked again after ``retry_s``. A
``Crawl-delay`` slows the host's rate limiter down, to ``max_crawl_delay_s`` at most. The rules of ``max_hosts``
hosts are kept, the least recently asked forgotten first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from urllib.robotparser import RobotFileParser

from finpulse.streams.sources.exceptions import FetchError
from finpulse.streams.sources.extract import decode_text
from finpulse.streams.sources.fetch import Fetcher, HostTable, host_of

logger = logging.getLogger(__name__)


@dataclass
class _Rules:
    parser: RobotFileParser | None  # None: everything allowed
    deny_all: bool
    expires: float


@dataclass
class _Host:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    rules: _Rules | None = None


class RobotsCache:
    """Answers "may we fetch this URL?" for the scraper's user agent."""

    def __init__(self, fetcher: Fetcher, *, ttl_s: float = 24 * 3600, retry_s: float = 300.0) -> None:
        self.fetcher = fetcher
        self.agent = fetcher.config.user_agent.split("/")[0].split()[0]
        self.ttl_s = ttl_s
        self.retry_s = retry_s
        self._hosts = HostTable(fetcher.config.max_hosts, _Host)

    async def allowed(self, url: str, trusted: bool = False) -> bool:
        """May ``url`` be fetched? ``trusted``: its host is a configured feed's, whose robots.txt needs no address check."""
        host = host_of(url)
        entry = self._hosts[host]
        async with entry.lock:
            rules = entry.rules
            if rules is None or rules.expires < time.monotonic():
                rules = entry.rules = await self._load(host, trusted)
        if rules.deny_all:
            return False
        if rules.parser is None:
            return True
        return rules.parser.can_fetch(self.agent, url)

    async def _load(self, host: str, trusted: bool) -> _Rules:
        url = f"{host}/robots.txt"
        try:
            result = await self.fetcher.get(url, trusted=trusted, accept="text/plain")
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                logger.debug("%s: HTTP %s, everything allowed", url, exc.status)
                return _Rules(None, False, time.monotonic() + self.ttl_s)
            logger.warning("%s unavailable (%s): not fetching from %s for %.0f s", url, exc.reason, host, self.retry_s)
            return _Rules(None, True, time.monotonic() + self.retry_s)
        parser = RobotFileParser()
        parser.parse(decode_text(result.content, result.content_type).splitlines())
        parser.modified()  # can_fetch() refuses everything until the parser was marked as loaded
        delay = parser.crawl_delay(self.agent)
        if delay:
            honoured = min(float(delay), self.fetcher.config.max_crawl_delay_s)
            self.fetcher.limiter.set_min_interval(host, honoured)
            logger.info("%s asks for a crawl delay of %s s (%g s honoured)", host, delay, honoured)
        return _Rules(parser, False, time.monotonic() + self.ttl_s)
