"""The scraper against a local site: RSS and Atom, broken feed, 404/500/slow pages, non-UTF-8 pages,
robots.txt, ETag/Last-Modified 304s and duplicates across polls and restarts."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from finpulse.contracts.ids import article_id
from finpulse.contracts.records import NewsArticle
from finpulse.settings import ScrapeSettings
from finpulse.streams.sources.scraper import PollStats, Scraper
from finpulse.streams.sources.sink import ArticleSink, ListSink
from finpulse.streams.sources.state import ScrapeState

from .conftest import Route, Site

RSS_TYPE = "application/rss+xml; charset=utf-8"
LAST_MODIFIED = "Wed, 06 Mar 2024 01:00:00 GMT"


def serve_all(site: Site, *, slow: bool = False) -> None:
    site.fixture("/robots.txt", "robots.txt", content_type="text/plain")
    site.fixture("/feeds/markets.rss", "feed.rss", content_type=RSS_TYPE, etag='"rss-v1"')
    site.fixture("/feeds/tokyo.atom", "feed.atom", content_type="application/atom+xml", last_modified=LAST_MODIFIED)
    site.fixture("/feeds/broken.xml", "feed_broken.xml", content_type="application/xml")
    site.fixture("/news/apple-beats.html", "apple-beats.html")
    site.fixture("/news/cafe-cp1252.html", "cafe-cp1252.html", content_type="text/html; charset=ISO-8859-1")
    site.fixture("/news/toyota-sjis.html", "toyota-sjis.html", content_type="text/html")
    site.fixture("/private/nvidia.html", "apple-beats.html")
    site.routes["/news/error.html"] = Route(b"boom", status=500)
    # slower than the 1 s timeout; only the first test waits for it, the others get it fast
    site.routes["/news/slow.html"] = Route(b"<html>late</html>", delay_s=3.0 if slow else 0.0)


def feeds(site: Site) -> list[str]:
    return [site.url("/feeds/markets.rss"), site.url("/feeds/tokyo.atom"), site.url("/feeds/broken.xml")]


async def poll(config: ScrapeSettings, sink: ArticleSink, urls: list[str], times: int = 1) -> list[PollStats]:
    async with Scraper(config, sink, urls) as scraper:
        return [await scraper.poll_once() for _ in range(times)]


def test_the_earlier_listed_feed_wins_a_shared_article_whatever_arrives_first(
    site: Site, scrape_config: ScrapeSettings
) -> None:
    serve_all(site)
    site.fixture("/feeds/markets.rss", "feed.rss", content_type=RSS_TYPE, delay_s=0.5)  # listed first, arrives last
    sink = ListSink()
    [stats] = asyncio.run(poll(scrape_config, sink, feeds(site)[:2]))
    apple = next(a for a in sink.articles if a.title == "Apple beats estimates as iPhone sales climb")
    assert apple.summary == "Apple reported record quarterly revenue." and stats.duplicates == 1


def test_first_poll_sends_each_article_once(site: Site, scrape_config: ScrapeSettings, caplog: pytest.LogCaptureFixture) -> None:
    serve_all(site, slow=True)
    sink = ListSink()
    with caplog.at_level(logging.WARNING, logger="finpulse.streams.sources"):
        [stats] = asyncio.run(poll(scrape_config, sink, feeds(site)))

    by_title = {a.title: a for a in sink.articles}
    assert len(sink.articles) == 7 == stats.sent
    assert stats.feeds == 3 and stats.feed_errors == 1 and stats.duplicates == 1 and stats.entries == 8
    assert any("broken.xml skipped" in r.getMessage() for r in caplog.records)

    apple = by_title["Apple beats estimates as iPhone sales climb"]
    assert apple.url == site.url("/news/apple-beats.html")  # canonical: tracking parameters dropped
    assert apple.id == article_id(site.url("/news/apple-beats.html?utm_campaign=atom"))
    assert "services revenue" in apple.body and "Copyright" not in apple.body
    assert apple.summary == "Apple reported record quarterly revenue."
    assert apple.published_at == datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
    assert apple.tickers == ["AAPL"] and apple.source == "Local Markets Wire" and apple.language == "en-us"

    cafe = by_title["Café chain profits slide in Europe"]
    assert "€12 million" in cafe.body and "crème brûlée" in cafe.body and "“difficult”" in cafe.body

    toyota = by_title["トヨタ自動車、通期見通しを上方修正 (Toyota raises outlook)"]
    assert "トヨタ自動車は六日" in toyota.body
    assert toyota.tickers == ["TM"] and toyota.source == "Tokyo Desk" and toyota.language == "ja"

    # robots.txt: the page was never asked for; the feed's summary stands in
    nvidia = by_title["Members-only analysis of Nvidia guidance"]
    assert site.hits("/private/nvidia.html") == 0 and stats.robots_denied == 1
    assert nvidia.body == "" and nvidia.tickers == ["NVDA"]

    # 404: one request, no retry; 500: retried; slow: timed out and retried; all fall back to the feed
    assert site.hits("/news/missing.html") == 1
    assert site.hits("/news/error.html") == scrape_config.max_retries + 1
    assert site.hits("/news/slow.html") == scrape_config.max_retries + 1
    assert stats.page_errors == 3
    for title, ticker in (
        ("Tesla recall story that moved", "TSLA"),
        ("Exxon Mobil output update", "XOM"),
        ("Microsoft cloud growth slows", "MSFT"),
    ):
        assert by_title[title].body == "" and by_title[title].summary and by_title[title].tickers == [ticker]
    assert site.hits("/news/apple-beats.html") == 1  # the duplicate in the Atom feed is not fetched again
    assert site.hits("/robots.txt") == 1


def test_second_poll_is_conditional_and_sends_nothing(site: Site, scrape_config: ScrapeSettings) -> None:
    serve_all(site)
    sink = ListSink()
    first, second = asyncio.run(poll(scrape_config, sink, feeds(site), times=2))
    assert first.sent == 7
    assert second.sent == 0 and second.not_modified == 2 and second.feed_errors == 1 and second.entries == 0
    rss_requests = [h for p, h in site.requests if p == "/feeds/markets.rss"]
    atom_requests = [h for p, h in site.requests if p == "/feeds/tokyo.atom"]
    assert rss_requests[1]["if-none-match"] == '"rss-v1"'
    assert atom_requests[1]["if-modified-since"] == LAST_MODIFIED
    assert all(h["user-agent"] == "finpulse-test/1.0" for _, h in site.requests)
    assert site.hits("/news/apple-beats.html") == 1


def test_restart_sends_only_new_articles(site: Site, scrape_config: ScrapeSettings) -> None:
    serve_all(site)
    asyncio.run(poll(scrape_config, ListSink(), feeds(site)))
    saved = ScrapeState.load(scrape_config.state_file)
    assert len(saved) == 7 and saved.feeds[site.url("/feeds/markets.rss")].etag == '"rss-v1"'

    # the feed changes: one new item and one already sent
    site.fixture("/feeds/markets.rss", "feed_update.rss", content_type=RSS_TYPE, etag='"rss-v2"')
    site.fixture("/news/walmart-upgrade.html", "walmart-upgrade.html")
    sink = ListSink()
    [stats] = asyncio.run(poll(scrape_config, sink, feeds(site)))
    assert [a.title for a in sink.articles] == ["Goldman Sachs upgrades Walmart"]
    assert sink.articles[0].tickers == ["GS", "WMT"] and "grocery business" in sink.articles[0].body
    assert stats.duplicates == 1 and stats.not_modified == 1
    assert site.hits("/news/apple-beats.html") == 1


def test_duplicates_without_validators_are_not_resent(site: Site, scrape_config: ScrapeSettings) -> None:
    site.fixture("/feed.rss", "feed_update.rss", content_type=RSS_TYPE)  # no ETag, no Last-Modified
    config = scrape_config.model_copy(update={"fetch_articles": False})
    sink = ListSink()
    first, second = asyncio.run(poll(config, sink, [site.url("/feed.rss")], times=2))
    assert (first.sent, second.sent, second.duplicates) == (2, 0, 2)
    assert site.hits("/feed.rss") == 2 and site.hits("/news/walmart-upgrade.html") == 0
    assert sink.articles[0].summary == "Walmart raised to buy at Goldman Sachs."


class FlakySink:
    """Refuses the first article it is given, like a Kafka outage would."""

    def __init__(self) -> None:
        self.articles: list[str] = []
        self.refused = 0

    async def send(self, article: NewsArticle) -> None:
        from finpulse.streams.sources.exceptions import ProducerError

        if not self.refused:
            self.refused += 1
            raise ProducerError("broker down")
        self.articles.append(article.title)


def test_failed_send_is_retried_next_poll(site: Site, scrape_config: ScrapeSettings) -> None:
    site.fixture("/feed.rss", "feed_update.rss", content_type=RSS_TYPE, etag='"v1"')
    config = scrape_config.model_copy(update={"fetch_articles": False, "concurrency": 1})
    sink = FlakySink()
    first, second = asyncio.run(poll(config, sink, [site.url("/feed.rss")], times=2))
    assert (first.sent, first.send_errors) == (1, 1)
    # the feed's ETag was not kept, so the second poll reads the feed again and sends the missed article
    assert (second.sent, second.duplicates, second.not_modified) == (1, 1, 0)
    assert sorted(sink.articles) == sorted(["Goldman Sachs upgrades Walmart", "Apple beats estimates as iPhone sales climb"])


def test_feed_disallowed_and_robots_unavailable(site: Site, scrape_config: ScrapeSettings) -> None:
    site.routes["/robots.txt"] = Route(b"oops", status=503, content_type="text/plain")
    site.fixture("/feed.rss", "feed_update.rss", content_type=RSS_TYPE)
    [stats] = asyncio.run(poll(scrape_config, ListSink(), [site.url("/feed.rss")]))
    assert stats.robots_denied == 1 and stats.sent == 0 and site.hits("/feed.rss") == 0


@pytest.mark.parametrize("interval", [60.0])
def test_run_once_and_stop(site: Site, scrape_config: ScrapeSettings, interval: float) -> None:
    site.fixture("/feed.rss", "feed_update.rss", content_type=RSS_TYPE)
    config = scrape_config.model_copy(update={"fetch_articles": False, "poll_interval_s": interval})

    async def main() -> tuple[PollStats, PollStats]:
        async with Scraper(config, ListSink(), [site.url("/feed.rss")]) as scraper:
            once = await scraper.run(once=True)
            stop = asyncio.Event()
            task = asyncio.create_task(scraper.run(stop=stop))
            await asyncio.sleep(0.3)
            stop.set()
            return once, await asyncio.wait_for(task, 5)

    once, stopped = asyncio.run(main())
    assert once.sent == 2 and stopped.feeds == 1 and stopped.duplicates == 2
