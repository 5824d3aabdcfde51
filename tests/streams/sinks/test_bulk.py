"""BulkWriter retry logic against a scripted client (the real-server path is in the integration tests)."""

import asyncio
from typing import Any

import orjson
import pytest
from elastic_transport import ApiResponseMeta, ConnectionError, HttpHeaders, NodeConfig
from elasticsearch import ApiError

from finpulse.streams.sinks.bulk import BULK_RESPONSE_FILTER, BulkWriter, Doc
from finpulse.streams.sinks.exceptions import BulkRequestRefused


def _meta(status: int) -> ApiResponseMeta:
    return ApiResponseMeta(status=status, http_version="1.1", headers=HttpHeaders(), duration=0.0,
                           node=NodeConfig("http", "localhost", 9200))


class _Scripted:
    """Answers each bulk call with the next step of its script (an exception, or a function of the ids sent)."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.calls: list[list[str]] = []
        self.sizes: list[int] = []
        self.filter_path: Any = None

    async def bulk(self, *, operations: list[bytes], refresh: Any = False, filter_path: Any = None) -> Any:
        self.calls.append([orjson.loads(op)["index"]["_id"] for op in operations[::2]])
        self.sizes.append(sum(len(op) + 1 for op in operations))
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
    result = asyncio.run(BulkWriter(client, backoff_s=0.001, on_retry=lambda: retries.append(1)).write(_docs(3)))
    assert result.attempts == 3 and len(retries) == 2 and result.rejected == []
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


def test_a_mapping_error_comes_back_as_a_rejection_and_the_rest_is_written() -> None:
    def one_rejected(ids: list[str]) -> dict[str, Any]:
        error = {"type": "mapper_parsing_exception", "reason": "failed to parse field [n]"}
        return {"errors": True, "items": [{"index": {"_id": i, "status": 400, "error": error} if i == "id1"
                                           else {"_id": i, "status": 201}} for i in ids]}

    client = _Scripted([one_rejected])
    result = asyncio.run(BulkWriter(client, backoff_s=0.001).write(_docs(3)))
    assert [(r.doc.id, r.status, r.error_type, r.reason) for r in result.rejected] == [
        ("id1", 400, "mapper_parsing_exception", "failed to parse field [n]")]
    assert client.calls == [["id0", "id1", "id2"]]  # nothing retried: the refusal is for good


def test_requests_stay_under_the_byte_cap() -> None:
    docs = [Doc("idx", f"id{i}", {"body": "x" * 1000}) for i in range(10)]
    client = _Scripted([_ok] * 10)
    result = asyncio.run(BulkWriter(client, max_bytes=3000).write(docs))
    assert [len(ids) for ids in client.calls] == [2, 2, 2, 2, 2]
    assert max(client.sizes) <= 3000 and result.attempts == 5


def test_a_document_over_the_cap_goes_alone() -> None:
    docs = [Doc("idx", "small", {"n": 1}), Doc("idx", "big", {"body": "x" * 5000}), Doc("idx", "small2", {"n": 2})]
    client = _Scripted([_ok] * 3)
    asyncio.run(BulkWriter(client, max_bytes=3000).write(docs))
    assert client.calls == [["small"], ["big"], ["small2"]]


def test_a_413_request_is_split_and_a_single_document_too_large_is_rejected() -> None:
    too_large = ApiError("request body is larger than 104857600 bytes", _meta(413), {})
    client = _Scripted([too_large, too_large, _ok])
    result = asyncio.run(BulkWriter(client, backoff_s=0.001).write(_docs(3)))
    assert client.calls == [["id0", "id1", "id2"], ["id0"], ["id1", "id2"]]  # halves until the culprit stands alone
    assert [(r.doc.id, r.status) for r in result.rejected] == [("id0", 413)]


def test_a_refused_request_that_no_document_explains_raises() -> None:
    with pytest.raises(BulkRequestRefused, match="401"):
        asyncio.run(BulkWriter(_Scripted([ApiError("unauthorized", _meta(401), {})])).write(_docs(2)))
