"""A commit never moves past an offset that was not acknowledged.

Faust 0.15 computes a partition's next commit (``Consumer._new_offset``) from the sorted acknowledged
offsets: the first run of consecutive ones, provided it starts right at the committed offset. Its test
for that is ``min(acked) - committed > 1``, while the committed offset is the *next* offset to read, so
a run that starts one past it passes: with offset 49 committed (next to read) and 50, 51 acknowledged,
it commits 52 and offset 49 is skipped. If 49 was still being processed when the worker stopped, it is
never processed: a lost record. It does not check at all while nothing was committed yet, or the committed
offset is 0.

Here a partition whose smallest acknowledged offset lies above its committed offset commits nothing
until the one at the committed offset is acknowledged.
"""

from __future__ import annotations

from typing import Any


def commit_only_contiguous(consumer: Any) -> None:
    """Make ``consumer`` (a Faust consumer) commit only runs that start at the committed offset."""
    new_offset = consumer._new_offset

    def contiguous_new_offset(tp: Any) -> int | None:
        acked = consumer._acked.get(tp)
        committed = consumer._committed_offset.get(tp)
        if acked and committed is not None and min(acked) > committed:
            return None
        result: int | None = new_offset(tp)
        return result

    consumer._new_offset = contiguous_new_offset
