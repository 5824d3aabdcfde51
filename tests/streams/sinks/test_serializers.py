"""The orjson serializers write what elasticsearch-py's stock ones write, and both clients use them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime

import numpy as np
from elasticsearch.serializer import JsonSerializer, NdjsonSerializer

from finpulse.settings import ElasticsearchSettings
from finpulse.streams.sinks.elasticsearch import make_async_es_client, make_es_client
from finpulse.streams.sinks.serializers import OrjsonJsonSerializer, OrjsonNdjsonSerializer


def document() -> dict[str, object]:
    vector = np.random.default_rng(0).normal(size=384)
    return {
        "id": "a" * 32, "title": "Exxon lifts output — “quoted” ünïcode \u2028", "tickers": ["XOM"],
        "published_at": datetime(2026, 12, 1, 23, 51, 7, 123456, tzinfo=UTC), "day": date(2026, 12, 1),
        "score": np.float32(0.25), "count": np.int64(3), "uid": uuid.UUID(int=7),
        "embedding": (vector / np.linalg.norm(vector)).round(5).tolist(), "nested": {"ok": True, "none": None},
    }


def test_the_same_bytes_as_the_stock_serializers() -> None:
    doc = document()
    assert OrjsonJsonSerializer().dumps(doc) == JsonSerializer().dumps(doc)
    lines = [{"index": {"_index": "finpulse-news-2026.12.01", "_id": "a" * 32}}, doc] * 3
    assert OrjsonNdjsonSerializer().dumps(lines) == NdjsonSerializer().dumps(lines)
    body = OrjsonJsonSerializer().dumps(doc)
    assert OrjsonJsonSerializer().loads(body) == JsonSerializer().loads(body)


def test_both_clients_write_with_orjson() -> None:
    settings = ElasticsearchSettings(url="http://127.0.0.1:9")
    client = make_es_client(settings)
    try:
        serializers = client.transport.serializers
        assert isinstance(serializers.get_serializer("application/x-ndjson"), OrjsonNdjsonSerializer)
        assert isinstance(serializers.get_serializer("application/vnd.elasticsearch+json"), OrjsonJsonSerializer)
    finally:
        client.close()
    async_client = make_async_es_client(settings)
    try:
        assert isinstance(async_client.transport.serializers.get_serializer("application/json"), OrjsonJsonSerializer)
    finally:
        asyncio.run(async_client.close())
