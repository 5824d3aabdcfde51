"""The throughput run's polling of the document count: fast at both ends, sparse in between."""

from __future__ import annotations

import pytest

from finpulse.bench.pipeline import MAX_COUNT_WAIT_S, POLL_S, count_wait_s


def test_polls_fast_until_a_rate_is_known() -> None:
    assert count_wait_s(1000, 0.0) == POLL_S


def test_waits_a_quarter_of_the_remaining_time_between_the_bounds() -> None:
    assert count_wait_s(100, 200.0) == pytest.approx(0.125)
    assert count_wait_s(100_000, 100.0) == MAX_COUNT_WAIT_S
    assert count_wait_s(5, 100.0) == POLL_S


def test_the_last_document_is_not_overshot_unless_the_rate_quadruples() -> None:
    for remaining in (1, 10, 37, 200, 5000):
        for rate in (20.0, 100.0, 480.0):
            wait = count_wait_s(remaining, rate)
            assert wait * 4 * rate <= max(remaining, POLL_S * 4 * rate) + 1e-9
