"""Stores the embeddings the worker computed with the article's document in Elasticsearch.

When an article reached ``news.scored`` without an embedding (no shared encoder pass yet), the candidate
agent embeds it and adds the vector to the article's news document with a partial ``update`` (the index
agent writes the rest of the document). An update that finds no document yet (404: the index agent has not
written it) is retried later; other failures are retried with back-off like the bulk writer's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from finpulse.streams.sinks.bulk import BULK_RESPONSE_FILTER

logger = logging.getLogger(__name__)

RETRIABLE = frozenset({404, 408, 409, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class VectorUpdate:
    index: str
    id: str
    embedding: list[float]
    first_try: float


class VectorStore:
    """Partial updates ``{"embedding": [...]}`` of news documents; documents not there yet are retried."""

    def __init__(self, client: Any, give_up_after_s: float = 600.0, retry_every_s: float = 2.0) -> None:
        self._client = client
        self._pending: list[VectorUpdate] = []
        self._give_up_after_s = give_up_after_s
        self._retry_every_s = retry_every_s
        self._last_retry = 0.0

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def add(self, updates: Sequence[VectorUpdate]) -> None:
        self._pending.extend(updates)
        await self.flush(force=True)

    async def flush(self, force: bool = False) -> None:
        now = time.time()
        if not self._pending or (not force and now - self._last_retry < self._retry_every_s):
            return
        self._last_retry = now
        batch, self._pending = self._pending, []
        operations: list[dict[str, Any]] = []
        for u in batch:
            operations.append({"update": {"_index": u.index, "_id": u.id}})
            operations.append({"doc": {"embedding": u.embedding}})
        from elastic_transport import ConnectionError as TransportConnectionError
        from elastic_transport import ConnectionTimeout
        from elasticsearch import ApiError

        try:
            response = await self._client.bulk(operations=operations, filter_path=BULK_RESPONSE_FILTER)
        except (TimeoutError, TransportConnectionError, ConnectionTimeout, ApiError) as exc:
            logger.warning("embedding updates failed (%s); %d kept for a retry", exc, len(batch))
            self._pending.extend(batch)
            return
        body = response.body if hasattr(response, "body") else response
        if not body.get("errors"):
            return
        for update, item in zip(batch, body["items"], strict=True):
            status = int(next(iter(item.values())).get("status", 0))
            if 200 <= status < 300:
                continue
            if status in RETRIABLE and now - update.first_try < self._give_up_after_s:
                self._pending.append(update)
            else:
                logger.warning("embedding of %s not stored in %s (%d)", update.id, update.index, status)

    async def close(self) -> None:
        await self._client.close()
