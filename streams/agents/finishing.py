"""Finish an agent's micro-batches in the background, in order, acknowledging each only once it is finished.

The scoring agent spends most of a batch in the model (a worker thread) and the rest on the event loop:
producing the outputs and waiting for Kafka to acknowledge them. Done one after the other, the model
waits for Kafka and the event loop waits for the model. :class:`OrderedFinisher` lets the agent hand a
scored batch's outputs to a background task and go on to the next batch, so the next batch is in the
model while this one's records are produced and acknowledged.

At-least-once is kept: a submitted batch holds one more reference on each of its messages, released
(acked) only after its finish coroutine returned. Batches are finished one at a time, in the order
they were submitted, so a partition's offsets are acknowledged in order. Faust commits the highest run
of consecutive acknowledged offsets, but a commit just after its last committed offset can skip one
unacknowledged message when acks arrive out of order. A batch whose finish failed or never ran is
never acknowledged: its offsets are not committed and the next start re-delivers it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self

logger = logging.getLogger(__name__)


class OrderedFinisher:
    """At most one batch finishing in the background; the next :meth:`submit` waits for it first.

    Use as ``async with OrderedFinisher() as finisher: ... await finisher.submit(events, finish)``.
    Leaving the block normally waits (up to ``drain_timeout_s``) for the last batch so a graceful stop
    commits it; leaving it with an error or a cancellation cancels the last batch instead (it stays
    unacknowledged and is re-delivered).
    """

    def __init__(self, name: str, drain_timeout_s: float = 10.0) -> None:
        self.name = name
        self.drain_timeout_s = drain_timeout_s
        self._pending: asyncio.Task[None] | None = None

    async def submit(self, events: Sequence[Any], finish: Callable[[], Awaitable[None]]) -> None:
        """Hold ``events``, wait for the previous batch, then run ``finish()`` in the background.

        A previous batch's failure is raised here (its events stay unacknowledged) before this batch
        starts, so the agent crashes on the first failed batch and nothing after it is acknowledged.
        """
        for event in events:
            event.message.incref()
        await self.wait()
        self._pending = asyncio.create_task(self._finish(events, finish), name=f"{self.name}-finish")

    async def wait(self) -> None:
        """Until the batch in the background (if any) is finished; raises its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending

    @staticmethod
    async def _finish(events: Sequence[Any], finish: Callable[[], Awaitable[None]]) -> None:
        await finish()
        for event in events:
            event.ack()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if exc_type is None:
            try:
                await asyncio.wait_for(asyncio.shield(pending), self.drain_timeout_s)
                return
            except TimeoutError:
                logger.warning("%s: the last batch did not finish within %.0f s; it stays unacknowledged and is "
                               "re-delivered on the next start", self.name, self.drain_timeout_s)
        pending.cancel()
        for outcome in await asyncio.gather(pending, return_exceptions=True):
            if isinstance(outcome, Exception):
                logger.error("%s: the last batch failed while the agent was stopping; it stays unacknowledged",
                             self.name, exc_info=outcome)
