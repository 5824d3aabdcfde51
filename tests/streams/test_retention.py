"""``BoundedTable``: which keys go (idle, then least recently used over the cap) and the partition each delete goes to."""

from __future__ import annotations

from typing import Any

from finpulse.streams.retention import LOW_WATER, BoundedTable, default_partition, stale_keys


class PartitionedTable(dict[Any, Any]):
    """A dict that records the partition of the current Faust event at each delete, as a table's changelog would."""

    def __init__(self) -> None:
        super().__init__()
        self.deletes: list[tuple[Any, int, str]] = []

    def __delitem__(self, key: Any) -> None:
        from faust.streams import current_event

        event = current_event()
        assert event is not None, "a table delete outside an event has no changelog partition"
        self.deletes.append((key, event.message.partition, event.message.topic))
        super().__delitem__(key)


def test_idle_keys_go_then_the_least_recently_used_down_to_the_low_water_mark() -> None:
    used = [(f"k{i}", float(i)) for i in range(100)]
    assert stale_keys(used, now=100.0, idle_s=1000.0, max_count=200) == []
    assert stale_keys(used, now=100.0, idle_s=90.0, max_count=200) == [f"k{i}" for i in range(11)]
    over = stale_keys(used, now=100.0, idle_s=1000.0, max_count=50)
    assert over == [f"k{i}" for i in range(100 - int(50 * LOW_WATER))], "the oldest go first"
    assert stale_keys(used, now=100.0, idle_s=1000.0, max_count=100) == [], "at the cap is not over it"


def test_each_key_is_deleted_in_its_own_partition_and_kept_keys_stay() -> None:
    table = PartitionedTable()
    for i in range(20):
        table[f"k{i}"] = {"used": float(i), "p": i % 3, "keep": i == 0}
    table["legacy"] = {"used": 0.0, "p": None, "keep": False}  # written before values recorded their partition
    gone_with: list[dict[int, list[Any]]] = []
    bounds = BoundedTable(table, "obs", 4, idle_s=5.0, max_count=100, last_used=lambda v: v["used"],
                          partition_of=lambda _k, v: v["p"], keep=lambda v: v["keep"], after_delete=gone_with.append)
    assert bounds.expire(now=20.0) == 16  # used < 15.0, except k0 (kept)
    assert set(table) == {"k0", *(f"k{i}" for i in range(16, 20))}
    expected = {(f"k{i}", i % 3, "obs") for i in range(1, 16)} | {("legacy", default_partition("legacy", 4), "obs")}
    assert set(table.deletes) == expected
    assert sorted(k for keys in gone_with[0].values() for k in keys) == sorted(k for k, _, _ in expected)
    assert bounds.size == 5


def test_adding_keys_over_the_cap_sweeps_at_once() -> None:
    table = PartitionedTable()
    bounds = BoundedTable(table, "obs", 4, idle_s=1e9, max_count=10, last_used=lambda v: v["used"],
                          partition_of=lambda _k, v: v["p"])
    for i in range(11):
        table[f"k{i}"] = {"used": float(i), "p": 1}
        bounds.added(now=float(i))
    assert len(table) == int(10 * LOW_WATER) and "k10" in table and "k0" not in table
    assert bounds.size == len(table)
