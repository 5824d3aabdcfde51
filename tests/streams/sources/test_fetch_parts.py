"""Pieces of the scraper: fetching with retries and rate limits, robots.txt, decoding, feeds, state."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest

from finpulse.settings import ScrapeSettings
from finpulse.streams.sources.exceptions import FeedListError, FetchError
from finpulse.streams.sources.extract import charset_of, decode_text, extract_article, strip_html
from finpulse.streams.sources.feeds import FeedParseError, load_feed_list, parse_feed
from finpulse.streams.sources.fetch import Fetcher, HostRateLimiter
from finpulse.streams.sources.robots import RobotsCache
from finpulse.streams.sources.state import ScrapeState

from .conftest import FIXTURES, Route, Site


async def get(config: ScrapeSettings, url: str, **kwargs: str) -> tuple[int, int]:
    async with Fetcher(config) as fetcher:
        result = await fetcher.get(url, **kwargs)
        return result.status, result.attempts


def test_retries_on_5xx_and_429_not_on_4xx(site: Site, scrape_config: ScrapeSettings) -> None:
    site.routes["/flaky"] = Route(b"ok", fail_times=2)
    assert asyncio.run(get(scrape_config, site.url("/flaky"))) == (200, 3)

    site.routes["/limited"] = Route(b"slow down", status=429, headers={"Retry-After": "0"})
    with pytest.raises(FetchError) as caught:
        asyncio.run(get(scrape_config, site.url("/limited")))
    assert caught.value.status == 429 and site.hits("/limited") == scrape_config.max_retries + 1

    site.routes["/gone"] = Route(b"gone", status=410)
    with pytest.raises(FetchError, match="HTTP 410") as caught:
        asyncio.run(get(scrape_config, site.url("/gone")))
    assert caught.value.status == 410 and site.hits("/gone") == 1

    site.routes["/down"] = Route(b"", status=502)
    with pytest.raises(FetchError, match="gave up after 3 attempts"):
        asyncio.run(get(scrape_config, site.url("/down")))


def test_connection_errors_and_timeouts_are_retried(site: Site, scrape_config: ScrapeSettings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(FetchError, match="connection error") as caught:
        asyncio.run(get(scrape_config, f"http://127.0.0.1:{closed_port}/x"))
    assert caught.value.status is None

    site.routes["/slow"] = Route(b"late", delay_s=1.0)
    config = scrape_config.model_copy(update={"timeout_s": 0.2, "max_retries": 1})
    with pytest.raises(FetchError, match="timed out"):
        asyncio.run(get(config, site.url("/slow")))
    assert site.hits("/slow") == 2


def test_conditional_get_and_body_limit(site: Site, scrape_config: ScrapeSettings) -> None:
    site.routes["/feed"] = Route(b"x" * 5000, etag='"e1"', last_modified="Tue, 05 Mar 2024 10:00:00 GMT")

    async def main() -> tuple[int, int, int, bytes]:
        config = scrape_config.model_copy(update={"max_page_bytes": 1024})
        async with Fetcher(config) as fetcher:
            first = await fetcher.get(site.url("/feed"))
            second = await fetcher.get(site.url("/feed"), etag=first.etag)
            third = await fetcher.get(site.url("/feed"), last_modified=first.last_modified)
            return first.status, second.status, third.status, first.content

    assert asyncio.run(main()) == (200, 304, 304, b"x" * 1024)


def test_rate_limit_per_host() -> None:
    async def main() -> tuple[float, float]:
        limiter = HostRateLimiter(rate_per_s=20.0)
        started = time.monotonic()
        for _ in range(5):
            await limiter.wait("http://a")
        same_host = time.monotonic() - started
        started = time.monotonic()
        await asyncio.gather(*(limiter.wait(f"http://h{i}") for i in range(5)))
        return same_host, time.monotonic() - started

    same_host, other_hosts = asyncio.run(main())
    assert same_host >= 0.19  # 4 gaps of 50 ms
    assert other_hosts < 0.15


def test_robots_rules(site: Site, scrape_config: ScrapeSettings) -> None:
    site.routes["/robots.txt"] = Route(
        b"User-agent: finpulse-test\nDisallow: /secret\nCrawl-delay: 2\n\nUser-agent: *\nDisallow: /\n",
        content_type="text/plain",
    )

    async def main() -> tuple[bool, bool, float]:
        async with Fetcher(scrape_config) as fetcher:
            robots = RobotsCache(fetcher)
            allowed = await robots.allowed(site.url("/news/a.html"))
            denied = await robots.allowed(site.url("/secret/b.html"))
            return allowed, denied, fetcher.limiter.min_interval(site.base)

    assert asyncio.run(main()) == (True, False, 2.0)
    assert site.hits("/robots.txt") == 1


def test_robots_missing_allows_everything(site: Site, scrape_config: ScrapeSettings) -> None:
    async def main() -> bool:
        async with Fetcher(scrape_config) as fetcher:
            return await RobotsCache(fetcher).allowed(site.url("/anything"))

    assert asyncio.run(main()) is True


@pytest.mark.parametrize(
    ("content", "content_type", "expected"),
    [
        ("Café €5".encode("cp1252"), "text/html; charset=ISO-8859-1", "Café €5"),
        ("Café".encode("cp1252"), "text/html; charset=windows-1252", "Café"),
        ('<meta charset="shift_jis">株式'.encode("shift_jis"), "text/html", '<meta charset="shift_jis">株式'),
        (
            "<?xml version='1.0' encoding='iso-8859-15'?><a>€</a>".encode("iso-8859-15"),
            "",
            "<?xml version='1.0' encoding='iso-8859-15'?><a>€</a>",
        ),
        ("naïve".encode(), "text/html", "naïve"),
        ("\ufeffBOM".encode(), "text/html; charset=latin-1", "BOM"),
        ("株式会社トヨタ自動車の決算発表は好調でした".encode("shift_jis"), "", "株式会社トヨタ自動車の決算発表は好調でした"),
        (
            "Prix: 5 € pour un café crème, très bon, à Zürich.".encode("cp1252"),
            "text/html; charset=no-such-codec",
            "Prix: 5 € pour un café crème, très bon, à Zürich.",
        ),
    ],
)
def test_decode_text(content: bytes, content_type: str, expected: str) -> None:
    assert decode_text(content, content_type) == expected


def test_charset_and_strip_html() -> None:
    assert charset_of('text/html; Charset="UTF-8"') == "UTF-8"
    assert charset_of("text/html") is None
    assert strip_html("<p>Apple &amp; <b>Google</b></p><script>var x;</script><p>rise</p>") == "Apple & Google rise"
    assert strip_html("plain &lt;text&gt;") == "plain <text>"


def test_extract_article_and_no_article() -> None:
    html = (FIXTURES / "apple-beats.html").read_text(encoding="utf-8")
    extracted = extract_article(html, "http://example.com/a")
    assert extracted is not None
    assert extracted.title == "Apple beats estimates as iPhone sales climb"
    assert "double-digit pace" in extracted.body and "Home" not in extracted.body
    assert extracted.published_at is not None and extracted.published_at.year == 2024
    assert extract_article("<html><body></body></html>") is None


def test_parse_feeds() -> None:
    rss = parse_feed((FIXTURES / "feed.rss").read_bytes().replace(b"{base}", b"http://x"), "http://x/rss")
    assert rss.title == "Local Markets Wire" and len(rss.entries) == 6
    assert rss.entries[0].summary == "Apple reported record quarterly revenue."
    atom = parse_feed((FIXTURES / "feed.atom").read_bytes().replace(b"{base}", b"http://x"), "http://x/atom")
    assert atom.language == "ja" and atom.entries[0].link == "http://x/news/toyota-sjis.html"
    with pytest.raises(FeedParseError):
        parse_feed((FIXTURES / "feed_broken.xml").read_bytes(), "http://x/broken")
    with pytest.raises(FeedParseError):
        parse_feed(b"<html><body>not a feed</body></html>", "http://x/html")


def test_feed_list(tmp_path: Path) -> None:
    path = tmp_path / "feeds.txt"
    path.write_text("# markets\nhttps://a.example/rss\n\nhttps://b.example/atom  # tech\nhttps://a.example/rss\n")
    assert load_feed_list(path) == ["https://a.example/rss", "https://b.example/atom"]
    path.write_text("ftp://nope\n")
    with pytest.raises(FeedListError, match="not an http"):
        load_feed_list(path)
    with pytest.raises(FeedListError, match="cannot read"):
        load_feed_list(tmp_path / "missing.txt")


def test_state_is_bounded_persisted_and_tolerant(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    state = ScrapeState(path, max_seen=3)
    for ident in ("a", "b", "c", "d"):
        state.add(ident)
    state.add("b")  # seen again: becomes the newest
    state.add("e")
    assert "a" not in state and "c" not in state and all(i in state for i in ("b", "d", "e"))
    state.save()
    loaded = ScrapeState.load(path, max_seen=3)
    assert [i for i in ("b", "d", "e") if i in loaded] == ["b", "d", "e"] and len(loaded) == 3
    assert json.loads(path.read_text())["version"] == 1
    path.write_text("{not json")
    assert len(ScrapeState.load(path)) == 0
    assert len(ScrapeState.load(None)) == 0
