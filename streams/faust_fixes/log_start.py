"""A partition whose committed offset fell below the log start resumes committing from the log start.

When retention deleted records a stopped worker had not read, its committed offset lies below the partition's log
start: the fetch is answered OFFSET_OUT_OF_RANGE, aiokafka moves the read position to the log start
(``auto_offset_reset="earliest"``) and the first record delivered jumps away from the committed offset. Faust then
waits for acknowledgements of the offsets in between, which no longer exist (and ``contiguous.py`` refuses a commit
that does not start at the committed offset): the partition is read but never committed again, and every restart
reads it all again. Here a fetch jump that starts at the committed offset is checked against the broker's log start
(ListOffsets earliest); when the log start lies above the committed offset, the partition's commit floor moves to
the log start, with a WARNING and a call of ``on_reset`` (a metric). Any other jump goes on to ``gaps.py``, which
keeps refusing to count it as processed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

LOG_START_TIMEOUT_S = 30.0


def reset_below_log_start(consumer: Any, on_reset: Callable[[str], None]) -> None:
    """Make ``consumer`` (a Faust consumer, its gaps already refused) move a commit floor stranded below the log
    start up to it."""
    add_gap = consumer._add_gap

    async def add_gap_checked(tp: Any, offset_from: int, offset_to: int) -> None:
        committed = consumer._committed_offset.get(tp)
        if committed is not None and offset_from <= committed + 1:
            start = await _log_start(consumer, tp)
            if start is not None and committed < start <= offset_to:
                logger.warning("%s[%d]: committed offset %d is below the log start %d (retention deleted the records "
                               "in between); committing from the log start", tp.topic, tp.partition, committed, start)
                consumer._committed_offset[tp] = start
                on_reset(tp.topic)
                return
        await add_gap(tp, offset_from, offset_to)

    consumer._add_gap = add_gap_checked


async def _log_start(consumer: Any, tp: Any) -> int | None:
    """The partition's first offset as the broker reports it (None when it does not answer in time)."""
    try:
        starts = await asyncio.wait_for(consumer.earliest_offsets(tp), LOG_START_TIMEOUT_S)
    except TimeoutError:
        logger.warning("%s[%d]: no log start from the broker in %.0f s", tp.topic, tp.partition, LOG_START_TIMEOUT_S)
        return None
    start = starts.get(tp)
    return int(start) if start is not None else None
