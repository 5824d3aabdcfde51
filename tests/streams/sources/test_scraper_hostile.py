"""The scraper against hostile feeds, on local sites: links to internal addresses (SSRF), malformed links,
redirects into robots.txt-disallowed paths, pages that drip forever, absurd Crawl-delays. Each refused page is
counted by reason, its item is still published from the feed entry, and the poll goes on."""

from __future__ import annotations

import asyncio
import time
from ipaddress import ip_network
from xml.sax.saxutils import escape

from finpulse.settings import ScrapeSettings
from finpulse.streams.sources.fetch import Fetcher
from finpulse.streams.sources.scraper import PollStats, Scraper
from finpulse.streams.sources.sink import ListSink

from .conftest import Route, Site, run_with_hosts, serve_site

RSS_TYPE = "application/rss+xml; charset=utf-8"
GOOD_TITLE = "Apple beats estimates as iPhone sales climb"


def rss(*items: tuple[str, str]) -> bytes:
    """An RSS feed of (title, link) items, each with a summary."""
    body = "".join(
        f"<item><title>{escape(title)}</title><link>{escape(link)}</link><description>Summary of {escape(title)}."
        f"</description></item>"
        for title, link in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Hostile Wire</title>{body}</channel></rss>'.encode()


async def poll(config: ScrapeSettings, sink: ListSink, urls: list[str], times: int = 1) -> list[PollStats]:
    async with Scraper(config, sink, urls) as scraper:
        return [await scraper.poll_once() for _ in range(times)]


def test_links_to_internal_addresses_are_never_fetched(site: Site, scrape_config: ScrapeSettings) -> None:
    # The feed itself is on loopback (configured by the operator: trusted). Only 127.0.0.2 stands for the public
    # internet here: news.example.com resolves to it and serves the good page and a redirect to 127.0.0.1.
    config = scrape_config.model_copy(update={"allowed_networks": [ip_network("127.0.0.2/32")]})
    with serve_site("127.0.0.1") as victim, serve_site("::1") as victim6, serve_site("127.0.0.2") as public:
        for target in (victim, victim6):
            target.routes["/latest/meta-data/"] = Route(b"<html><body><p>secret-key</p></body></html>")
        public_port = public.base.rsplit(":", 1)[1]
        victim_port = victim.base.rsplit(":", 1)[1]
        public.fixture("/news/apple-beats.html", "apple-beats.html")
        public.routes["/story"] = Route(status=302, headers={"Location": victim.url("/latest/meta-data/")})
        links = {
            "Loopback v4 story": victim.url("/latest/meta-data/"),
            "Loopback v6 story": victim6.url("/latest/meta-data/"),
            "Private network story": "http://10.0.0.5/latest/meta-data/",
            "Cloud metadata story": "http://169.254.169.254/latest/meta-data/",
            "Localhost name story": f"http://localhost:{victim_port}/latest/meta-data/",
            "Redirected story": f"http://news.example.com:{public_port}/story",
            GOOD_TITLE: f"http://news.example.com:{public_port}/news/apple-beats.html",
        }
        site.routes["/feed.rss"] = Route(rss(*links.items()), content_type=RSS_TYPE)
        sink = ListSink()
        [stats] = run_with_hosts(poll(config, sink, [site.url("/feed.rss")]), {"news.example.com": "127.0.0.2"})

        assert (victim.connections, victim6.connections) == (0, 0), "a link inside a feed reached a loopback listener"
        assert public.hits("/story") == 1 and public.hits("/news/apple-beats.html") == 1
    assert stats.unsafe_urls == 6 and stats.page_errors == 0 and stats.sent == 7
    by_title = {a.title: a for a in sink.articles}
    assert "services revenue" in by_title[GOOD_TITLE].body
    for title in set(links) - {GOOD_TITLE}:
        assert by_title[title].body == "" and by_title[title].summary == f"Summary of {title}."


def test_the_checked_address_is_the_one_connected_to(scrape_config: ScrapeSettings) -> None:
    # DNS rebinding: the first answer is allowed, any later one is loopback. One lookup per hop, checked, and the
    # connection goes to that address: the transport never resolves the name a second time.
    config = scrape_config.model_copy(update={"allowed_networks": [ip_network("127.0.0.2/32")]})
    with serve_site("127.0.0.1") as victim:
        port = int(victim.base.rsplit(":", 1)[1])
        with serve_site("127.0.0.2", port) as public:
            public.routes["/page"] = Route(b"public page")
            victim.routes["/page"] = Route(b"internal page")
            answers = iter(["127.0.0.2"])

            async def main() -> bytes:
                async with Fetcher(config) as fetcher:
                    return (await fetcher.get(f"http://rebind.example.com:{port}/page")).content

            content = run_with_hosts(main(), {"rebind.example.com": lambda: next(answers, "127.0.0.1")})
            assert content == b"public page" and victim.connections == 0 and public.hits("/page") == 1


def test_malformed_links_do_not_stop_the_poll(site: Site, scrape_config: ScrapeSettings) -> None:
    site.fixture("/news/walmart-upgrade.html", "walmart-upgrade.html")
    site.routes["/feed.rss"] = Route(
        rss(
            ("Port out of range", "http://x:99999/a"),
            ("Address out of range", "http://256.0.0.1/"),
            ("Script link", "javascript:alert(document.cookie)"),
            ("Goldman Sachs upgrades Walmart", site.url("/news/walmart-upgrade.html")),
        ),
        content_type=RSS_TYPE,
    )
    sink = ListSink()
    first, second = asyncio.run(poll(scrape_config, sink, [site.url("/feed.rss")], times=2))

    assert (first.sent, first.bad_urls, first.page_errors) == (4, 3, 0)
    by_title = {a.title: a for a in sink.articles}
    assert "grocery business" in by_title["Goldman Sachs upgrades Walmart"].body
    for title in ("Port out of range", "Address out of range", "Script link"):
        assert by_title[title].url is None and by_title[title].summary == f"Summary of {title}."
    assert (second.sent, second.duplicates) == (0, 4)  # the ids of items with bad links are stable too


def test_redirect_into_a_disallowed_path_is_not_followed(site: Site, scrape_config: ScrapeSettings) -> None:
    site.fixture("/robots.txt", "robots.txt", content_type="text/plain")  # Disallow: /private/
    site.fixture("/private/nvidia.html", "apple-beats.html")
    site.routes["/news/nvidia.html"] = Route(status=301, headers={"Location": "/private/nvidia.html"})
    site.routes["/feed.rss"] = Route(rss(("Nvidia guidance", site.url("/news/nvidia.html"))), content_type=RSS_TYPE)
    sink = ListSink()
    [stats] = asyncio.run(poll(scrape_config, sink, [site.url("/feed.rss")]))
    assert site.hits("/news/nvidia.html") == 1 and site.hits("/private/nvidia.html") == 0
    assert stats.robots_denied == 1 and stats.sent == 1 and sink.articles[0].summary == "Summary of Nvidia guidance."


def test_a_page_that_drips_is_cut_by_the_deadline(site: Site, scrape_config: ScrapeSettings) -> None:
    # One byte every 0.2 s never trips the 1 s read timeout; only a total deadline ends it.
    site.routes["/news/drip.html"] = Route(b"<html><body>" + b"x" * 200 + b"</body></html>", drip_s=0.2)
    site.fixture("/news/walmart-upgrade.html", "walmart-upgrade.html")
    site.routes["/feed.rss"] = Route(
        rss(("Dripping story", site.url("/news/drip.html")),
            ("Goldman Sachs upgrades Walmart", site.url("/news/walmart-upgrade.html"))),
        content_type=RSS_TYPE,
    )
    config = scrape_config.model_copy(update={"fetch_deadline_s": 2.0})
    sink = ListSink()
    started = time.monotonic()
    [stats] = asyncio.run(poll(config, sink, [site.url("/feed.rss")]))
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"the poll took {elapsed:.1f} s"
    assert stats.deadlines == 1 and stats.sent == 2 and stats.extracted == 1
    assert {a.title: a.body for a in sink.articles}["Dripping story"] == ""


def test_crawl_delay_is_capped(site: Site, scrape_config: ScrapeSettings) -> None:
    site.routes["/robots.txt"] = Route(b"User-agent: *\nCrawl-delay: 86400\n", content_type="text/plain")
    site.fixture("/news/walmart-upgrade.html", "walmart-upgrade.html")
    site.fixture("/news/apple-beats.html", "apple-beats.html")
    site.fixture("/feed.rss", "feed_update.rss", content_type=RSS_TYPE)
    config = scrape_config.model_copy(update={"max_crawl_delay_s": 0.5})

    async def main() -> PollStats:
        async with Scraper(config, ListSink(), [site.url("/feed.rss")]) as scraper:
            return await asyncio.wait_for(scraper.poll_once(), 30)

    started = time.monotonic()
    stats = asyncio.run(main())
    elapsed = time.monotonic() - started
    assert stats.sent == 2 and stats.extracted == 2
    assert 1.0 <= elapsed < 15  # robots.txt, the feed and two pages: three gaps of 0.5 s at least
