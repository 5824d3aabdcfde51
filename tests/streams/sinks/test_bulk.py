"""BulkWriter retry logic against a scripted client (the real-server path is in the integration tests)."""

import asyncio
from typing import Any

import pytest
from elastic_transport import ApiResponseMeta, ConnectionError, HttpHeaders, NodeConfig
from elasticsearch import ApiError

from finpulse.streams.sinks.bulk import BULK_RESPONSE_FILTER, BulkWriter, Doc
from finpulse.streams.sinks.exceptions import DocumentRejected


def _meta(status: int) -> ApiResponseMeta:
    return ApiResponseMeta(status=status, http_version="1.1", headers=HttpHeaders(), duration=0.0,
                           node=NodeConfig("http", "localhost", 9200))


class _Scripted:
    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.calls: list[list[str]] = []
        self.filter_path: Any = None

    async def bulk(self, *, operations: list[dict[str, Any]], refresh: Any = False, filter_path: Any = None) -> Any:
        self.calls.append([op["index"]["_id"] for op in operations[::2]])
        self.filter_path = filter_path
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step(self.calls[-1])


def _ok(ids: list[str]) -> dict[str, Any]:
    return {"errors": False, "items": [{"index": {"_id": i, "status": 201}} for i in ids]}


def _partial(ids: list[str]) -> dict[str, Any]:
    return {"errors": True, "items": [{"index": {"_id": i, "status": 429 if n == 0 else 201}}
                                      for n, i in enumerate(ids)]}


def _docs(n: int) -> list[Doc]:
    return [Doc("idx", f"id{i}", {"n": i}) for i in range(n)]


def test_retries_connection_errors_and_5xx_until_acknowledged() -> None:
    client = _Scripted([ConnectionError("down"), ApiError("unavailable", _meta(503), {}), _ok])
    retries: list[int] = []
    attempts = asyncio.run(BulkWriter(client, backoff_s=0.001, on_retry=lambda: retries.append(1)).write(_docs(3)))
    assert attempts == 3 and len(retries) == 2
    assert client.calls[-1] == ["id0", "id1", "id2"]


def test_only_failed_items_are_retried() -> None:
    client = _Scripted([_partial, _ok])
    asyncio.run(BulkWriter(client, backoff_s=0.001).write(_docs(3)))
    assert client.calls == [["id0", "id1", "id2"], ["id0"]]
    assert client.filter_path == BULK_RESPONSE_FILTER  # the response keeps each item's status and error, nothing else


def test_same_id_twice_in_a_batch_is_written_once() -> None:
    client = _Scripted([_ok])
    asyncio.run(BulkWriter(client).write([Doc("idx", "a", {"v": 1}), Doc("idx", "a", {"v": 2})]))
    assert client.calls == [["a"]]


def test_mapping_error_is_a_bug_and_raises() -> None:
    def rejected(ids: list[str]) -> dict[str, Any]:
        return {"errors": True, "items": [{"index": {"_id": i, "status": 400, "error": {"type": "mapper"}}}
                                          for i in ids]}

    with pytest.raises(DocumentRejected):
        asyncio.run(BulkWriter(_Scripted([rejected])).write(_docs(1)))
