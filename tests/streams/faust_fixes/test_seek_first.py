"""``deliver_after_seek``: stream partitions resume only once seeked; changelogs resume at once."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from faust.types import TP

from finpulse.streams.faust_fixes.seek_first import deliver_after_seek

RAW = [TP("news.raw", p) for p in range(2)]
CHANGELOG = TP("spike-state-changelog", 0)


class Consumer:
    """The part of a Faust consumer the patch touches: the active (fetched and delivered) partitions,
    a seek that takes a while, committed offsets and read positions."""

    def __init__(self, committed: dict[Any, int], positions: dict[Any, int]) -> None:
        self.active: set[Any] = set()
        self.active_during_seek: set[Any] | None = None
        self._committed_offset: dict[Any, int | None] = defaultdict(lambda: None)
        self._committed_offset.update(committed)
        self.positions = positions
        self.assigned = {*RAW, CHANGELOG}

    def resume_partitions(self, tps: Iterable[Any]) -> None:
        self.active.update(tps)

    def pause_partitions(self, tps: Iterable[Any]) -> None:
        self.active.difference_update(tps)

    async def perform_seek(self) -> None:
        await asyncio.sleep(0.01)  # the fetcher keeps running meanwhile
        self.active_during_seek = set(self.active)

    def _is_changelog_tp(self, tp: Any) -> bool:
        return bool(tp.topic.endswith("-changelog"))

    def assignment(self) -> set[Any]:
        return set(self.assigned)

    async def position(self, tp: Any) -> int:
        return self.positions[tp]


def _consumer(committed: dict[Any, int] | None = None, positions: dict[Any, int] | None = None) -> Consumer:
    consumer = Consumer({tp: 40 for tp in RAW} if committed is None else committed, positions or {})
    deliver_after_seek(consumer)
    return consumer


def test_stream_partitions_are_resumed_only_after_the_seek() -> None:
    consumer = _consumer()
    consumer.resume_partitions([CHANGELOG])
    assert consumer.active == {CHANGELOG}, "changelog partitions resume at once (table recovery)"
    consumer.resume_partitions(RAW)  # what Faust does first when recovery ends ...
    assert consumer.active == {CHANGELOG}
    asyncio.run(consumer.perform_seek())  # ... and then the seek
    assert consumer.active_during_seek == {CHANGELOG}, "nothing of news.raw may be delivered during the seek"
    assert consumer.active == {CHANGELOG, *RAW}


def test_a_partition_paused_before_the_seek_stays_paused() -> None:
    consumer = _consumer()
    consumer.resume_partitions(RAW)
    consumer.pause_partitions([RAW[1]])  # e.g. a rebalance started
    asyncio.run(consumer.perform_seek())
    assert consumer.active == {RAW[0]}


def test_only_partitions_still_assigned_are_resumed() -> None:
    consumer = _consumer()
    consumer.resume_partitions(RAW)
    consumer.assigned.discard(RAW[1])
    asyncio.run(consumer.perform_seek())
    assert consumer.active == {RAW[0]}


def test_a_seek_without_held_partitions_resumes_nothing() -> None:
    consumer = _consumer()
    asyncio.run(consumer.perform_seek())
    assert consumer.active == set()


def test_a_partition_never_committed_gets_its_read_position_as_commit_floor() -> None:
    consumer = _consumer(committed={RAW[0]: 40}, positions={RAW[0]: 99, RAW[1]: 7})
    asyncio.run(consumer.perform_seek())
    assert consumer._committed_offset[RAW[0]] == 40, "a committed offset is kept"
    assert consumer._committed_offset[RAW[1]] == 7
    assert consumer._committed_offset[CHANGELOG] is None, "changelog partitions are not committed by streams"
