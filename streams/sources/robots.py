"""robots.txt rules per host, fetched once and cached (RFC 9309 semantics).

A 4xx robots.txt (typically 404) allows everything; a 5xx or unreachable one disallows the whole host
until it is asked again after ``retry_s``. A ``Crawl-delay`` slows the host's rate limiter down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from urllib.robotparser import RobotFileParser

from finpulse.streams.sources.exceptions import FetchError
from finpulse.streams.sources.extract import decode_text
from finpulse.streams.sources.fetch import Fetcher, host_of

logger = logging.getLogger(__name__)


@dataclass
class _Rules:
    parser: RobotFileParser | None  # None: everything allowed
    deny_all: bool
    expires: float


class RobotsCache:
    """Answers "may we fetch this URL?" for the scraper's user agent."""

    def __init__(self, fetcher: Fetcher, *, ttl_s: float = 24 * 3600, retry_s: float = 300.0) -> None:
        self.fetcher = fetcher
        self.agent = fetcher.config.user_agent.split("/")[0].split()[0]
        self.ttl_s = ttl_s
        self.retry_s = retry_s
        self._rules: dict[str, _Rules] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def allowed(self, url: str) -> bool:
        host = host_of(url)
        async with self._locks.setdefault(host, asyncio.Lock()):
            rules = self._rules.get(host)
            if rules is None or rules.expires < time.monotonic():
                rules = await self._load(host)
                self._rules[host] = rules
        if rules.deny_all:
            return False
        if rules.parser is None:
            return True
        return rules.parser.can_fetch(self.agent, url)

    async def _load(self, host: str) -> _Rules:
        url = f"{host}/robots.txt"
        try:
            result = await self.fetcher.get(url, accept="text/plain")
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
            self.fetcher.limiter.set_min_interval(host, float(delay))
            logger.info("%s asks for a crawl delay of %s s", host, delay)
        return _Rules(parser, False, time.monotonic() + self.ttl_s)
