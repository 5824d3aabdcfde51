"""``commit_only_contiguous`` against Faust's own ``Consumer._new_offset``."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP

from finpulse.streams.faust_fixes.contiguous import commit_only_contiguous

TOPIC = TP("news.raw", 0)


class Offsets:
    """The state ``Consumer._new_offset`` reads and writes, with Faust's own method bound to it."""

    def __init__(self, committed: int | None, acked: list[int]) -> None:
        self._committed_offset: dict[Any, int | None] = defaultdict(lambda: None)
        self._committed_offset[TOPIC] = committed
        self._acked: dict[Any, list[int]] = defaultdict(list)
        self._acked[TOPIC] = list(acked)
        self._acked_index: dict[Any, set[int]] = defaultdict(set)
        self._acked_index[TOPIC] = set(acked)
        self._gap: dict[Any, list[Any]] = defaultdict(list)  # no gaps: streams/faust_fixes/gaps.py records none

    def _new_offset(self, tp: Any) -> int | None:
        result: int | None = FaustConsumer._new_offset(self, tp)  # type: ignore[arg-type]
        return result

    def ack(self, offset: int) -> None:
        self._acked[TOPIC].append(offset)
        self._acked_index[TOPIC].add(offset)


def test_faust_alone_commits_past_the_unacknowledged_committed_offset() -> None:
    # The hole this module closes: 49 is the next offset to read, only 50 and 51 are acknowledged.
    assert Offsets(committed=49, acked=[50, 51])._new_offset(TOPIC) == 52
    assert Offsets(committed=0, acked=[1, 2])._new_offset(TOPIC) == 3


def test_nothing_is_committed_until_the_committed_offset_is_acknowledged() -> None:
    offsets = Offsets(committed=49, acked=[50, 51])
    commit_only_contiguous(offsets)
    assert offsets._new_offset(TOPIC) is None
    assert offsets._acked[TOPIC] == [50, 51], "the acknowledged offsets must wait, not be dropped"
    offsets.ack(49)
    assert offsets._new_offset(TOPIC) == 52


def test_a_committed_offset_of_zero_is_guarded_too() -> None:
    offsets = Offsets(committed=0, acked=[1, 2])
    commit_only_contiguous(offsets)
    assert offsets._new_offset(TOPIC) is None
    offsets.ack(0)
    assert offsets._new_offset(TOPIC) == 3


def test_a_run_that_starts_at_the_committed_offset_commits_up_to_its_first_hole() -> None:
    offsets = Offsets(committed=10, acked=[10, 11, 12, 14])
    commit_only_contiguous(offsets)
    assert offsets._new_offset(TOPIC) == 13
    assert offsets._acked[TOPIC] == [14]
    offsets._committed_offset[TOPIC] = 13  # what Faust records once that commit went through
    assert offsets._new_offset(TOPIC) is None


def test_without_a_committed_offset_faust_decides() -> None:
    offsets = Offsets(committed=None, acked=[5, 6])
    commit_only_contiguous(offsets)
    assert offsets._new_offset(TOPIC) == 7
