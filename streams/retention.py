"""Bounded Faust tables: keys idle too long, and the least recently used ones over a count cap, are deleted.

A table key lives in one changelog partition: the partition of the input event that wrote it. Faust routes a write
or a delete to the partition of the *current* event, and a timer has none, so :class:`BoundedTable` deletes each key
inside a stand-in event of that partition (:class:`PartitionEvent`). The delete goes through the table
(``del table[key]``), so the changelog gets its tombstone and a restarted worker does not bring the key back.
Which partition a key is in comes from its value (the agents store it there); a value written before they did
falls back to the producers' default key partitioner (murmur2), which placed the input record that wrote it.

The cap is kept by a count of the keys added since the last sweep: once over the cap, the table is swept down to
:data:`LOW_WATER` of it, so a table at its cap is not scanned again for every new key.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from finpulse.streams.channels import in_event

logger = logging.getLogger(__name__)

LOW_WATER = 0.9  # a sweep over the cap leaves this share of it, so the next one waits for a tenth of the cap

#: (key, value) → the key's changelog partition as its value records it, or None when the value does not say
PartitionOf = Callable[[Any, Any], int | None]


@dataclass(frozen=True)
class SourceMessage:
    topic: str
    partition: int


@dataclass(frozen=True)
class PartitionEvent:
    """Stands for an input event of ``message.partition`` while a timer deletes table keys (see the module)."""

    message: SourceMessage


def stale_keys(last_used: Iterable[tuple[Any, float]], now: float, idle_s: float, max_count: int) -> list[Any]:
    """Keys last used ``idle_s`` or longer before ``now``, then, while more than ``max_count`` remain, the least
    recently used ones down to ``LOW_WATER * max_count``; ``last_used`` holds the keys that may go."""
    ordered = sorted(last_used, key=lambda item: item[1])
    idle = [key for key, used in ordered if now - used >= idle_s]
    rest = ordered[len(idle):]
    over = len(rest) - max_count
    if over > 0:
        over = len(rest) - int(max_count * LOW_WATER)
    return idle + [key for key, _ in rest[: max(0, over)]]


def default_partition(key: Any, partitions: int) -> int:
    """The partition the producers' default partitioner (murmur2 of the key bytes) gives ``key``."""
    from aiokafka.partitioner import murmur2

    raw = key if isinstance(key, bytes) else str(key).encode()
    return (murmur2(raw) & 0x7FFFFFFF) % partitions


class BoundedTable:
    """Idle expiry and a count cap for one Faust table (see the module).

    ``last_used(value)`` is the wall-clock epoch a value was last used; ``keep(value)`` true keeps a key whatever
    its age (an open alert); ``after_delete(keys by partition)`` deletes what goes with the keys (called inside
    the same stand-in events' partitions by the caller's own :meth:`deleting`).
    """

    def __init__(
        self, table: Any, source_topic: str, partitions: int, *, idle_s: float, max_count: int,
        last_used: Callable[[Any], float], partition_of: PartitionOf,
        keep: Callable[[Any], bool] = lambda _value: False,
        after_delete: Callable[[Mapping[int, list[Any]]], None] | None = None,
    ) -> None:
        self.table, self.source_topic, self.partitions = table, source_topic, partitions
        self.idle_s, self.max_count = idle_s, max_count
        self._last_used, self._partition_of, self._keep, self._after_delete = last_used, partition_of, keep, after_delete
        self.size = 0  # keys at the last sweep plus those added since (a lower bound of the table's size)
        self.deleted = 0

    def added(self, now: float, count: int = 1) -> int:
        """Note ``count`` new keys; sweeps at once when that takes the table over its cap. Returns keys deleted."""
        self.size += count
        return self.expire(now) if self.size > self.max_count else 0

    def expire(self, now: float) -> int:
        """Delete the idle keys and those over the cap, each in its own partition; returns how many went."""
        candidates: list[tuple[Any, float]] = []
        partition_of: dict[Any, int] = {}
        total = 0
        for key, value in list(self.table.items()):
            total += 1
            if value is None or self._keep(value):
                continue
            candidates.append((key, self._last_used(value)))
            recorded = self._partition_of(key, value)
            partition_of[key] = default_partition(key, self.partitions) if recorded is None else recorded
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for key in stale_keys(candidates, now, self.idle_s, self.max_count):
            by_partition[partition_of[key]].append(key)
        gone = self.delete(by_partition)
        if self._after_delete is not None and by_partition:
            self._after_delete(by_partition)
        self.size = total - gone
        if gone:
            logger.info("%s: deleted %d of %d keys (idle %.0f s or over the cap of %d)",
                        getattr(self.table, "name", "table"), gone, total, self.idle_s, self.max_count)
        return gone

    def delete(self, by_partition: Mapping[int, list[Hashable]]) -> int:
        """``del table[key]`` for each key still there, inside a stand-in event of its partition."""
        gone = 0
        for partition, keys in by_partition.items():
            with self.deleting(partition):
                for key in keys:
                    if key in self.table:
                        del self.table[key]
                        gone += 1
        self.deleted += gone
        return gone

    def deleting(self, partition: int) -> Any:
        """A context in which table writes go to changelog ``partition`` (for what goes with the keys)."""
        return in_event(PartitionEvent(SourceMessage(self.source_topic, partition)))
