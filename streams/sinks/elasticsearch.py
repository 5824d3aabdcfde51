"""The one place Elasticsearch clients are built: ``make_es_client`` (sync) and ``make_async_es_client``.

Both take :class:`~finpulse.settings.ElasticsearchSettings` and set API-key or basic auth, the CA
bundle and timeouts from it. With ``compat_json`` (the embedded osmem server only) they use a node
class that sends plain ``application/json`` instead of the compatibility media type
``application/vnd.elasticsearch+json; compatible-with=N``, which osmem answers with 406.
Against real Elasticsearch (``compat_json`` false) the stock node classes are used. Bodies are written and read
with orjson (:mod:`finpulse.streams.sinks.serializers`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from finpulse.settings import ElasticsearchSettings
from finpulse.streams.sinks.exceptions import ElasticsearchConfigError

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch, Elasticsearch

_COMPAT = re.compile(r"application/vnd\.elasticsearch\+([\w.+-]+)\s*;\s*compatible-with=\d+", re.IGNORECASE)


def plain_media_types(headers: Any) -> Any:
    """A copy of ``headers`` with compatibility media types in Accept/Content-Type made plain."""
    if headers is None:
        return None
    fixed = headers.copy()
    for name in ("accept", "content-type"):
        value = fixed.get(name)
        if value:
            fixed[name] = _COMPAT.sub(r"application/\1", value)
    return fixed


def _client_kwargs(settings: ElasticsearchSettings) -> dict[str, Any]:
    from finpulse.streams.sinks.serializers import fast_serializers

    kwargs: dict[str, Any] = {
        "hosts": [settings.url],
        "request_timeout": settings.request_timeout_s,
        "serializers": fast_serializers(),
    }
    if settings.api_key is not None and settings.username:
        raise ElasticsearchConfigError(
            "set either FINPULSE_ELASTICSEARCH__API_KEY or FINPULSE_ELASTICSEARCH__USERNAME/PASSWORD, not both"
        )
    if settings.api_key is not None:
        kwargs["api_key"] = settings.api_key.get_secret_value()
    elif settings.username:
        if settings.password is None:
            raise ElasticsearchConfigError("FINPULSE_ELASTICSEARCH__USERNAME is set without FINPULSE_ELASTICSEARCH__PASSWORD")
        kwargs["basic_auth"] = (settings.username, settings.password.get_secret_value())
    elif settings.password is not None:
        raise ElasticsearchConfigError("FINPULSE_ELASTICSEARCH__PASSWORD is set without FINPULSE_ELASTICSEARCH__USERNAME")
    if settings.ca_certs is not None:
        if not settings.ca_certs.is_file():
            raise ElasticsearchConfigError(f"FINPULSE_ELASTICSEARCH__CA_CERTS: {settings.ca_certs} does not exist")
        kwargs["ca_certs"] = str(settings.ca_certs)
    return kwargs


def make_es_client(settings: ElasticsearchSettings) -> Elasticsearch:
    """A synchronous client for ``settings`` (close it when done)."""
    from elasticsearch import Elasticsearch

    kwargs = _client_kwargs(settings)
    if settings.compat_json:
        kwargs["node_class"] = _plain_json_urllib3_node()
    return Elasticsearch(**kwargs)


def make_async_es_client(settings: ElasticsearchSettings) -> AsyncElasticsearch:
    """An asyncio client for ``settings`` (``await client.close()`` when done); needs aiohttp."""
    from elasticsearch import AsyncElasticsearch

    kwargs = _client_kwargs(settings)
    kwargs["max_retries"] = 0  # the bulk writer retries with back-off; transport retries would multiply them
    if settings.compat_json:
        kwargs["node_class"] = _plain_json_aiohttp_node()
    return AsyncElasticsearch(**kwargs)


def _plain_json_urllib3_node() -> type:
    from elastic_transport import HttpHeaders, Urllib3HttpNode
    from elastic_transport._models import DEFAULT, DefaultType
    from elastic_transport._node._base import NodeApiResponse

    class PlainJsonUrllib3HttpNode(Urllib3HttpNode):
        """Urllib3HttpNode that sends plain JSON media types (for osmem)."""

        def perform_request(
            self,
            method: str,
            target: str,
            body: bytes | None = None,
            headers: HttpHeaders | None = None,
            request_timeout: DefaultType | float | None = DEFAULT,
        ) -> NodeApiResponse:
            return super().perform_request(method, target, body, plain_media_types(headers), request_timeout)

    return PlainJsonUrllib3HttpNode


def _plain_json_aiohttp_node() -> type:
    try:
        from elastic_transport import AiohttpHttpNode
    except ImportError:  # elastic_transport exports it only when aiohttp is installed
        raise ElasticsearchConfigError("the async Elasticsearch client needs aiohttp: pip install aiohttp") from None

    from elastic_transport import HttpHeaders
    from elastic_transport._models import DEFAULT, DefaultType
    from elastic_transport._node._base import NodeApiResponse

    class PlainJsonAiohttpHttpNode(AiohttpHttpNode):
        """AiohttpHttpNode that sends plain JSON media types (for osmem)."""

        async def perform_request(  # type: ignore[override]
            self,
            method: str,
            target: str,
            body: bytes | None = None,
            headers: HttpHeaders | None = None,
            request_timeout: DefaultType | float | None = DEFAULT,
        ) -> NodeApiResponse:
            return await super().perform_request(method, target, body, plain_media_types(headers), request_timeout)

    return PlainJsonAiohttpHttpNode
