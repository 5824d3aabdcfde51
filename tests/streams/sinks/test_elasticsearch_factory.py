"""The Elasticsearch client factory and the index templates, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest
from elastic_transport import HttpHeaders, Urllib3HttpNode

from finpulse.settings import ElasticsearchSettings
from finpulse.streams.sinks.elasticsearch import make_async_es_client, make_es_client, plain_media_types
from finpulse.streams.sinks.exceptions import ElasticsearchConfigError
from finpulse.streams.sinks.templates import adapt_for_embedded, index_template, load_template


def test_compat_media_types_become_plain() -> None:
    headers = HttpHeaders({
        "Accept": "application/vnd.elasticsearch+json; compatible-with=9",
        "Content-Type": "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
        "X-Other": "application/vnd.elasticsearch+json; compatible-with=9",
    })
    fixed = plain_media_types(headers)
    assert fixed["accept"] == "application/json"
    assert fixed["content-type"] == "application/x-ndjson"
    assert fixed["x-other"] == headers["x-other"]
    assert headers["accept"].startswith("application/vnd")  # the caller's headers are not changed
    assert plain_media_types(HttpHeaders({"accept": "application/json"}))["accept"] == "application/json"
    assert plain_media_types(None) is None


def _node_class(client: object) -> type:
    return type(client.transport.node_pool.all()[0])  # type: ignore[attr-defined]


def test_node_class_only_with_compat_json() -> None:
    plain = make_es_client(ElasticsearchSettings(url="http://127.0.0.1:1"))
    compat = make_es_client(ElasticsearchSettings(url="http://127.0.0.1:1", compat_json=True))
    try:
        assert _node_class(plain) is Urllib3HttpNode
        assert _node_class(compat).__name__ == "PlainJsonUrllib3HttpNode"
        assert issubclass(_node_class(compat), Urllib3HttpNode)
    finally:
        plain.close()
        compat.close()


async def _async_node_name() -> str:
    client = make_async_es_client(ElasticsearchSettings(url="http://127.0.0.1:1", compat_json=True))
    try:
        return _node_class(client).__name__
    finally:
        await client.close()


def test_async_node_class() -> None:
    import asyncio

    assert asyncio.run(_async_node_name()) == "PlainJsonAiohttpHttpNode"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"api_key": "k", "username": "u", "password": "p"}, "not both"),
        ({"username": "u"}, "without FINPULSE_ELASTICSEARCH__PASSWORD"),
        ({"password": "p"}, "without FINPULSE_ELASTICSEARCH__USERNAME"),
        ({"ca_certs": Path("/nonexistent/ca.pem")}, "does not exist"),
    ],
)
def test_bad_auth_settings_are_named_errors(fields: dict, message: str) -> None:
    with pytest.raises(ElasticsearchConfigError, match=message):
        make_es_client(ElasticsearchSettings(**fields))


def test_news_template_has_prefix_and_mappings() -> None:
    template = load_template("news", "abc")
    assert template["index_patterns"] == ["abc-news-*"]
    assert template["template"]["aliases"] == {"abc-news": {}}
    props = template["template"]["mappings"]["properties"]
    assert props["embedding"]["type"] == "dense_vector"
    assert props["title"]["analyzer"] == "english"
    assert {props[f]["type"] for f in ("published_at", "fetched_at", "scored_at")} == {"date"}
    assert {props[f]["type"] for f in ("id", "tickers", "label", "source", "language", "model_version", "url")} == {"keyword"}
    assert set(props["probabilities"]["properties"]) == {"negative", "neutral", "positive"}


def test_news_template_mappings_cover_scored_article() -> None:
    from finpulse.contracts.records import ScoredArticle

    props = load_template("news", "x")["template"]["mappings"]["properties"]
    assert set(ScoredArticle.model_fields) - {"schema_version"} == set(props)


def test_embedded_adaptation_replaces_dense_vector_only() -> None:
    template = load_template("news", "p")
    adapted = adapt_for_embedded(template)
    assert adapted["template"]["mappings"]["properties"]["embedding"] == {"type": "object", "enabled": False}
    assert adapted["template"]["settings"]["number_of_replicas"] == 0
    assert template["template"]["mappings"]["properties"]["embedding"]["type"] == "dense_vector"  # copy, not in place
    assert index_template("news", ElasticsearchSettings(index_prefix="p")) == template
    assert index_template("news", ElasticsearchSettings(index_prefix="p", compat_json=True)) == adapted
