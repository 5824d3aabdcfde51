"""osmem through the client factory: the news template, aliases, bulk, refresh, date_histogram."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from finpulse.contracts.records import ScoredArticle
from finpulse.streams.sinks.elasticsearch import make_async_es_client
from finpulse.streams.sinks.templates import install_templates, news_alias

pytestmark = pytest.mark.integration


def _article(i: int, when: datetime) -> ScoredArticle:
    negative = 0.9 if i % 3 == 0 else 0.1
    return ScoredArticle(
        id=f"{i:016x}", url=f"https://news.example/{i}", source="test", title=f"Shares of ACME falling sharply {i}",
        summary="Investors worry", published_at=when, tickers=["ACME"], label="negative" if negative > 0.5 else "neutral",
        probabilities={"negative": negative, "neutral": 1 - negative, "positive": 0.0}, negative_score=negative,
        model_version="test-1", embedding=[0.1, 0.2, 0.3],
    )


def test_template_bulk_and_date_histogram(stack, es_client, unique_name: str) -> None:
    settings = stack.settings.elasticsearch.model_copy(update={"index_prefix": unique_name})
    assert f"{unique_name}-news" in install_templates(es_client, settings)
    index = f"{unique_name}-news-2026.11"
    start = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    articles = [_article(i, start + timedelta(minutes=20 * i)) for i in range(9)]  # 3 hours, 3 per hour
    operations: list[dict] = []
    for a in articles:
        operations += [{"index": {"_index": index, "_id": a.id}}, a.model_dump(mode="json")]
    result = es_client.bulk(operations=operations, refresh=True)
    assert not result["errors"], result

    mapping = es_client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert mapping["title"]["analyzer"] == "english"
    assert mapping["published_at"]["type"] == "date"
    assert mapping["embedding"] == {"type": "object", "enabled": False}
    assert es_client.get(index=index, id=articles[0].id)["_source"]["embedding"] == [0.1, 0.2, 0.3]
    assert mapping["probabilities"]["properties"]["negative"]["type"] == "float"
    assert es_client.indices.get_alias(name=news_alias(unique_name)) == {index: {"aliases": {news_alias(unique_name): {}}}}

    es_client.indices.refresh(index=news_alias(unique_name))
    response = es_client.search(
        index=news_alias(unique_name), size=0, query={"match": {"title": "fall"}},
        aggs={"per_hour": {"date_histogram": {"field": "published_at", "fixed_interval": "1h"},
                           "aggs": {"negative": {"avg": {"field": "negative_score"}}}}},
    )
    assert response["hits"]["total"]["value"] == 9
    buckets = response["aggregations"]["per_hour"]["buckets"]
    assert [b["doc_count"] for b in buckets] == [3, 3, 3]
    assert buckets[0]["key_as_string"].startswith("2026-11-28T10:00:00")
    assert buckets[0]["negative"]["value"] == pytest.approx((0.9 + 0.1 + 0.1) / 3, abs=1e-6)


def test_stock_client_gets_406_from_osmem(stack) -> None:
    """Why the factory rewrites media types: osmem refuses the compatibility Content-Type."""
    from elasticsearch import ApiError, Elasticsearch

    stock = Elasticsearch(stack.es_url)
    try:
        with pytest.raises(ApiError) as caught:
            stock.indices.create(index="t-stock-client-406", mappings={"properties": {"a": {"type": "keyword"}}})
        assert caught.value.status_code == 406
    finally:
        stock.close()


def test_async_client_bulk_and_count(stack, unique_name: str) -> None:
    async def run() -> int:
        client = make_async_es_client(stack.settings.elasticsearch)
        try:
            await client.bulk(operations=[{"index": {"_index": unique_name, "_id": "1"}}, {"a": 1}], refresh=True)
            return int((await client.count(index=unique_name))["count"])
        finally:
            await client.close()

    assert asyncio.run(run()) == 1
