"""Which article ids a spike key has counted, one table entry per (key, article id).

A re-delivered or re-scored observation must not be counted twice, so the spike agent remembers the
article ids of each key's recent windows. They live in their own table, one small entry per id, so
counting an article writes a constant-size changelog record, however busy the key (the ``market``
key sees every article). Entries older than the window before the open one are expired by the
worker's timer: it lists them per key (:meth:`CountedIds.expired`) and the spike agent deletes them
inside stream iteration, where table writes are allowed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, MutableMapping

SEPARATOR = "\x1f"  # cannot occur in a ticker or an article id (both are validated printable text)


def counted_key(key: str, article_id: str) -> str:
    return f"{key}{SEPARATOR}{article_id}"


def split_key(entry_key: str) -> tuple[str, str]:
    key, _, article_id = entry_key.rpartition(SEPARATOR)
    return key, article_id


class CountedIds:
    """A view of a ``{counted_key: window_start}`` mapping (a Faust table in the worker, a dict in tests)."""

    def __init__(self, table: MutableMapping[str, float]) -> None:
        self._table = table

    def window_of(self, key: str, article_id: str) -> float | None:
        """The window ``article_id`` was counted in for ``key``, or None when it was not counted."""
        value = self._table.get(counted_key(key, article_id))
        return None if value is None else float(value)

    def add(self, key: str, article_id: str, window_start: float) -> None:
        self._table[counted_key(key, article_id)] = window_start

    def discard(self, key: str, article_ids: list[str], keep_after: float) -> int:
        """Delete the entries of ``article_ids`` still older than ``keep_after``; returns how many went."""
        gone = 0
        for article_id in article_ids:
            entry_key = counted_key(key, article_id)
            value = self._table.get(entry_key)
            if value is not None and float(value) < keep_after:
                del self._table[entry_key]
                gone += 1
        return gone

    def ids_of(self, keys: set[str]) -> dict[str, list[str]]:
        """The article ids counted for each of ``keys`` (scans the local table: for sweeps, not hot paths)."""
        found: dict[str, list[str]] = defaultdict(list)
        for entry_key in self._keys():
            key, article_id = split_key(entry_key)
            if key in keys:
                found[key].append(article_id)
        return dict(found)

    def count(self, key: str) -> int:
        """Ids counted for ``key`` in its recent windows (scans the local table: for views, not hot paths)."""
        return sum(1 for entry_key in self._keys() if split_key(entry_key)[0] == key)

    def expired(self, keep_after: Callable[[str], float | None], chunk: int = 1000) -> Iterator[tuple[str, list[str]]]:
        """``(key, article ids)`` chunks whose window is older than ``keep_after(key)`` (None: keep all)."""
        stale: dict[str, list[str]] = defaultdict(list)
        limits: dict[str, float | None] = {}
        for entry_key, window in list(self._table.items()):
            key, article_id = split_key(entry_key)
            if key not in limits:
                limits[key] = keep_after(key)
            limit = limits[key]
            if limit is not None and float(window) < limit:
                stale[key].append(article_id)
        for key, ids in stale.items():
            for start in range(0, len(ids), chunk):
                yield key, ids[start : start + chunk]

    def _keys(self) -> list[str]:
        return list(self._table.keys())
