"""``SpikeBatch``: a batch counts what one-at-a-time processing counts, with one state write per key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from finpulse.contracts.records import MARKET_KEY, SentimentObservation
from finpulse.settings import SpikeSettings
from finpulse.streams.agents.spike_batch import SpikeBatch
from finpulse.streams.detect.counted import CountedIds, split_key
from finpulse.streams.detect.entry import SpikeEntry, update
from finpulse.streams.detect.spikes import SpikeDetector

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NOW = (T0 + timedelta(hours=1)).timestamp()


@dataclass(frozen=True)
class Message:
    partition: int = 0


@dataclass(frozen=True)
class Event:  # the batch passes events on to in_event (the changelog partition of a write) and stores their partition
    offset: int
    message: Message = Message()


class LoggedTable(dict[str, Any]):
    """A dict that records every write, in order, into a log shared between tables."""

    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        super().__init__()
        self.name, self.log = name, log

    def __setitem__(self, key: str, value: Any) -> None:
        self.log.append((self.name, key))
        super().__setitem__(key, value)


def _observations() -> list[SentimentObservation]:
    """Articles on two tickers and the market over 3 windows, a burst of negatives, and re-deliveries."""
    out = []
    for i in range(120):
        negative = i % 9 == 0 or 90 <= i < 110
        for key in (("ABC" if i % 2 else "XYZ"), MARKET_KEY):
            out.append(SentimentObservation(
                key=key, article_id=f"{i:032x}", event_time=T0 + timedelta(seconds=i * 1.5), negative=negative,
                negative_score=0.9 if negative else 0.1, title=f"headline {i}", url=f"https://n/{i}"))
    return out + out[10:30] + out[200:204]  # re-delivered, later on


def _one_at_a_time(detector: SpikeDetector, items: list[SentimentObservation]) -> tuple[dict, dict, list]:
    table: dict[str, Any] = {}
    counted = CountedIds({})
    decisions = []
    for obs in items:
        value = table.get(obs.key)
        entry = SpikeEntry(detector.new_state(obs.key)) if value is None else SpikeEntry.load(value, detector, obs.key)
        out = update(entry, obs, detector, 3, counted, now=NOW)
        if out is None:
            continue
        decisions.extend((obs.key, d.status) for d in out.decisions)
        out.entry.partition = 0
        table[obs.key] = out.entry.dump()
        counted.add(obs.key, obs.article_id, out.window_start)
    return table, dict(counted._table), decisions


def test_batches_count_exactly_what_one_at_a_time_processing_counts() -> None:
    detector = SpikeDetector(SpikeSettings(window_s=60, min_count=10, cooldown_s=0))
    items = _observations()
    want_table, want_ids, want_decisions = _one_at_a_time(detector, items)
    assert ("market", "raise") in want_decisions  # the fixture does exercise an alert
    for size in (1, 7, 64, len(items)):
        log: list[tuple[str, str]] = []
        table, ids = LoggedTable("state", log), LoggedTable("counted", log)
        counted = CountedIds(ids)
        decisions = []
        for start in range(0, len(items), size):
            batch = SpikeBatch(table, counted, detector, 3)
            for offset, obs in enumerate(items[start:start + size], start):
                done = batch.count(Event(offset), obs, now=NOW)
                if done is not None:
                    decisions.extend((obs.key, d.status) for d in done.update.decisions)
            batch.flush(table)
        assert dict(table) == want_table, f"batch size {size}"
        assert dict(ids) == want_ids, f"batch size {size}"
        assert decisions == want_decisions, f"batch size {size}"


def test_a_batch_writes_each_key_once_and_the_states_before_the_counted_ids() -> None:
    detector = SpikeDetector(SpikeSettings(window_s=60))
    items = _observations()[:64]
    log: list[tuple[str, str]] = []
    table, ids = LoggedTable("state", log), LoggedTable("counted", log)
    batch = SpikeBatch(table, CountedIds(ids), detector, 3)
    for offset, obs in enumerate(items + items[:5]):  # a re-delivery inside the batch is not counted again
        batch.count(Event(offset), obs, now=NOW)
    assert batch.flush(table) == (3, 64)
    states = [key for name, key in log if name == "state"]
    assert sorted(states) == ["ABC", "XYZ", MARKET_KEY]
    assert [name for name, _ in log] == ["state"] * 3 + ["counted"] * 64
    assert SpikeEntry.load(table[MARKET_KEY], detector, MARKET_KEY).state.n == 32
    assert {split_key(k)[0] for k in ids} == {"ABC", "XYZ", MARKET_KEY}
    assert batch.flush(table) == (0, 0), "a flushed batch holds nothing more"


def test_an_entry_read_in_a_batch_is_the_batch_s_own_once_changed() -> None:
    detector = SpikeDetector(SpikeSettings(window_s=60))
    table: dict[str, Any] = {}
    first = SpikeBatch(table, CountedIds({}), detector, 3)
    assert first.entry("XYZ") is None
    obs = _observations()[0]
    first.count(Event(0), obs, now=NOW)
    entry = first.entry(obs.key)
    assert entry is not None and entry.state.n == 1
    assert table == {}, "nothing is written before flush"
