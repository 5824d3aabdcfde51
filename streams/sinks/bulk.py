"""Idempotent Elasticsearch bulk writes that retry until every document is acknowledged.

Documents carry their own ``_id`` (the article id), so writing a batch twice leaves one copy of each
document: at-least-once delivery from Kafka plus these writes gives no loss and no duplicates.
Transient failures (429, 5xx, connection errors, timeouts) are retried with capped exponential
back-off, only for the items that failed, for as long as it takes; the caller acknowledges the Kafka
offsets only when :meth:`BulkWriter.write` returns. A document Elasticsearch refuses for good
(a mapping error, 400) is a bug in our own records and raises :class:`DocumentRejected`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError

from finpulse.streams.sinks.exceptions import DocumentRejected

logger = logging.getLogger(__name__)

RETRIABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0
# What a bulk response needs to say for the retry decision: each item's status (and error, when it failed), not its
# index, id, version, shards and sequence numbers: about 25 instead of 170 bytes per document to parse.
BULK_RESPONSE_FILTER = "errors,items.*.status,items.*.error"


class AsyncBulkClient(Protocol):
    async def bulk(self, *, operations: Sequence[Mapping[str, Any]], refresh: Any = ..., filter_path: Any = ...) -> Any: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Doc:
    index: str
    id: str
    source: Mapping[str, Any]


class BulkWriter:
    """Write batches of :class:`Doc` and return only when Elasticsearch acknowledged all of them."""

    def __init__(
        self,
        client: AsyncBulkClient,
        *,
        backoff_s: float = 0.5,
        warn_after: int = 8,
        on_retry: Callable[[], None] | None = None,
        on_bulk_seconds: Callable[[float], None] | None = None,
        refresh: bool | str = False,
    ) -> None:
        self._client = client
        self._backoff_s = backoff_s
        self._warn_after = warn_after
        self._on_retry = on_retry or (lambda: None)
        self._on_bulk_seconds = on_bulk_seconds or (lambda _s: None)
        self._refresh = refresh

    async def write(self, docs: Sequence[Doc]) -> int:
        """Write ``docs``; returns how many bulk attempts it took. Never drops a document."""
        pending = list({(d.index, d.id): d for d in docs}.values())  # the same id twice in one batch: last wins
        attempt = 0
        while pending:
            attempt += 1
            try:
                pending = await self._attempt(pending)
            except (TransportConnectionError, ConnectionTimeout) as exc:
                logger.log(self._level(attempt), "Elasticsearch unreachable (%s); retrying %d docs", exc, len(pending))
            except ApiError as exc:
                if exc.meta.status not in RETRIABLE_STATUS:
                    raise DocumentRejected(f"bulk request refused with {exc.meta.status}: {exc}") from exc
                logger.log(self._level(attempt), "bulk request got %s; retrying %d docs", exc.meta.status, len(pending))
            if pending:
                self._on_retry()
                await asyncio.sleep(min(MAX_BACKOFF_S, self._backoff_s * 2 ** min(attempt - 1, 16)))
        return attempt

    async def close(self) -> None:
        await self._client.close()

    def _level(self, attempt: int) -> int:
        return logging.WARNING if attempt < self._warn_after else logging.ERROR

    async def _attempt(self, docs: list[Doc]) -> list[Doc]:
        operations: list[Mapping[str, Any]] = []
        for d in docs:
            operations.append({"index": {"_index": d.index, "_id": d.id}})
            operations.append(d.source)
        started = time.perf_counter()
        response = await self._client.bulk(operations=operations, refresh=self._refresh, filter_path=BULK_RESPONSE_FILTER)
        self._on_bulk_seconds(time.perf_counter() - started)
        body = response.body if hasattr(response, "body") else response
        if not body.get("errors"):
            return []
        retry: list[Doc] = []
        for doc, item in zip(docs, body["items"], strict=True):
            result = next(iter(item.values()))
            status = int(result.get("status", 0))
            if 200 <= status < 300:
                continue
            if status in RETRIABLE_STATUS:
                retry.append(doc)
                continue
            raise DocumentRejected(f"document {doc.id} refused by {doc.index} ({status}): {result.get('error')}")
        if retry:
            logger.warning("%d of %d documents need a retry", len(retry), len(docs))
        return retry
