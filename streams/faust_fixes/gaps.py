"""Offsets the fetcher skipped are never counted as acknowledged.

When a fetched offset is more than one past the last one read, Faust records the offsets in between as a "gap" and
treats them as acknowledged (``Consumer._add_gap``): on a compacted topic, or one with transaction markers, those
offsets hold no record to process. finpulse's source topics are neither, so a jump means records this worker has
not processed, and counting them would commit past them: a silent loss. Such jumps come from records delivered
while a restarted worker is still seeking to its committed offsets (``streams/faust_fixes/seek_first.py`` prevents
that case). Here a gap is only logged; the offsets in it count once their records are processed and acknowledged,
and until then the commit waits below them: a worker can stall on such a gap, but a restart re-delivers the records
and scores them again, idempotently.
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
