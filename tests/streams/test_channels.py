"""The ack guards of ``streams/channels.py`` against Faust's ack-on-close behaviour.

Faust's ``take_events`` and ``events`` acknowledge the item they last yielded when their generator
closes, finished or not. The fake stream below does exactly that with real Faust messages, so the
refcount logic the guards rely on is Faust's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from finpulse.streams.channels import batches, each_event

from .fake_events import FakeEvent, make_event


class FakeStream:
    def __init__(self, count: int, batch: int) -> None:
        self.items = [make_event(offset) for offset in range(count)]
        self.batch = batch
        self.enable_acks = True  # Faust's flag: the stream acks what its own iteration (or drainer) passes on
        self.active: list[AsyncGenerator[object, None]] = []

    def take_events(self, max_: int, within: float) -> AsyncGenerator[list[FakeEvent], None]:
        agen = self._take_events(max_)
        self.active.append(agen)  # Faust tracks its buffering generators to close them on stop
        return agen

    async def _take_events(self, max_: int) -> AsyncGenerator[list[FakeEvent], None]:
        for start in range(0, len(self.items), max_):
            chunk = self.items[start:start + max_]
            try:
                yield chunk
            finally:
                for event in chunk:
                    event.ack()

    def events(self) -> AsyncGenerator[FakeEvent, None]:
        agen = self._events()
        self.active.append(agen)
        return agen

    async def _events(self) -> AsyncGenerator[FakeEvent, None]:
        for event in self.items:
            try:
                yield event
            finally:
                event.ack()

    async def on_stop(self) -> None:
        """Faust's ``Stream.on_stop``: close the buffering generators from outside, whatever the agent is doing."""
        for agen in self.active:
            await agen.aclose()

    def acked(self) -> list[int]:
        return [e.message.offset for e in self.items if e.message.acked]


async def _consume_batches(stream: FakeStream, fail_at: int | None) -> None:
    async with batches(stream, stream.batch, 0.01) as taken:
        async for events in taken:
            if fail_at is not None and any(e.message.offset == fail_at for e in events):
                raise RuntimeError("sink down")


async def _consume_each(stream: FakeStream, fail_at: int | None) -> None:
    async with each_event(stream) as incoming:
        async for event in incoming:
            if event.message.offset == fail_at:
                raise RuntimeError("sink down")


def test_finished_batches_are_acknowledged() -> None:
    stream = FakeStream(10, batch=4)
    asyncio.run(_consume_batches(stream, fail_at=None))
    assert stream.acked() == list(range(10))


def test_an_unfinished_batch_stays_unacknowledged() -> None:
    stream = FakeStream(12, batch=4)
    with pytest.raises(RuntimeError, match="sink down"):
        asyncio.run(_consume_batches(stream, fail_at=5))
    assert stream.acked() == [0, 1, 2, 3]  # the batch 4..7 was not finished; 8.. never taken


def test_a_cancelled_batch_stays_unacknowledged() -> None:
    stream = FakeStream(8, batch=4)
    entered = asyncio.Event()

    async def consume() -> None:
        async with batches(stream, stream.batch, 0.01) as taken:
            async for events in taken:
                if events[0].message.offset == 4:
                    entered.set()
                    await asyncio.sleep(60)  # e.g. a bulk write waiting out an outage

    async def main() -> None:
        task = asyncio.create_task(consume())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert stream.acked() == [0, 1, 2, 3]


def test_each_event_holds_only_the_unfinished_event() -> None:
    stream = FakeStream(6, batch=1)
    with pytest.raises(RuntimeError, match="sink down"):
        asyncio.run(_consume_each(stream, fail_at=3))
    assert stream.acked() == [0, 1, 2]
    finished = FakeStream(3, batch=1)
    asyncio.run(_consume_each(finished, fail_at=None))
    assert finished.acked() == [0, 1, 2]


@pytest.mark.parametrize("fail_at", [None, 1])
def test_the_stream_acks_nothing_once_the_guard_closed(fail_at: int | None) -> None:
    """take_events' background drainer keeps pulling queued events until the stream stops; closing
    take_events turns acks back on, so the guard turns them off: queued events stay unacknowledged."""
    for consume in (_consume_batches, _consume_each):
        stream = FakeStream(count=8, batch=4)
        if fail_at is None:
            asyncio.run(consume(stream, None))
        else:
            with pytest.raises(RuntimeError):
                asyncio.run(consume(stream, fail_at))
        assert stream.enable_acks is False


@pytest.mark.parametrize("finish", [True, False])
def test_a_stop_that_closes_the_source_mid_batch_acks_only_a_finished_batch(finish: bool) -> None:
    """Faust's Stream.on_stop closes take_events (which acks its batch) while the agent still writes the
    batch's outputs. The batch is acknowledged only if the agent then finishes it, never by the close."""
    for batched in (True, False):
        stream = FakeStream(8, batch=4)
        entered, release = asyncio.Event(), asyncio.Event()

        async def consume(stream: FakeStream = stream, batched: bool = batched,
                          entered: asyncio.Event = entered, release: asyncio.Event = release) -> None:
            guard = batches(stream, stream.batch, 0.01) if batched else each_event(stream)
            async with guard as incoming:
                async for item in incoming:
                    first = item[0] if batched else item
                    if first.message.offset == 4:
                        entered.set()
                        await release.wait()  # a bulk write in flight when the stop begins

        async def main(stream: FakeStream = stream, entered: asyncio.Event = entered,
                       release: asyncio.Event = release) -> None:
            task = asyncio.create_task(consume())
            await entered.wait()
            await stream.on_stop()
            if finish:
                release.set()
                await task
            else:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

        asyncio.run(main())
        finished = [0, 1, 2, 3] + ([4, 5, 6, 7] if finish and batched else [4] if finish else [])
        assert stream.acked() == finished, batched
