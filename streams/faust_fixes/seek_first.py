"""Stream partitions deliver records only once they have been positioned at their committed offsets.

When a worker's table recovery ends, Faust resumes the stream partitions first and seeks them to their
committed offsets second (``Recovery.on_recovery_completed``: ``resume_partitions``, then
``perform_seek``). Records fetched in between are delivered while the seek is in flight, and the seek
then resets Faust's read offsets under the delivery loop. A partition whose first records were delivered
during the seek shows a fetch jump right after it, and its commit then stops for good one offset past the
committed one, its records never scored (a stall; without ``streams/faust_fixes/gaps.py``, a loss).

Here a stream partition that Faust resumes is held back until the next ``perform_seek`` has finished,
and only then resumed, so its first delivered record is the one at its committed offset. Changelog
partitions (table recovery) are resumed at once, as before. A partition that has never had an offset
committed gets, as its commit floor, the position it will be read from: the first commit can then not
start past a record that was delivered but not yet acknowledged (``streams/faust_fixes/contiguous.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger(__name__)

POSITION_TIMEOUT_S = 30.0


def deliver_after_seek(consumer: Any) -> None:
    """Make ``consumer`` (a Faust consumer) resume stream partitions only after they were seeked."""
    resume = consumer.resume_partitions
    pause = consumer.pause_partitions
    perform_seek = consumer.perform_seek
    held: set[Any] = set()

    def stream_partitions(tps: Iterable[Any]) -> set[Any]:
        return {tp for tp in tps if not consumer._is_changelog_tp(tp)}

    def resume_partitions(tps: Iterable[Any]) -> None:
        wanted = set(tps)
        streams = stream_partitions(wanted)
        if streams:
            logger.debug("holding %d stream partitions until they are seeked", len(streams))
        held.update(streams)
        resume(wanted - streams)

    def pause_partitions(tps: Iterable[Any]) -> None:
        paused = set(tps)
        held.difference_update(paused)
        pause(paused)

    async def seek_then_deliver() -> None:
        await perform_seek()
        assigned = set(consumer.assignment())
        await _floor_uncommitted(consumer, stream_partitions(assigned))
        ready = held & assigned
        held.clear()
        if ready:
            resume(ready)

    consumer.resume_partitions = resume_partitions
    consumer.pause_partitions = pause_partitions
    consumer.perform_seek = seek_then_deliver


async def _floor_uncommitted(consumer: Any, tps: set[Any]) -> None:
    """Give each of ``tps`` without a committed offset its read position as the commit floor."""
    committed = consumer._committed_offset
    for tp in tps:
        if committed.get(tp) is not None:
            continue
        try:
            position = await asyncio.wait_for(consumer.position(tp), POSITION_TIMEOUT_S)
        except TimeoutError:
            logger.warning("%s[%d]: no read position in %.0f s; its first commit has no floor",
                           tp.topic, tp.partition, POSITION_TIMEOUT_S)
            continue
        if position is not None and committed.get(tp) is None:
            committed[tp] = int(position)
