from datetime import UTC, datetime, timedelta

from finpulse.settings import SpikeSettings
from finpulse.streams.records import SentimentObservation
from finpulse.streams.spike_agent import SpikeEntry, update
from finpulse.streams.spikes import SpikeDetector

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _obs(i: int, negative: bool, minutes: float = 0.0, key: str = "XYZ") -> SentimentObservation:
    return SentimentObservation(
        key=key, article_id=f"{i:032x}", event_time=T0 + timedelta(minutes=minutes), negative=negative,
        negative_score=0.5 + (i % 50) / 100 if negative else 0.1, title=f"headline {i}", url=f"https://n/{i}",
    )


def _feed(entry: SpikeEntry, detector: SpikeDetector, items: list[SentimentObservation]) -> tuple[SpikeEntry, list]:
    decisions = []
    for obs in items:
        out = update(entry, obs, detector, top_n=3)
        if out is not None:
            entry, new = out
            decisions.extend(new)
    return entry, decisions


def test_burst_raises_once_with_the_most_negative_headlines_as_evidence() -> None:
    detector = SpikeDetector(SpikeSettings(window_s=60, min_count=10, cooldown_s=0))
    entry = SpikeEntry(detector.new_state("XYZ"))
    calm = [_obs(i, negative=(i % 10 == 0), minutes=i * 0.1) for i in range(100)]  # 10 windows, 10% negative
    entry, decisions = _feed(entry, detector, calm)
    assert decisions == []
    burst = [_obs(1000 + i, negative=True, minutes=11 + i * 0.01) for i in range(20)]
    entry, decisions = _feed(entry, detector, burst)
    assert [d.status for d in decisions] == ["raise"]
    assert len(entry.evidence) == 3
    assert entry.evidence[0]["negative_score"] >= entry.evidence[-1]["negative_score"]


def test_redelivered_observation_is_not_counted_twice() -> None:
    detector = SpikeDetector(SpikeSettings(window_s=60))
    entry = SpikeEntry(detector.new_state("XYZ"))
    out = update(entry, _obs(1, True), detector, 3)
    assert out is not None
    entry = out[0]
    assert update(entry, _obs(1, True), detector, 3) is None
    assert entry.state.n == 1


def test_entry_round_trips_through_a_plain_dict() -> None:
    detector = SpikeDetector(SpikeSettings(window_s=60))
    entry, _ = _feed(SpikeEntry(detector.new_state("XYZ")), detector, [_obs(i, i % 2 == 0) for i in range(5)])
    again = SpikeEntry.load(entry.dump(), detector, "XYZ")
    assert again.dump() == entry.dump()


def test_ids_are_bounded_to_recent_windows() -> None:
    detector = SpikeDetector(SpikeSettings(window_s=60))
    items = [_obs(i, False, minutes=i) for i in range(30)]  # one per minute: 30 windows
    entry, _ = _feed(SpikeEntry(detector.new_state("XYZ")), detector, items)
    assert len(entry.ids) <= 2


def test_a_raised_key_is_quiet_only_after_a_window_without_observations() -> None:
    detector = SpikeDetector(SpikeSettings(window_s=60, min_count=5, cooldown_s=0))
    entry = SpikeEntry(detector.new_state("XYZ"))
    for i in range(20):
        out = update(entry, _obs(i, negative=True, minutes=i * 0.01), detector, 3, now=1000.0)
        assert out is not None
        entry = out[0]
    assert entry.state.raised
    assert not entry.quiet(1000.0 + 30, 60)
    assert entry.quiet(1000.0 + 61, 60)
    state, decisions = detector.advance(entry.state, 1000.0 + 61 + T0.timestamp())
    assert [d.status for d in decisions] == ["resolve"] and not state.raised
