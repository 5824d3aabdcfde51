"""Drives the clicks API with simulated users (``finpulse simulate clicks``), and reads real articles to choose from."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from finpulse.models.exceptions import ArticleSourceError
from finpulse.models.simulate import ClickSimulator, SimArticle, article_from_scored, live_pages, page_events
from finpulse.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class SendStats:
    pages: int = 0
    events: int = 0
    clicks: int = 0
    rejected: int = 0
    elapsed_s: float = 0.0


def articles_from_topic(settings: Settings, limit: int, idle_s: float = 3.0) -> list[SimArticle]:
    """Scored articles read from the start of ``news.scored`` until it is idle for ``idle_s`` (or ``limit``)."""
    from kafka import KafkaConsumer

    from finpulse.contracts.codecs import Ok, decode
    from finpulse.contracts.records import ScoredArticle
    from finpulse.contracts.topics import NEWS_SCORED, topic_name

    topic = topic_name(settings.kafka, NEWS_SCORED)
    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka.broker_list(), auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None)
    found: dict[str, SimArticle] = {}
    last = time.monotonic()
    try:
        while len(found) < limit and time.monotonic() - last < idle_s:
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    last = time.monotonic()
                    result = decode(record.value, ScoredArticle, 64 * 1024 * 1024)
                    if isinstance(result, Ok):
                        found[result.value.id] = article_from_scored(result.value)
    finally:
        consumer.close()
    if not found:
        raise ArticleSourceError(f"no scored articles on {topic}: run the worker and replay or scrape news first")
    return list(found.values())[-limit:]


def articles_from_index(settings: Settings, limit: int) -> list[SimArticle]:
    """The most recent scored articles of the ``<prefix>-news`` alias."""
    from elasticsearch import ApiError

    from finpulse.contracts.records import ScoredArticle
    from finpulse.streams.sinks.elasticsearch import make_es_client
    from finpulse.streams.sinks.templates import news_alias

    client = make_es_client(settings.elasticsearch)
    try:
        response = client.search(index=news_alias(settings.elasticsearch.index_prefix), size=min(limit, 10_000),
                                 sort=[{"published_at": {"order": "desc"}}], source_excludes=["embedding", "body"])
    except ApiError as exc:
        raise ArticleSourceError(f"cannot read the news index: {exc}") from exc
    finally:
        client.close()
    articles = []
    for hit in response["hits"]["hits"]:
        source: dict[str, Any] = dict(hit["_source"])
        source.pop("embedding", None)
        articles.append(article_from_scored(ScoredArticle.model_validate({**source, "body": ""})))
    if not articles:
        raise ArticleSourceError("the news index has no articles yet")
    return articles


async def send_live(
    simulator: ClickSimulator, api_url: str, token: str, rate: float, duration_s: float, concurrency: int = 8
) -> SendStats:
    """POST one batch per simulated page at ``rate`` pages/s for ``duration_s`` seconds."""
    import httpx

    stats = SendStats()
    pages = live_pages(simulator, time.time())
    started = time.monotonic()
    queue: asyncio.Queue[list[dict[str, object]] | None] = asyncio.Queue(maxsize=concurrency * 4)

    async def sender(client: httpx.AsyncClient) -> None:
        while (batch := await queue.get()) is not None:
            for attempt in range(5):
                response = await client.post("/v1/events", json={"events": batch})
                if response.status_code == 202:
                    break
                if response.status_code in (429, 503):
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")) * (attempt + 1))
                    continue
                stats.rejected += len(batch)
                logger.warning("API refused a batch (%d): %s", response.status_code, response.text[:300])
                break

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30.0) as client:
        workers = [asyncio.create_task(sender(client)) for _ in range(concurrency)]
        while time.monotonic() - started < duration_s:
            page = next(pages)
            page = type(page)(page.user, page.session_id, page.time.fromtimestamp(time.time(), page.time.tzinfo), page.shown)
            events = page_events(page)
            stats.pages += 1
            stats.events += len(events)
            stats.clicks += sum(1 for e in events if e["event_type"] == "click")
            await queue.put(events)
            delay = started + stats.pages / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    stats.elapsed_s = time.monotonic() - started
    return stats
