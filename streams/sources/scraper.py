"""The news scraper: polls RSS/Atom feeds, fetches and extracts new articles, sends them to a sink.

Per poll, every feed is fetched (conditionally: ETag / Last-Modified, so an unchanged feed costs one
304), parsed, and each entry whose article id (sha256 of the canonical URL) was not sent before has its
page fetched (robots.txt permitting) and its main text extracted; when the page cannot be fetched or holds
no article, the feed's own title and summary are sent. Links found in feeds are untrusted: a malformed link, one
to an address the scraper may not reach, a redirect into a disallowed path, a page past its deadline or over the
size cap is refused, counted by reason, and its item sent from the feed entry. Broken feeds and failing pages
are logged and counted, the other feeds go on. An article id is remembered, and a feed's validators kept, only
once Kafka acknowledged its articles; both survive restarts in the state file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass, fields
from urllib.parse import urlsplit

from pydantic import ValidationError

from finpulse.contracts.ids import article_id, canonical_url
from finpulse.contracts.records import NewsArticle
from finpulse.settings import ScrapeSettings, Settings
from finpulse.streams.sources.exceptions import (
    BadLinkError,
    FetchDeadlineError,
    FetchError,
    FetchRefusedError,
    ProducerError,
    RobotsDeniedError,
    UnsafeAddressError,
)
from finpulse.streams.sources.extract import Extracted, decode_text, extract_article
from finpulse.streams.sources.feeds import FeedEntry, FeedParseError, ParsedFeed, parse_feed
from finpulse.streams.sources.fetch import Fetcher, FetchResult
from finpulse.streams.sources.guard import checked_url
from finpulse.streams.sources.robots import RobotsCache
from finpulse.streams.sources.sink import ArticleSink, KafkaArticleSink
from finpulse.streams.sources.state import FeedValidators, ScrapeState
from finpulse.tagging.tickers import TickerTagger, default_tagger

logger = logging.getLogger(__name__)

FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
TITLE_MAX, SUMMARY_MAX, BODY_MAX = 2048, 20_000, 500_000


@dataclass
class PollStats:
    """Counts of one poll (or, added up, of a whole run)."""

    feeds: int = 0
    not_modified: int = 0
    feed_errors: int = 0
    entries: int = 0
    duplicates: int = 0
    pages_fetched: int = 0
    extracted: int = 0
    page_errors: int = 0
    robots_denied: int = 0  # feeds, pages and redirect targets that robots.txt disallowed
    bad_urls: int = 0  # links that are not fetchable http(s) URLs
    unsafe_urls: int = 0  # links, redirects or robots.txt on addresses the scraper may not reach
    deadlines: int = 0  # fetches given up at their total deadline
    pages_too_large: int = 0  # pages over max_page_bytes once decoded
    invalid: int = 0
    send_errors: int = 0
    sent: int = 0

    def add(self, other: PollStats) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))

    def refused(self, error: FetchRefusedError) -> None:
        """Count a refused fetch under its reason."""
        name = _REFUSALS[type(error)]
        setattr(self, name, getattr(self, name) + 1)


_REFUSALS = {
    RobotsDeniedError: "robots_denied",
    BadLinkError: "bad_urls",
    UnsafeAddressError: "unsafe_urls",
    FetchDeadlineError: "deadlines",
}


def _language(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().lower()
    return value if 2 <= len(value) <= 16 else None


class Scraper:
    """Polls ``feeds`` and sends new articles to ``sink``. Use ``async with Scraper(...) as scraper``."""

    def __init__(
        self,
        config: ScrapeSettings,
        sink: ArticleSink,
        feeds: Sequence[str],
        *,
        state: ScrapeState | None = None,
        fetcher: Fetcher | None = None,
        tagger: TickerTagger | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self.feeds = list(dict.fromkeys(feeds))
        self.state = state if state is not None else ScrapeState.load(config.state_file, config.max_seen)
        self.fetcher = fetcher or Fetcher(config)
        self.robots = RobotsCache(self.fetcher)
        self.tagger = tagger or default_tagger()
        self._pages = asyncio.Semaphore(config.concurrency)

    async def __aenter__(self) -> Scraper:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.fetcher.aclose()

    async def poll_once(self) -> PollStats:
        """Poll every feed once; the state is saved at the end (also when cancelled)."""
        stats = PollStats()
        in_flight: set[str] = set()
        try:
            fetched = await asyncio.gather(*(self._fetch_feed(url, stats) for url in self.feeds))
            feeds = [item for item in fetched if item is not None]
            # One gather over the entries of every feed, in the configured feed order: each entry claims its article
            # id before its first await, so when two feeds carry the same article the earlier-listed feed's version
            # is kept, whatever order the feeds arrived in.
            jobs = [(url, feed, entry) for url, _, feed in feeds for entry in feed.entries]
            outcomes = await asyncio.gather(*(self._entry(feed, entry, stats, in_flight) for _, feed, entry in jobs))
            failed = {url for (url, _, _), ok in zip(jobs, outcomes, strict=True) if not ok}
            for url, result, _ in feeds:
                if url not in failed:  # a failed send must not be hidden behind a 304 next time
                    self.state.feeds[url] = FeedValidators(result.etag, result.last_modified)
        finally:
            self.state.save()
        logger.info(
            "poll: %d feeds (%d unchanged, %d failed), %d entries, %d new sent (%d send errors), %d duplicates, "
            "%d page errors; refused: %d robots, %d bad, %d unsafe, %d past deadline, %d too large",
            stats.feeds,
            stats.not_modified,
            stats.feed_errors,
            stats.entries,
            stats.sent,
            stats.send_errors,
            stats.duplicates,
            stats.page_errors,
            stats.robots_denied,
            stats.bad_urls,
            stats.unsafe_urls,
            stats.deadlines,
            stats.pages_too_large,
        )
        return stats

    async def run(self, *, once: bool = False, stop: asyncio.Event | None = None) -> PollStats:
        """Poll every ``poll_interval_s`` until ``stop`` is set (or once); returns the added-up counts."""
        totals = PollStats()
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            totals.add(await self.poll_once())
            if once:
                break
            remaining = self.config.poll_interval_s - (loop.time() - started)
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), remaining)
        return totals

    async def _fetch_feed(self, url: str, stats: PollStats) -> tuple[str, FetchResult, ParsedFeed] | None:
        """The feed at ``url``, parsed; None when it is disallowed, unchanged or failed (counted in ``stats``)."""
        stats.feeds += 1
        validators = self.state.feeds.get(url, FeedValidators())
        result = await self._get(
            url, stats, feed=True, etag=validators.etag, last_modified=validators.last_modified, accept=FEED_ACCEPT
        )
        if result is None:
            return None
        if result.not_modified:
            stats.not_modified += 1
            logger.debug("feed %s not modified", url)
            return None
        try:
            feed = parse_feed(result.content, url, result.headers)
        except FeedParseError as exc:
            stats.feed_errors += 1
            logger.error("feed %s skipped: %s", url, exc)
            return None
        stats.entries += len(feed.entries)
        return url, result, feed

    async def _entry(self, feed: ParsedFeed, entry: FeedEntry, stats: PollStats, in_flight: set[str]) -> bool:
        """Handle one feed entry; False when it should be tried again on the next poll."""
        link = _fetchable(entry.link, stats)
        url = canonical_url(link) if link else None
        source = (feed.title or urlsplit(feed.url).hostname or "rss")[:256]
        ident = article_id(url, source, entry.title)
        if ident in self.state or ident in in_flight:
            stats.duplicates += 1
            return True
        in_flight.add(ident)
        try:
            async with self._pages:
                article = await self._article(feed, entry, ident, link, url, source, stats)
            if article is None:
                return True
            try:
                await self.sink.send(article)
            except ProducerError as exc:
                stats.send_errors += 1
                logger.error("article %s not sent: %s", ident, exc)
                return False
            self.state.add(ident)
            stats.sent += 1
            return True
        finally:
            in_flight.discard(ident)

    async def _article(
        self, feed: ParsedFeed, entry: FeedEntry, ident: str, link: str | None, url: str | None, source: str,
        stats: PollStats,
    ) -> NewsArticle | None:
        title, summary, body = entry.title, entry.summary, ""
        published, language = entry.published_at, _language(feed.language)
        extracted = await self._page(link, stats) if self.config.fetch_articles and link else None
        if extracted is not None:
            body = extracted.body
            title = title or extracted.title or ""
            summary = summary or extracted.description or ""
            published = published or extracted.published_at
            language = language or _language(extracted.language)
        title = " ".join(title.split())
        if not title:
            stats.invalid += 1
            logger.warning("entry %s of %s has no title; skipped", entry.link, feed.url)
            return None
        try:
            return NewsArticle(
                id=ident,
                url=url,
                source=source,
                title=title[:TITLE_MAX],
                summary=summary[:SUMMARY_MAX],
                body=body[:BODY_MAX],
                published_at=published,
                tickers=self.tagger.tag(title, summary),
                language=language or "en",
            )
        except ValidationError as exc:
            stats.invalid += 1
            logger.warning("entry %s of %s is not a valid article: %s", entry.link, feed.url, exc)
            return None

    async def _get(self, url: str, stats: PollStats, *, feed: bool, **options: str | None) -> FetchResult | None:
        """A feed (trusted: configured) or a page, robots.txt permitting; None when the fetch was refused (counted by
        reason) or failed (counted as a feed or page error)."""
        what, then = ("feed", "skipped this poll") if feed else ("page", "feed summary used")
        try:
            return await self.fetcher.get(url, trusted=feed, permit=self.robots.allowed, **options)
        except FetchRefusedError as exc:
            stats.refused(exc)
            logger.log(logging.WARNING if feed else logging.INFO, "%s %s refused: %s; %s", what, url, exc.reason, then)
        except FetchError as exc:
            if feed:
                stats.feed_errors += 1
            else:
                stats.page_errors += 1
            logger.warning("%s %s: %s; %s", what, url, exc.reason, then)
        return None

    async def _page(self, link: str, stats: PollStats) -> Extracted | None:
        """The article found at ``link``; None when the page is refused, fails or holds none (counted, logged)."""
        page = await self._get(link, stats, feed=False, accept=PAGE_ACCEPT)
        if page is None:
            return None
        if page.truncated:
            stats.pages_too_large += 1
            logger.warning("page %s is over %d bytes; feed summary used", link, self.config.max_page_bytes)
            return None
        stats.pages_fetched += 1
        html = decode_text(page.content, page.content_type)
        extracted = await asyncio.to_thread(extract_article, html, page.final_url)
        if extracted is None:
            logger.info("no article text found in %s; feed summary used", link)
            return None
        stats.extracted += 1
        return extracted


def _fetchable(link: str | None, stats: PollStats) -> str | None:
    """``link`` when it is an http(s) URL the scraper could fetch; None (counted) when it is malformed."""
    if not link:
        return None
    try:
        checked_url(link)
    except BadLinkError as exc:
        stats.refused(exc)
        logger.info("link %r: %s; the item keeps no URL", link[:200], exc.reason)
        return None
    return link


async def run_scraper(settings: Settings, feeds: Sequence[str], *, once: bool = False) -> PollStats:
    """Scrape ``feeds`` into ``news.raw`` (or once).

    The first SIGTERM/SIGINT stops after the running poll (state saved, records flushed); a second one
    cancels the poll at once.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and main is not None:
            logger.warning("second stop signal: cancelling the running poll")
            main.cancel()
        else:
            logger.info("stop signal: finishing the running poll")
        stop.set()

    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, on_signal)
            installed.append(signum)
    try:
        async with KafkaArticleSink(settings.kafka) as sink, Scraper(settings.scrape, sink, feeds) as scraper:
            totals = await scraper.run(once=once, stop=stop)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    logger.info("scraper stopped: %d sent, %d delivery failures", sink.sent, sink.failed)
    return totals
