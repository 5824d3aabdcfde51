"""The scraper producing to the real embedded Kafka (Tansu), read back with kafka-python."""

from __future__ import annotations

import asyncio

import pytest

from finpulse.contracts.records import NewsArticle
from finpulse.contracts.topics import NEWS_RAW, TOPICS, topic_name
from finpulse.infra.topics_admin import create_topics
from finpulse.settings import ScrapeSettings
from finpulse.streams.sources.scraper import run_scraper

from .conftest import Site
from .test_replay_kafka import _consume

pytestmark = pytest.mark.integration


def test_scrape_once_to_kafka(stack, unique_name: str, site: Site, scrape_config: ScrapeSettings) -> None:
    site.fixture("/robots.txt", "robots.txt", content_type="text/plain")
    site.fixture("/feed.rss", "feed_update.rss", content_type="application/rss+xml", etag='"v1"')
    site.fixture("/news/walmart-upgrade.html", "walmart-upgrade.html")
    site.fixture("/news/apple-beats.html", "apple-beats.html")
    settings = stack.settings.model_copy(
        update={
            "kafka": stack.settings.kafka.model_copy(update={"topic_prefix": f"{unique_name}."}),
            "scrape": scrape_config,
        }
    )
    create_topics(settings, tuple(spec for spec in TOPICS if spec.name == NEWS_RAW))

    first = asyncio.run(run_scraper(settings, [site.url("/feed.rss")], once=True))
    again = asyncio.run(run_scraper(settings, [site.url("/feed.rss")], once=True))
    assert (first.sent, first.extracted, again.sent, again.not_modified) == (2, 2, 0, 1)

    got = _consume(settings, topic_name(settings.kafka, NEWS_RAW), 2)
    articles = [NewsArticle.model_validate_json(value) for _, value in got]
    assert len(articles) == 2
    assert [key.decode() for key, _ in got] == [a.id for a in articles]
    assert {a.title for a in articles} == {"Goldman Sachs upgrades Walmart", "Apple beats estimates as iPhone sales climb"}
    assert all(a.body for a in articles)
