"""Bodies are decoded as they stream and never grow past ``max_page_bytes``: stacked gzip bombs, deflate, gzip."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib

import pytest

from finpulse.settings import ScrapeSettings
from finpulse.streams.sources.fetch import Fetcher, FetchResult
from finpulse.streams.sources.robots import RobotsCache

from .conftest import Route, Site

GIB = 1 << 30
CAP = 2 << 20


@pytest.fixture(scope="module")
def double_gzip_bomb() -> bytes:
    """1 GiB of zeros, gzip-compressed twice: a few kB on the wire."""
    once = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    inner = b"".join([once.compress(zeros) for _ in range(GIB // len(zeros))] + [once.flush()])
    return gzip.compress(inner, 9)


def fetch(config: ScrapeSettings, url: str, warm_up: str) -> tuple[FetchResult, int]:
    """The fetch result and the peak of Python memory allocated while fetching, in bytes. A first fetch of
    ``warm_up`` leaves out what any first request costs (lazy imports, the connection pool)."""

    async def main() -> tuple[FetchResult, int]:
        async with Fetcher(config) as fetcher:
            await fetcher.get(warm_up)
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                result = await fetcher.get(url)
                return result, tracemalloc.get_traced_memory()[1] - base
            finally:
                tracemalloc.stop()

    return asyncio.run(main())


@pytest.mark.slow  # compressing the GiB takes seconds
def test_stacked_gzip_bomb_is_cut_at_the_cap(site: Site, scrape_config: ScrapeSettings, double_gzip_bomb: bytes) -> None:
    assert len(double_gzip_bomb) < 16_384
    site.routes["/bomb.html"] = Route(double_gzip_bomb, headers={"Content-Encoding": "gzip, gzip"})
    site.routes["/small.html"] = Route(gzip.compress(b"<html>small</html>"), headers={"Content-Encoding": "gzip"})
    config = scrape_config.model_copy(update={"max_page_bytes": CAP})
    result, peak = fetch(config, site.url("/bomb.html"), site.url("/small.html"))
    assert peak < 2 * CAP, f"fetching the bomb allocated {peak / 2**20:.1f} MiB at peak, the cap is {CAP / 2**20:.0f} MiB"
    assert len(result.content) == CAP and result.content == bytes(CAP) and result.truncated


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as RFC 9110 says
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send it
        ("gzip, deflate", lambda data: zlib.compress(gzip.compress(data))),
        ("identity", lambda data: data),
    ],
)
def test_encoded_pages_are_decoded(site: Site, scrape_config: ScrapeSettings, encoding: str, encode: object) -> None:
    page = b"<html><body>" + b"The quick brown fox. " * 20_000 + b"</body></html>"
    site.routes["/page.html"] = Route(encode(page), headers={"Content-Encoding": encoding})  # type: ignore[operator]
    result, _ = fetch(scrape_config, site.url("/page.html"), site.url("/page.html"))
    assert result.content == page and not result.truncated


def test_per_host_state_is_bounded(site: Site, scrape_config: ScrapeSettings) -> None:
    # Links to ever new hosts must not grow the robots.txt rules or the rate limiter's pacing without end.
    config = scrape_config.model_copy(update={"max_hosts": 3})

    async def main() -> tuple[int, int]:
        async with Fetcher(config) as fetcher:
            robots = RobotsCache(fetcher)
            port = site.base.rsplit(":", 1)[1]
            for host in ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "localhost"):
                await robots.allowed(f"http://{host}:{port}/page")
            return len(robots._hosts), len(fetcher.limiter._hosts)

    assert asyncio.run(main()) == (3, 3)
