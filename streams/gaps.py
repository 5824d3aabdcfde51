"""Offsets the fetcher skipped are never counted as acknowledged.

When a fetched offset is more than one past the last one read, Faust records the offsets in between
as a "gap" and treats them as acknowledged (``Consumer._add_gap``): on a compacted topic, or one with
transaction markers, those offsets hold no record to process. finpulse's source topics are neither, so
a jump means records this worker has not processed: right after a restarted worker seeks to its committed
offsets, the fetch can hand over records past the seek position, and the ones in between may never
come (restart test, 2026-11-29: jumps of 3–4 offsets that were delivered later, and jumps of about 45
offsets, logged as the worker became ready, whose records never came; before this module the commit
then passed them, a silent loss). Here a gap is only logged; the offsets in it count once their records
are processed and acknowledged, and until then the commit waits below them: the worker can stall on
such a gap, but a restart re-delivers the records and scores them again, idempotently.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def refuse_offset_gaps(consumer: Any) -> None:
    """Make ``consumer`` (a Faust consumer) log fetch gaps instead of treating their offsets as acknowledged."""

    async def add_gap(tp: Any, offset_from: int, offset_to: int) -> None:
        logger.warning("%s[%d]: fetch jumped over offsets %d..%d; they count only once processed",
                       tp.topic, tp.partition, offset_from, offset_to)

    consumer._add_gap = add_gap
