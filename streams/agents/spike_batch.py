"""One batch of the spike agent's input, counted in memory and written once per key.

Every article yields an observation for the ``market`` key and one per ticker. Processed one at a time,
each observation rewrote its key's whole entry (state and evidence headlines) to the ``spike-state``
changelog: the busiest key, ``market``, once per article. :class:`SpikeBatch` reads a key's entry once,
applies the batch's observations to it in arrival order, and writes it once at the end of the batch. The
counted ids of the batch are checked before the table's, so a batch counts exactly what one-at-a-time
processing counts, and they are written after the states (as before: a crash in between re-counts
nothing that was not stored, and re-sends an alert rather than losing it).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from finpulse.contracts.records import SentimentObservation
from finpulse.streams.channels import in_event
from finpulse.streams.detect.counted import CountedIds
from finpulse.streams.detect.entry import SpikeEntry, Update, update
from finpulse.streams.detect.spikes import SpikeDetector


@dataclass(frozen=True)
class Counted:
    """An observation counted by the batch: the entry before it and the :class:`Update` it made."""

    before: SpikeEntry
    update: Update


class SpikeBatch:
    """Entries changed by one batch, each written once by :meth:`flush` into the partition of its last event."""

    def __init__(self, table: Mapping[str, Any], counted: CountedIds, detector: SpikeDetector, top_n: int) -> None:
        self._table = table
        self._counted = counted
        self._detector = detector
        self._top_n = top_n
        self._entries: dict[str, tuple[SpikeEntry, Any]] = {}  # key → (entry, event whose partition it goes to)
        self._ids: dict[tuple[str, str], tuple[float, Any]] = {}  # (key, article id) → (window, event)
        self.new_keys = 0  # keys this batch created (the table's bound counts them)

    def entry(self, key: str) -> SpikeEntry | None:
        """The key's entry as this batch left it; None when neither the batch nor the table has one."""
        if key in self._entries:
            return self._entries[key][0]
        value = self._table.get(key)
        return None if value is None else SpikeEntry.load(value, self._detector, key)

    def put(self, key: str, entry: SpikeEntry, event: Any) -> None:
        self._entries[key] = (entry, event)

    def count(self, event: Any, obs: SentimentObservation, now: float) -> Counted | None:
        """Count ``obs`` into its key's entry; None when the article was already counted for the key."""
        if (obs.key, obs.article_id) in self._ids:
            return None
        existing = self.entry(obs.key)
        before = existing or SpikeEntry(self._detector.new_state(obs.key))
        updated = update(before, obs, self._detector, self._top_n, self._counted, now=now)
        if updated is None:
            return None
        if existing is None:
            self.new_keys += 1
        self.put(obs.key, updated.entry, event)
        self._ids[(obs.key, obs.article_id)] = (updated.window_start, event)
        return Counted(before, updated)

    def flush(self, table: MutableMapping[str, Any]) -> tuple[int, int]:
        """Write every changed entry (with the partition it goes to), then every counted id; returns (entries, ids)
        written."""
        for key, (entry, event) in self._entries.items():
            entry.partition = event.message.partition
            with in_event(event):
                table[key] = entry.dump()
        for (key, article_id), (window, event) in self._ids.items():
            with in_event(event):
                self._counted.add(key, article_id, window)
        written = len(self._entries), len(self._ids)
        self._entries.clear()
        self._ids.clear()
        return written
