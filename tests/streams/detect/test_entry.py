from datetime import UTC, datetime, timedelta

from finpulse.contracts.records import SentimentObservation
from finpulse.settings import SpikeSettings
from finpulse.streams.detect.counted import CountedIds
from finpulse.streams.detect.entry import SpikeEntry, alerts_of, update
from finpulse.streams.detect.spikes import SpikeDetector

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NOW = (T0 + timedelta(hours=1)).timestamp()


def _obs(i: int, negative: bool, minutes: float = 0.0, key: str = "XYZ") -> SentimentObservation:
    return SentimentObservation(
        key=key, article_id=f"{i:032x}", event_time=T0 + timedelta(minutes=minutes), negative=negative,
        negative_score=0.5 + (i % 50) / 100 if negative else 0.1, title=f"headline {i}", url=f"https://n/{i}",
    )


def _feed(
    entry: SpikeEntry, detector: SpikeDetector, items: list[SentimentObservation], counted: CountedIds | None = None
) -> tuple[SpikeEntry, list]:
    counted = CountedIds({}) if counted is None else counted
    decisions = []
    for obs in items:
        out = update(entry, obs, detector, 3, counted)
        if out is not None:
            entry = out.entry
            counted.add(obs.key, obs.article_id, out.window_start)
            decisions.extend(out.decisions)
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
    counted = CountedIds({})
    entry, _ = _feed(SpikeEntry(detector.new_state("XYZ")), detector, [_obs(1, True)], counted)
    assert update(entry, _obs(1, True), detector, 3, counted) is None
    assert entry.state.n == 1
    assert update(entry, _obs(1, True, key="ABC"), detector, 3, counted) is not None, "ids are per key"


def test_entry_round_trips_through_a_plain_dict() -> None:
    detector = SpikeDetector(SpikeSettings(window_s=60))
    entry, _ = _feed(SpikeEntry(detector.new_state("XYZ")), detector, [_obs(i, i % 2 == 0) for i in range(5)])
    again = SpikeEntry.load(entry.dump(), detector, "XYZ")
    assert again.dump() == entry.dump()


def test_counted_ids_of_old_windows_expire_and_the_recent_ones_stay() -> None:
    detector = SpikeDetector(SpikeSettings(window_s=60))
    table: dict[str, float] = {}
    counted = CountedIds(table)
    items = [_obs(i, False, minutes=i) for i in range(30)]  # one per minute: 30 windows
    entry, _ = _feed(SpikeEntry(detector.new_state("XYZ")), detector, items, counted)
    _feed(SpikeEntry(detector.new_state("ABC")), detector, [_obs(99, False, key="ABC")], counted)
    assert counted.count("XYZ") == 30 and counted.count("ABC") == 1
    keep_after = entry.keep_ids_after(60)
    limits = {"XYZ": keep_after, "ABC": None}
    chunks = list(counted.expired(limits.get, chunk=10))
    assert [key for key, _ in chunks] == ["XYZ", "XYZ", "XYZ"]
    expired = [aid for _, ids in chunks for aid in ids]
    assert len(expired) == 28 and f"{29:032x}" not in expired and f"{28:032x}" not in expired
    for key, ids in chunks:
        counted.discard(key, ids, keep_after)
    assert counted.count("XYZ") == 2 and counted.count("ABC") == 1
    assert update(entry, _obs(29, False, minutes=29), detector, 3, counted) is None, "the recent windows still de-duplicate"


def test_discard_keeps_an_id_counted_again_since_the_expiry_was_listed() -> None:
    counted = CountedIds({})
    counted.add("XYZ", "a", 0.0)
    listed = list(counted.expired(lambda key: 60.0))
    counted.add("XYZ", "a", 120.0)  # counted again (in a later window) before the expiry tick arrived
    assert counted.discard("XYZ", listed[0][1], 60.0) == 0
    assert counted.window_of("XYZ", "a") == 120.0


def test_a_raised_key_is_quiet_only_after_a_window_without_observations() -> None:
    detector = SpikeDetector(SpikeSettings(window_s=60, min_count=5, cooldown_s=0))
    entry = SpikeEntry(detector.new_state("XYZ"))
    for i in range(20):
        out = update(entry, _obs(i, negative=True, minutes=i * 0.01), detector, 3, CountedIds({}), now=1000.0)
        assert out is not None
        entry = out.entry
    assert entry.state.raised
    assert not entry.quiet(1000.0 + 30, 60)
    assert entry.quiet(1000.0 + 61, 60)
    state, decisions = detector.advance(entry.state, 1000.0 + 61 + T0.timestamp())
    assert [d.status for d in decisions] == ["resolve"] and not state.raised


def test_a_resolve_carries_the_evidence_of_the_raise_it_closes() -> None:
    detector = SpikeDetector(SpikeSettings(window_s=60, min_count=10, cooldown_s=0, quiet_resolve_s=600))
    entry = SpikeEntry(detector.new_state("XYZ"))
    calm = [_obs(i, negative=(i % 10 == 0), minutes=i * 0.1) for i in range(100)]
    entry, _ = _feed(entry, detector, calm)
    counted = CountedIds({})
    raise_alert = None
    for i in range(20):
        out = update(entry, _obs(1000 + i, True, minutes=11 + i * 0.01), detector, 3, counted, now=NOW)
        assert out is not None
        entry = out.entry
        raise_alert = raise_alert or next((a for a in out.alerts if a.status == "raise"), None)
    assert raise_alert is not None and entry.raised == raise_alert.model_dump(mode="json")
    assert SpikeEntry.load(entry.dump(), detector, "XYZ").raised == entry.raised, "the evidence survives the table"
    thin = update(entry, _obs(2000, False, minutes=12.5), detector, 3, counted)  # one calm article: not enough
    assert thin is not None and thin.alerts == [] and thin.entry.raised == entry.raised
    state, decisions = detector.advance(thin.entry.state, NOW + 3600)
    alerts, kept = alerts_of(decisions, [], thin.entry.raised, 3, NOW)
    assert [(a.status, a.resolved_by, a.quiet_timeout_s) for a in alerts] == [("resolve", "quiet", 600)]
    assert alerts[0].raised == raise_alert and kept is None and not state.raised
    assert [h.id for h in alerts[0].raised.headlines] == [h.id for h in raise_alert.headlines] != []
