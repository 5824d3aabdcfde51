"""Table changelog records are delivered before the input offsets that produced them are committed.

A Faust table write (``table[key] = value``) queues its changelog record in the producer's buffer and
returns at once. Before committing offsets Faust flushes that buffer, but the flush gives up on a buffer
that does not move for 0.1 s, so under load it can return with records still queued, and the commit
goes ahead. A worker killed right then restarts from offsets past the events whose table writes were
never delivered: those writes are lost for good (a spike count missing articles). Here every table's
changelog sends are tracked, and the consumer's commit first waits until each one sent so far was
acknowledged by Kafka (a failed one fails the commit, so nothing is committed past it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from finpulse.streams.exceptions import ChangelogDeliveryError

logger = logging.getLogger(__name__)


class ChangelogDeliveries:
    """The changelog sends of a set of tables that Kafka has not acknowledged yet."""

    def __init__(self) -> None:
        self._pending: set[asyncio.Future[Any]] = set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def track(self, tables: Iterable[Any]) -> None:
        """Wrap each table's ``send_changelog`` (Faust routes every set and delete through it)."""
        for table in tables:
            table.send_changelog = self._tracked(table.send_changelog)

    def _tracked(self, send: Callable[..., asyncio.Future[Any]]) -> Callable[..., asyncio.Future[Any]]:
        def send_tracked(*args: Any, **kwargs: Any) -> asyncio.Future[Any]:
            future = send(*args, **kwargs)
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)
            return future

        return send_tracked

    async def delivered(self) -> None:
        """Wait for every changelog record sent so far; raises the first failed delivery."""
        if not self._pending:
            return
        # asyncio.wait, not gather: a cancelled commit must not cancel the producer's futures.
        done, _ = await asyncio.wait(list(self._pending))
        for future in done:
            if not future.cancelled() and future.exception() is not None:
                raise ChangelogDeliveryError(f"a table changelog record was not delivered: {future.exception()!r}")

    def guard_commits(self, consumer: Any) -> None:
        """Make ``consumer`` commit offsets only after :meth:`delivered` returned."""
        commit: Callable[[Mapping[Any, int]], Awaitable[bool]] = consumer._commit

        async def commit_after_changelogs(offsets: Mapping[Any, int]) -> bool:
            if self._pending:
                logger.debug("commit waits for %d changelog records", len(self._pending))
            await self.delivered()
            return await commit(offsets)

        consumer._commit = commit_after_changelogs
