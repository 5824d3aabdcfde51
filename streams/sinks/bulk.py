"""Idempotent Elasticsearch bulk writes: retried until acknowledged, refused documents handed back, bodies capped.

Documents carry their own ``_id`` (the article id), so writing a batch twice leaves one copy of each
document: at-least-once delivery from Kafka plus these writes gives no loss and no duplicates.
Transient failures (408, 429, 5xx, connection errors, timeouts) are retried with capped exponential
back-off, only for the items that failed, for as long as it takes; the caller acknowledges the Kafka
offsets only when :meth:`BulkWriter.write` returns. A document Elasticsearch refuses for good (a mapping
error, 400, or any other status a retry cannot change) is not retried: it comes back as a
:class:`Rejection` with its status and reason, for the caller to dead-letter, so one poison record never
blocks its partition.

Request bodies stay under ``max_bytes``: each document is serialised once, and a batch goes in as many
requests as the cap needs (a document larger than the cap goes alone). A whole request refused with 400
or 413 is split in halves until its documents are written or stand alone and are rejected; any other
refusal of a whole request (401, 403, 404: credentials, permissions, a wrong URL) is no document's fault
and raises :class:`BulkRequestRefused`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError

from finpulse.streams.sinks.exceptions import BulkRequestRefused
from finpulse.streams.sinks.serializers import OrjsonJsonSerializer

logger = logging.getLogger(__name__)

RETRIABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
SPLIT_STATUS = frozenset({400, 413})  # a whole request refused for what some document in it holds
MAX_BACKOFF_S = 30.0
DEFAULT_MAX_BYTES = 10_000_000
# What a bulk response needs to say for the retry decision: each item's status (and error, when it failed), not its
# index, id, version, shards and sequence numbers: about 25 instead of 170 bytes per document to parse.
BULK_RESPONSE_FILTER = "errors,items.*.status,items.*.error"


class AsyncBulkClient(Protocol):
    async def bulk(self, *, operations: Sequence[Any], refresh: Any = ..., filter_path: Any = ...) -> Any: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Doc:
    index: str
    id: str
    source: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A document Elasticsearch refused for good: its status, error type and reason."""

    doc: Doc
    status: int
    error_type: str
    reason: str

    def describe(self) -> str:
        return f"Elasticsearch refused {self.doc.id} in {self.doc.index} with {self.status} {self.error_type}: {self.reason}"


@dataclass(slots=True)
class BulkResult:
    """What one :meth:`BulkWriter.write` took: the bulk requests sent, and the documents refused for good."""

    attempts: int = 0
    rejected: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Encoded:
    doc: Doc
    lines: tuple[bytes, bytes]

    @property
    def size(self) -> int:
        return len(self.lines[0]) + len(self.lines[1]) + 2  # each line ends with a newline


def error_of(error: Any, status: int) -> tuple[str, str]:
    """(type, reason) of an Elasticsearch error object (or string), with its first cause."""
    if not isinstance(error, Mapping):
        return f"http_{status}", str(error or "")[:2000]
    reason = str(error.get("reason", ""))
    cause = error.get("caused_by")
    if isinstance(cause, Mapping) and cause.get("reason"):
        reason = f"{reason} (caused by {cause.get('type', 'unknown')}: {cause['reason']})"
    return str(error.get("type", f"http_{status}")), reason[:2000]


class BulkWriter:
    """Write batches of :class:`Doc`; return when Elasticsearch acknowledged or refused for good each of them."""

    def __init__(
        self,
        client: AsyncBulkClient,
        *,
        backoff_s: float = 0.5,
        warn_after: int = 8,
        on_retry: Callable[[], None] | None = None,
        on_bulk_seconds: Callable[[float], None] | None = None,
        refresh: bool | str = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._client = client
        self._backoff_s = backoff_s
        self._warn_after = warn_after
        self._on_retry = on_retry or (lambda: None)
        self._on_bulk_seconds = on_bulk_seconds or (lambda _s: None)
        self._refresh = refresh
        self._max_bytes = max_bytes
        self._dumps = OrjsonJsonSerializer().json_dumps

    async def write(self, docs: Sequence[Doc]) -> BulkResult:
        """Write ``docs``; never drops a document: each is acknowledged or comes back in ``rejected``."""
        result = BulkResult()
        pending: Iterable[Doc | _Encoded] = {(d.index, d.id): d for d in docs}.values()  # same id twice: last wins
        failures = 0
        while True:
            retry: list[_Encoded] = []
            for chunk in self._chunks(pending):
                retry.extend(await self._send(chunk, result, self._level(failures + 1)))
            if not retry:
                return result
            pending = retry
            failures += 1
            self._on_retry()
            await asyncio.sleep(min(MAX_BACKOFF_S, self._backoff_s * 2 ** min(failures - 1, 16)))

    async def close(self) -> None:
        await self._client.close()

    def _level(self, attempt: int) -> int:
        return logging.WARNING if attempt < self._warn_after else logging.ERROR

    def _chunks(self, items: Iterable[Doc | _Encoded]) -> Iterator[list[_Encoded]]:
        """Requests of at most ``max_bytes`` (a larger document alone); documents are serialised as they are needed."""
        chunk: list[_Encoded] = []
        size = 0
        for item in items:
            encoded = item if isinstance(item, _Encoded) else self._encode(item)
            if chunk and size + encoded.size > self._max_bytes:
                yield chunk
                chunk, size = [], 0
            chunk.append(encoded)
            size += encoded.size
        if chunk:
            yield chunk

    def _encode(self, doc: Doc) -> _Encoded:
        return _Encoded(doc, (self._dumps({"index": {"_index": doc.index, "_id": doc.id}}), self._dumps(doc.source)))

    async def _send(self, chunk: list[_Encoded], result: BulkResult, level: int) -> list[_Encoded]:
        """One request; returns the documents to retry. A request refused for its content is split in halves."""
        result.attempts += 1
        try:
            body = await self._bulk(chunk)
        except (TransportConnectionError, ConnectionTimeout) as exc:
            logger.log(level, "Elasticsearch unreachable (%s); retrying %d docs", exc, len(chunk))
            return chunk
        except ApiError as exc:
            status = exc.meta.status
            if status in RETRIABLE_STATUS:
                logger.log(level, "bulk request got %s; retrying %d docs", status, len(chunk))
                return chunk
            if status not in SPLIT_STATUS:
                raise BulkRequestRefused(f"bulk request of {len(chunk)} documents refused with {status}: {exc}") from exc
            if len(chunk) > 1:
                half = len(chunk) // 2
                logger.warning("bulk request of %d documents refused with %s; splitting it", len(chunk), status)
                return [*await self._send(chunk[:half], result, level), *await self._send(chunk[half:], result, level)]
            error = exc.body.get("error") if isinstance(exc.body, Mapping) else exc.body
            self._reject(result, Rejection(chunk[0].doc, status, *error_of(error or exc.message, status)))
            return []
        return self._sort_out(chunk, body, result)

    async def _bulk(self, chunk: list[_Encoded]) -> Mapping[str, Any]:
        operations = [line for encoded in chunk for line in encoded.lines]
        started = time.perf_counter()
        response = await self._client.bulk(operations=operations, refresh=self._refresh, filter_path=BULK_RESPONSE_FILTER)
        self._on_bulk_seconds(time.perf_counter() - started)
        body: Mapping[str, Any] = response.body if hasattr(response, "body") else response
        return body

    def _sort_out(self, chunk: list[_Encoded], body: Mapping[str, Any], result: BulkResult) -> list[_Encoded]:
        """The items to retry; the ones refused for good go to ``result.rejected``."""
        if not body.get("errors"):
            return []
        retry: list[_Encoded] = []
        for encoded, item in zip(chunk, body["items"], strict=True):
            outcome = next(iter(item.values()))
            status = int(outcome.get("status", 0))
            if 200 <= status < 300:
                continue
            if status in RETRIABLE_STATUS:
                retry.append(encoded)
                continue
            self._reject(result, Rejection(encoded.doc, status, *error_of(outcome.get("error"), status)))
        if retry:
            logger.warning("%d of %d documents need a retry", len(retry), len(chunk))
        return retry

    @staticmethod
    def _reject(result: BulkResult, rejection: Rejection) -> None:
        logger.warning("%s", rejection.describe())
        result.rejected.append(rejection)
