"""The worker caps numpy's BLAS threads (stream.blas_threads) before it starts."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from finpulse.settings import Settings
from finpulse.streams.worker import limit_blas_threads


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_limit_blas_threads_caps_the_blas_pools() -> None:
    import numpy as np

    _ = np.ones((4, 4)) @ np.ones(4)  # numpy's BLAS is loaded
    if not _blas_threads():
        pytest.skip("numpy is built without a BLAS that threadpoolctl can see")
    with threadpool_limits(limits=None):  # restores the process's limits afterwards
        limit_blas_threads(1)
        assert _blas_threads() and all(n == 1 for n in _blas_threads())


def test_zero_leaves_the_library_default() -> None:
    before = _blas_threads()
    limit_blas_threads(0)
    assert _blas_threads() == before


def test_one_blas_thread_is_the_default_setting() -> None:
    assert Settings().stream.blas_threads == 1
