"""BulkWriter against the real search server: the filtered bulk response still tells written from refused, a refused
document comes back with its status and reason, and large documents go in requests under the byte cap."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from finpulse.streams.sinks.bulk import BulkResult, BulkWriter, Doc
from finpulse.streams.sinks.elasticsearch import make_async_es_client

pytestmark = pytest.mark.integration

PAGES = 500
PAGE_BYTES = 1_000_000


def _write(stack: Any, docs: list[Doc], **kwargs: Any) -> BulkResult:
    async def write() -> BulkResult:
        writer = BulkWriter(make_async_es_client(stack.settings.elasticsearch), refresh=True, **kwargs)
        try:
            return await writer.write(docs)
        finally:
            await writer.close()

    return asyncio.run(write())


def test_written_documents_pass_and_a_refused_one_comes_back_with_status_and_reason(
    stack: Any, es_client: Any, unique_name: str
) -> None:
    es_client.indices.create(index=unique_name, mappings={"properties": {"n": {"type": "integer"}}})
    _write(stack, [Doc(unique_name, f"ok-{i}", {"n": i}) for i in range(3)])
    assert es_client.count(index=unique_name)["count"] == 3

    result = _write(stack, [Doc(unique_name, "ok-3", {"n": 3}), Doc(unique_name, "bad-1", {"n": "not a number"})])
    assert [(r.doc.id, r.status, r.error_type) for r in result.rejected] == [("bad-1", 400, "mapper_parsing_exception")]
    assert "failed to parse field [n]" in result.rejected[0].reason
    es_client.indices.refresh(index=unique_name)
    assert es_client.count(index=unique_name)["count"] == 4


@pytest.mark.slow
def test_500_pages_of_1_mb_are_indexed_in_requests_under_the_byte_cap(
    stack: Any, es_client: Any, unique_name: str
) -> None:
    """The server refuses a request body over 100 MiB with 413, as Elasticsearch does by default."""
    es_client.indices.create(index=unique_name, mappings={"dynamic": False, "properties": {"n": {"type": "integer"}}})
    page = "x" * PAGE_BYTES  # one string shared by every document: the test's own memory stays small
    docs = [Doc(unique_name, f"page-{i}", {"n": i, "body": page}) for i in range(PAGES)]
    result = _write(stack, docs)
    assert result.rejected == []
    es_client.indices.refresh(index=unique_name)
    assert es_client.count(index=unique_name)["count"] == PAGES
    assert result.attempts >= PAGES * PAGE_BYTES // 10_000_000  # the default cap: 10 MB per request
