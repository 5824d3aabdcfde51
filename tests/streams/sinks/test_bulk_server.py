"""BulkWriter against the real search server: the filtered bulk response still tells written from refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from finpulse.streams.sinks.bulk import BulkWriter, Doc
from finpulse.streams.sinks.elasticsearch import make_async_es_client
from finpulse.streams.sinks.exceptions import DocumentRejected

pytestmark = pytest.mark.integration


def test_written_documents_pass_and_a_refused_one_is_named(stack: Any, es_client: Any, unique_name: str) -> None:
    es_client.indices.create(index=unique_name, mappings={"properties": {"n": {"type": "integer"}}})

    async def write(docs: list[Doc]) -> None:
        writer = BulkWriter(make_async_es_client(stack.settings.elasticsearch), refresh=True)
        try:
            await writer.write(docs)
        finally:
            await writer.close()

    asyncio.run(write([Doc(unique_name, f"ok-{i}", {"n": i}) for i in range(3)]))
    assert es_client.count(index=unique_name)["count"] == 3

    with pytest.raises(DocumentRejected, match="document bad-1 refused .*400"):
        asyncio.run(write([Doc(unique_name, "ok-3", {"n": 3}), Doc(unique_name, "bad-1", {"n": "not a number"})]))
    es_client.indices.refresh(index=unique_name)
    assert es_client.count(index=unique_name)["count"] == 4
