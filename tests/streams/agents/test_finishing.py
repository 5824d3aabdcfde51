"""``OrderedFinisher``: background finishing that acknowledges each batch only after it finished, in order."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from finpulse.streams.agents.finishing import OrderedFinisher

from ..fake_events import FakeEvent, make_event


def _batch(first: int, size: int = 3) -> list[FakeEvent]:
    return [make_event(offset) for offset in range(first, first + size)]


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """A synchronous pytest test that runs ``test`` in a fresh event loop."""
    @functools.wraps(test)
    def sync() -> None:
        asyncio.run(test())
    return sync


def _acked(batch: list[FakeEvent]) -> list[bool]:
    return [event.message.acked for event in batch]


def _received(batch: list[FakeEvent]) -> list[FakeEvent]:
    """The stream's own reference is released when the loop body moves on, as Faust does."""
    for event in batch:
        event.ack()
    return batch


async def _hand_over(finisher: OrderedFinisher, batch: list[FakeEvent], finish: Callable[[], Any]) -> None:
    """What the agent's loop body does with a batch: submit it, then move on (the stream lets go of it)."""
    await finisher.submit(batch, finish)
    _received(batch)


@run
async def test_a_batch_is_acknowledged_only_after_its_finish_returned() -> None:
    release = asyncio.Event()
    finished: list[str] = []

    async def finish() -> None:
        await release.wait()
        finished.append("a")

    batch = _batch(0)
    async with OrderedFinisher("test") as finisher:
        await _hand_over(finisher, batch, finish)
        await asyncio.sleep(0.01)
        assert _acked(batch) == [False, False, False]  # the stream let go, the finisher still holds
        release.set()
        await finisher.wait()
    assert finished == ["a"]
    assert _acked(batch) == [True, True, True]


@run
async def test_batches_finish_one_at_a_time_in_submission_order() -> None:
    order: list[int] = []
    running = 0

    def finish_of(i: int, delay: float) -> object:
        async def finish() -> None:
            nonlocal running
            running += 1
            assert running == 1, "two batches finishing at once"
            await asyncio.sleep(delay)
            order.append(i)
            running -= 1
        return finish

    batches = [_batch(3 * i) for i in range(4)]
    async with OrderedFinisher("test") as finisher:
        for i, batch in enumerate(batches):
            await _hand_over(finisher, batch, finish_of(i, 0.02 if i % 2 == 0 else 0.0))  # type: ignore[arg-type]
    assert order == [0, 1, 2, 3]
    assert all(all(_acked(batch)) for batch in batches)


@run
async def test_a_failed_batch_stays_unacknowledged_and_the_next_submit_raises_its_error() -> None:
    async def fails() -> None:
        raise ConnectionError("Kafka refused the produce request")

    async def never_called() -> None:
        raise AssertionError("a batch after a failed one must not run")

    failed, after = _batch(0), _batch(3)
    finisher = OrderedFinisher("test")
    await _hand_over(finisher, failed, fails)
    with pytest.raises(ConnectionError):
        await finisher.submit(after, never_called)
    _received(after)
    assert _acked(failed) == [False, False, False]
    assert _acked(after) == [False, False, False]


@run
async def test_leaving_normally_waits_for_the_last_batch() -> None:
    async def slow() -> None:
        await asyncio.sleep(0.05)

    batch = _batch(0)
    async with OrderedFinisher("test") as finisher:
        await _hand_over(finisher, batch, slow)
    assert _acked(batch) == [True, True, True]  # a graceful stop commits the last batch


@run
async def test_leaving_on_an_error_cancels_the_last_batch_unacknowledged() -> None:
    started = asyncio.Event()

    async def hangs() -> None:
        started.set()
        await asyncio.sleep(60)

    batch = _batch(0)
    with pytest.raises(RuntimeError):
        async with OrderedFinisher("test") as finisher:
            await _hand_over(finisher, batch, hangs)
            await started.wait()
            raise RuntimeError("the agent crashed")
    assert _acked(batch) == [False, False, False]


@run
async def test_a_stop_that_outlasts_the_drain_timeout_leaves_the_batch_unacknowledged() -> None:
    async def hangs() -> None:
        await asyncio.sleep(60)

    batch = _batch(0)
    async with OrderedFinisher("test", drain_timeout_s=0.05) as finisher:
        await _hand_over(finisher, batch, hangs)
    assert _acked(batch) == [False, False, False]
