"""The scraper while Kafka is down for a whole poll: nothing it read in that poll is lost once the broker is back.

The broker is a Tansu of its own (the embedded stack's binary, memory storage) that advertises a fault-injecting
proxy as its address, so that every connection of the scraper's producer, not only the bootstrap one, goes through
the proxy and can be cut.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from finpulse.contracts.records import NewsArticle
from finpulse.contracts.topics import NEWS_RAW, TOPICS, topic_name
from finpulse.infra.stack.kafka import metadata_brokers, tansu_binary
from finpulse.infra.stack.process import free_port
from finpulse.infra.topics_admin import create_topics
from finpulse.settings import KafkaSettings, ScrapeSettings, Settings
from finpulse.streams.sources.scraper import PollStats, Scraper
from finpulse.streams.sources.sink import KafkaArticleSink
from tests.conftest import TEST_KAFKA
from tests.faults.proxy import FaultProxy

from .conftest import Route, Site
from .test_replay_kafka import _consume

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

REQUEST_TIMEOUT_S = 3.0


@contextmanager
def broker_behind_proxy(log_dir: Path) -> Iterator[tuple[str, FaultProxy]]:
    """A Tansu broker listening on one port and advertising a proxy on another; yields (bootstrap, proxy)."""
    real, public = free_port(), free_port()
    command = [str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{real}",
               "--advertised-listener-url", f"tcp://127.0.0.1:{public}", "--storage-engine", "memory://tansu/"]
    with (log_dir / "tansu.log").open("wb") as log:
        broker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"})
    proxy = FaultProxy("127.0.0.1", real, port=public)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                metadata_brokers("127.0.0.1", real)
                break
            except OSError:
                if time.monotonic() > deadline or broker.poll() is not None:
                    raise
                time.sleep(0.1)
        proxy.start()
        yield f"127.0.0.1:{public}", proxy
    finally:
        proxy.stop()
        broker.terminate()
        broker.wait(10)


def feed(*names: str) -> bytes:
    items = "".join(f"<item><title>Outage story {n}</title><link>https://wire.example/{n}</link>"
                    f"<description>Story {n}.</description></item>" for n in names)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Outage Wire</title>{items}</channel></rss>'.encode()


def test_articles_of_a_poll_without_broker_arrive_once_it_is_back(
    site: Site, scrape_config: ScrapeSettings, unique_name: str, tmp_path: Path
) -> None:
    config = scrape_config.model_copy(update={"fetch_articles": False})
    site.routes["/feed.rss"] = Route(feed("a", "b"), content_type="application/rss+xml", etag='"v1"')
    with broker_behind_proxy(tmp_path) as (bootstrap, proxy):
        kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"{unique_name}.",
                              **{**TEST_KAFKA, "request_timeout_s": REQUEST_TIMEOUT_S})
        settings = Settings(kafka=kafka, scrape=config)
        create_topics(settings, tuple(spec for spec in TOPICS if spec.name == NEWS_RAW))

        async def main() -> tuple[PollStats, PollStats, PollStats]:
            async with KafkaArticleSink(kafka) as sink, Scraper(config, sink, [site.url("/feed.rss")]) as scraper:
                before = await scraper.poll_once()
                await sink.flush()  # the first poll is in Kafka before the cut
                site.routes["/feed.rss"] = Route(feed("a", "b", "c", "d", "e"), content_type="application/rss+xml",
                                                 etag='"v2"')
                proxy.set_mode("refuse")
                cut = await scraper.poll_once()
                await asyncio.sleep(REQUEST_TIMEOUT_S + 2)  # down until every record of that poll has timed out
                proxy.set_mode("pass")
                back = await scraper.poll_once()
            return before, cut, back

        before, cut, back = asyncio.run(main())
        got = _consume(settings, topic_name(kafka, NEWS_RAW), 5)

    titles = sorted({NewsArticle.model_validate_json(value).title for _, value in got})
    assert titles == [f"Outage story {n}" for n in "abcde"], f"after the outage the topic holds {titles}"
    assert (before.sent, cut.sent, cut.send_errors) == (2, 0, 3)
    assert (back.sent, back.duplicates, back.not_modified) == (3, 2, 0)
