"""``reset_below_log_start``: a fetch jump from the committed offset to the log start moves the commit floor up to
it (the integration test on a broker is tests/faults/test_log_start.py); any other jump stays a refused gap."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import pytest
from faust.types import TP

from finpulse.streams.faust_fixes.log_start import reset_below_log_start

TOPIC = TP("news.scored", 0)


class Consumer:
    """The part of a Faust consumer the patch reads and writes; ``_add_gap`` records what reached gaps.py."""

    def __init__(self, committed: int | None, log_start: int) -> None:
        self._committed_offset: dict[Any, int | None] = defaultdict(lambda: None)
        if committed is not None:
            self._committed_offset[TOPIC] = committed
        self.log_start = log_start
        self.gaps: list[tuple[int, int]] = []
        self.asked = 0

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        self.gaps.append((offset_from, offset_to))

    async def earliest_offsets(self, *partitions: Any) -> dict[Any, int]:
        self.asked += 1
        return {tp: self.log_start for tp in partitions}


def _jump(consumer: Consumer, offset_from: int, offset_to: int) -> list[str]:
    resets: list[str] = []
    reset_below_log_start(consumer, resets.append)
    asyncio.run(consumer._add_gap(TOPIC, offset_from, offset_to))
    return resets


def test_a_jump_from_the_committed_offset_to_the_log_start_moves_the_floor(caplog: pytest.LogCaptureFixture) -> None:
    consumer = Consumer(committed=5, log_start=10)
    with caplog.at_level(logging.WARNING, logger="finpulse.streams.faust_fixes.log_start"):
        resets = _jump(consumer, 6, 10)
    assert consumer._committed_offset[TOPIC] == 10 and resets == ["news.scored"] and consumer.gaps == []
    assert "committed offset 5 is below the log start 10" in caplog.text


def test_a_jump_inside_the_log_stays_a_refused_gap() -> None:
    consumer = Consumer(committed=5, log_start=0)  # the records in between exist: they were skipped, not deleted
    assert _jump(consumer, 6, 10) == []
    assert consumer._committed_offset[TOPIC] == 5 and consumer.gaps == [(6, 10)]


def test_a_jump_past_the_committed_offset_does_not_ask_the_broker() -> None:
    consumer = Consumer(committed=5, log_start=40)
    assert _jump(consumer, 30, 40) == []  # the jump starts after records read since the commit: not a stranded floor
    assert consumer.asked == 0 and consumer.gaps == [(30, 40)]
