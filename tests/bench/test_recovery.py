"""``finpulse bench recovery`` on the embedded servers: a worker restores its spike table after a restart from either
store, and a RocksDB worker finds it on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from finpulse.bench.recovery import SAMPLE_KEYS, lines, measure

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_a_restarted_worker_has_its_table_back(stack, store: str, tmp_path: Path) -> None:  # noqa: ANN001
    run = measure(stack.settings, store, 500, tmp_path, timeout_s=240)
    assert run.verified_keys == SAMPLE_KEYS, run
    assert 0 < run.empty_s and 0 < run.cold_s and 0 < run.restart_s
    if store == "rocksdb":
        assert any(path.suffix == ".sst" or path.name == "CURRENT" for path in tmp_path.rglob("*")), \
            "the RocksDB store keeps the table on disk"
    assert lines([run])[2].startswith(f"| {store} | 500 |")
