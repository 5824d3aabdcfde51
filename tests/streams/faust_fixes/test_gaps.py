"""``refuse_offset_gaps``: offsets a fetch jumped over are logged, never recorded as acknowledged."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from faust.types import TP

from finpulse.streams.faust_fixes.gaps import refuse_offset_gaps


class Consumer:
    """The part of a Faust consumer the patch touches: ``_add_gap`` fills ``_gap`` (offsets taken as acked)."""

    def __init__(self) -> None:
        self._gap: dict[Any, list[tuple[int, int]]] = {}

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        self._gap.setdefault(tp, []).append((offset_from, offset_to))


def test_a_fetch_gap_is_logged_and_not_taken_as_acknowledged(caplog: pytest.LogCaptureFixture) -> None:
    consumer = Consumer()
    tp = TP("news.raw", 2)
    asyncio.run(consumer._add_gap(tp, 3, 4))
    assert consumer._gap == {tp: [(3, 4)]}  # what Faust would do: offsets 3..4 count as acknowledged
    refuse_offset_gaps(consumer)
    with caplog.at_level(logging.WARNING, logger="finpulse.streams.faust_fixes.gaps"):
        asyncio.run(consumer._add_gap(tp, 75, 77))
    assert consumer._gap == {tp: [(3, 4)]}, "the gap 75..77 must not be recorded"
    assert "news.raw[2]: fetch jumped over offsets 75..77" in caplog.text
