"""Unit tests of the pure spike detector."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finpulse.contracts.records import SpikeAlert
from finpulse.settings import SpikeSettings
from finpulse.streams.detect.binomial import binom_log_sf, binom_sf, severity_of
from finpulse.streams.detect.spikes import Decision, KeyState, SpikeDetector

W = 300.0
T0 = 1_700_000_100.0 - (1_700_000_100.0 % W)  # a window boundary


def make(**overrides: float) -> SpikeDetector:
    return SpikeDetector(SpikeSettings(**overrides))  # type: ignore[arg-type]


def feed_window(
    det: SpikeDetector, state: KeyState, index: int, n: int, k: int, front: bool = False
) -> tuple[KeyState, list[Decision]]:
    """n articles spread evenly over window ``index``, k of them negative (spread evenly, or first when front)."""
    out: list[Decision] = []
    start = T0 + index * W
    for i in range(n):
        negative = i < k if front else (i + 1) * k // n > i * k // n
        state, decisions = det.observe(state, start + (i + 0.5) * W / max(n, 1), negative)
        out.extend(decisions)
    return state, out


def brute_sf(k: int, n: int, p: float) -> float:
    q = Fraction(p)
    return float(sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(max(k, 0), n + 1)))


# ---------------------------------------------------------------------------------------------------------------------
# binomial tail


@pytest.mark.parametrize(
    ("k", "n", "p", "expected"),
    [
        (0, 10, 0.3, 1.0),
        (11, 10, 0.3, 0.0),
        (3, 10, 0.1, 0.07019082639999992),  # 1 - (.9^10 + 10*.1*.9^9 + 45*.01*.9^8)
        (1, 10, 0.1, 1 - 0.9**10),
        (10, 10, 0.5, 0.5**10),
        (5, 10, 0.5, 0.623046875),  # 638/1024
        (50, 100, 0.5, 0.5397946186935894),
        (1, 1, 0.25, 0.25),
    ],
)
def test_binom_sf_known_values(k: int, n: int, p: float, expected: float) -> None:
    assert binom_sf(k, n, p) == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_binom_sf_extreme_tail_keeps_relative_precision() -> None:
    # P(X >= 1000 | 1000, 0.01) = 0.01^1000 = 1e-2000: underflows as a float but not in log space
    assert binom_log_sf(1000, 1000, 0.01) == pytest.approx(1000 * math.log(0.01), rel=1e-12)
    assert binom_sf(1000, 1000, 0.01) == 0.0
    # deep but representable tail: P(X >= 60 | 100, 0.1)
    assert binom_sf(60, 100, 0.1) == pytest.approx(brute_sf(60, 100, 0.1), rel=1e-10)


def test_binom_sf_degenerate_p_and_bad_input() -> None:
    assert binom_sf(1, 5, 0.0) == 0.0
    assert binom_sf(0, 5, 0.0) == 1.0
    assert binom_sf(5, 5, 1.0) == 1.0
    with pytest.raises(ValueError):
        binom_sf(1, 5, 1.5)
    with pytest.raises(ValueError):
        binom_sf(1, -1, 0.5)


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(min_value=0, max_value=120),
    k=st.integers(min_value=-2, max_value=125),
    p=st.floats(min_value=1e-6, max_value=1 - 1e-6),
)
def test_binom_sf_matches_brute_force(n: int, k: int, p: float) -> None:
    expected = brute_sf(k, n, p)
    got = binom_sf(k, n, p)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert 0.0 <= got <= 1.0


@settings(max_examples=100, deadline=None)
@given(n=st.integers(min_value=1, max_value=200), p=st.floats(min_value=1e-4, max_value=1 - 1e-4))
def test_binom_sf_is_monotone_in_k(n: int, p: float) -> None:
    values = [binom_sf(k, n, p) for k in range(n + 2)]
    assert all(a >= b - 1e-15 for a, b in zip(values, values[1:], strict=False))


def test_severity_levels() -> None:
    assert severity_of(1e-6, 0.001) == "critical"
    assert severity_of(5e-5, 0.001) == "major"
    assert severity_of(5e-4, 0.001) == "minor"
    assert severity_of(0.01, 0.001) is None


# ---------------------------------------------------------------------------------------------------------------------
# detector


def test_baseline_starts_at_prior_and_follows_history() -> None:
    det = make(prior_share=0.2)
    state = det.new_state("AAPL")
    assert det.baseline(state) == pytest.approx(0.2)
    for i in range(60):
        state, _ = feed_window(det, state, i, 40, 2)  # 5 % negative
    state, _ = det.advance(state, T0 + 60 * W)
    assert det.baseline(state) == pytest.approx(0.05, abs=0.003)


def test_burst_raises_once_then_resolves() -> None:
    det = make()
    state = det.new_state("TSLA")
    for i in range(20):
        state, decisions = feed_window(det, state, i, 40, 6)
        assert decisions == []
    state, decisions = feed_window(det, state, 20, 40, 30)
    raises = [d for d in decisions if d.status == "raise"]
    assert len(raises) == 1
    r = raises[0]
    assert (r.key, r.window_start, r.window_end) == ("TSLA", T0 + 20 * W, T0 + 21 * W)
    assert r.p_value < 0.001 and r.severity in {"critical", "major", "minor"}
    assert r.k <= r.n and r.share == pytest.approx(r.k / r.n)
    assert r.baseline == pytest.approx(0.15, abs=0.02)
    assert state.raised
    # the burst goes on in the next window: still no second raise
    state, decisions = feed_window(det, state, 21, 40, 30)
    assert decisions == []
    # back to normal: one resolve
    state, decisions = feed_window(det, state, 22, 40, 4)
    assert [d.status for d in decisions] == ["resolve"]
    assert decisions[0].severity == "normal"
    assert not state.raised


def test_severity_critical_for_huge_burst() -> None:
    det = make()
    state = det.new_state("X")
    for i in range(10):
        state, _ = feed_window(det, state, i, 50, 7)
    state, decisions = feed_window(det, state, 10, 200, 200)
    assert [d.severity for d in decisions] == ["critical"]


def test_slow_drift_does_not_raise() -> None:
    det = make()
    state = det.new_state("DRIFT")
    for i in range(300):
        share = 0.10 + 0.30 * i / 300  # 10 % to 40 % over 300 windows
        state, decisions = feed_window(det, state, i, 50, round(share * 50))
        assert decisions == [], (i, decisions)
    assert det.baseline(state) > 0.3


def test_zero_baseline_does_not_make_every_negative_a_spike() -> None:
    det = make()
    state = det.new_state("CALM")
    for i in range(100):
        state, _ = feed_window(det, state, i, 40, 0)
    state, _ = det.advance(state, T0 + 100 * W)
    p0 = det.baseline(state)
    assert p0 > 0 and p0 == pytest.approx(det.baseline_floor)
    state, decisions = feed_window(det, state, 100, 40, 1)
    assert decisions == []
    state, decisions = feed_window(det, state, 101, 40, 2)
    assert decisions == []
    # a real burst still raises
    state, decisions = feed_window(det, state, 102, 40, 12)
    assert [d.status for d in decisions] == ["raise"]


def test_tiny_counts_never_raise() -> None:
    det = make(min_count=10)
    state = det.new_state("TINY")
    for i in range(50):
        state, decisions = feed_window(det, state, i, 9, 9)  # every article negative but only 9 per window
        assert decisions == []


def test_cooldown_blocks_a_second_raise() -> None:
    det = make(cooldown_s=3 * W)
    state = det.new_state("COOL")
    for i in range(20):
        state, _ = feed_window(det, state, i, 40, 6)
    state, decisions = feed_window(det, state, 20, 40, 30)
    assert [d.status for d in decisions] == ["raise"]
    state, decisions = feed_window(det, state, 21, 40, 2)
    assert [d.status for d in decisions] == ["resolve"]
    state, decisions = feed_window(det, state, 22, 40, 30)  # inside the cooldown
    assert decisions == []
    state, decisions = feed_window(det, state, 23, 40, 3)
    state, decisions = feed_window(det, state, 24, 40, 36)  # cooldown over
    assert [d.status for d in decisions] == ["raise"]


def test_hysteresis_keeps_the_alert_between_thresholds() -> None:
    det = make(resolve_ratio=1.25)
    state = det.new_state("HYS")
    for i in range(30):
        state, _ = feed_window(det, state, i, 100, 10)
    state, decisions = feed_window(det, state, 30, 100, 40)
    assert [d.status for d in decisions] == ["raise"]
    # 20 % is above baseline * 1.25 but far from significant: stays raised. (Negatives come first so that no
    # partial window dips under the resolve threshold: the open window is tested after every article.)
    state, decisions = feed_window(det, state, 31, 100, 20, front=True)
    assert decisions == [] and state.raised
    assert 0.2 > det.baseline(state) * 1.25
    assert binom_sf(20, 100, det.baseline(state)) > det.settings.alpha
    state, decisions = feed_window(det, state, 32, 100, 20, front=True)
    assert decisions == [] and state.raised
    state, decisions = feed_window(det, state, 33, 100, 5)
    assert [d.status for d in decisions] == ["resolve"]


def raised_in_window_20(det: SpikeDetector, key: str) -> KeyState:
    """20 windows at 15 % negative, then a burst in window 20 that raises."""
    state = det.new_state(key)
    for i in range(20):
        state, _ = feed_window(det, state, i, 40, 6)
    state, _ = feed_window(det, state, 20, 40, 30)
    assert state.raised
    return state


def test_silence_does_not_resolve_until_the_quiet_timeout() -> None:
    det = make(quiet_resolve_s=4 * W)
    state = raised_in_window_20(det, "QUIET")
    assert state.quiet_since == T0 + 21 * W
    state, decisions = det.advance(state, T0 + 21 * W + 1)  # closes window 20: share still high
    assert decisions == [] and state.raised
    state, decisions = det.advance(state, T0 + 23 * W)  # window 21 closed empty: no evidence either way
    assert decisions == [] and state.raised
    state, decisions = det.advance(state, T0 + 25 * W - 1)
    assert decisions == [] and state.raised
    state, decisions = det.advance(state, T0 + 25 * W)  # four windows without enough articles after the burst
    assert [(d.status, d.reason, d.quiet_timeout_s) for d in decisions] == [("resolve", "quiet", 4 * W)]
    assert decisions[0].window_end - decisions[0].window_start == W
    assert not state.raised and state.quiet_since is None


def test_a_thin_window_neither_raises_nor_resolves_and_a_full_calm_one_resolves() -> None:
    det = make(min_count=10, quiet_resolve_s=10 * W)
    state = det.new_state("THIN")
    for i in range(20):
        state, _ = feed_window(det, state, i, 40, 6)
    state, decisions = feed_window(det, state, 20, 9, 9)  # every article negative, but under min_count
    assert decisions == [] and not state.raised
    state, decisions = feed_window(det, state, 21, 40, 30)
    assert [d.status for d in decisions] == ["raise"]
    state, decisions = feed_window(det, state, 22, 4, 0)  # calm but thin: stays raised
    assert decisions == [] and state.raised
    state, decisions = feed_window(det, state, 23, 3, 0)  # closing window 22 (4 articles) resolves nothing either
    assert decisions == [] and state.raised
    assert state.quiet_since == T0 + 22 * W, "the quiet timeout counts from the burst's window end"
    state, decisions = feed_window(det, state, 24, 12, 0)
    assert [(d.status, d.reason, d.window_start, d.n) for d in decisions] == [("resolve", "share", T0 + 24 * W, 10)]


def test_an_article_after_a_long_silence_resolves_by_the_quiet_timeout() -> None:
    det = make(quiet_resolve_s=3 * W)
    state = raised_in_window_20(det, "LONG")
    state, decisions = det.observe(state, T0 + 30 * W + 5, True)
    assert [(d.status, d.reason, d.n, d.k) for d in decisions] == [("resolve", "quiet", 1, 1)]
    assert not state.raised


def test_a_raised_state_written_before_quiet_since_counts_from_its_raise_window() -> None:
    det = make(quiet_resolve_s=2 * W)
    state = raised_in_window_20(det, "OLD")
    state, _ = det.advance(state, T0 + 21 * W)  # the burst's window closed: the open one is empty
    old = {k: v for k, v in state.to_dict().items() if k != "quiet_since"}
    state = KeyState.from_dict(old)
    assert state.raised and state.quiet_since is None and state.window_start == T0 + 21 * W
    state, decisions = det.advance(state, T0 + 23 * W - 1)
    assert decisions == [] and state.raised
    state, decisions = det.advance(state, T0 + 23 * W)
    assert [d.reason for d in decisions] == ["quiet"]


def test_many_tickers_are_independent() -> None:
    det = make()
    states = {key: det.new_state(key) for key in ("AAPL", "MSFT", "GOOG", "market")}
    for i in range(20):
        for key in states:
            states[key], _ = feed_window(det, states[key], i, 40, 6)
    raised: dict[str, list[Decision]] = {}
    for key in states:
        states[key], raised[key] = feed_window(det, states[key], 20, 40, 30 if key == "MSFT" else 6)
    assert [d.key for ds in raised.values() for d in ds] == ["MSFT"]
    assert states["MSFT"].raised and not states["AAPL"].raised


def test_late_events_count_into_open_window_or_are_dropped() -> None:
    det = make()
    state = det.new_state("LATE")
    state, _ = det.observe(state, T0 + 10, True)
    state, _ = det.observe(state, T0 + W + 10, False)  # opens window 1
    assert (state.window_start, state.n, state.k) == (T0 + W, 1, 0)
    state, _ = det.observe(state, T0 + 20, True)  # late, within one window: counts into window 1
    assert (state.window_start, state.n, state.k) == (T0 + W, 2, 1)
    state, decisions = det.observe(state, T0 - W, True)  # too late: dropped
    assert decisions == [] and (state.n, state.late_dropped) == (2, 1)


def test_gap_windows_decay_baseline_towards_prior() -> None:
    det = make(prior_share=0.15, ewma_halflife_windows=2)
    state = det.new_state("GAP")
    for i in range(30):
        state, _ = feed_window(det, state, i, 40, 0)
    state, _ = det.advance(state, T0 + 30 * W)
    low = det.baseline(state)
    state, _ = det.advance(state, T0 + 100 * W)  # 70 empty windows
    assert det.baseline(state) > low
    assert det.baseline(state) == pytest.approx(0.15, abs=1e-3)
    assert state.windows_closed == 100


def test_state_round_trips_through_json() -> None:
    det = make()
    state = det.new_state("RT")
    for i in range(20):
        state, _ = feed_window(det, state, i, 40, 6)
    state, _ = feed_window(det, state, 20, 40, 30)
    state, _ = det.observe(state, T0 - 5 * W, True)
    data = json.loads(json.dumps(state.to_dict()))
    again = KeyState.from_dict(data)
    assert again == state
    # continuing from the restored state gives the same decisions as continuing from the original
    a = feed_window(det, state, 21, 40, 3)
    b = feed_window(det, again, 21, 40, 3)
    assert a == b


@pytest.mark.parametrize(
    "bad",
    [
        {"version": 99, "key": "X"},
        {"version": 1, "key": "X", "surprise": 1},
        {"version": 1, "key": 5},
        {"version": 1, "key": "X", "n": -1},
        {"version": 1, "key": "X", "hist_n": "a lot"},
        {"version": 1, "key": "X", "raised": "yes"},
    ],
)
def test_state_from_bad_dict_fails_loudly(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        KeyState.from_dict(bad)


def test_decision_to_alert_record() -> None:
    det = make()
    state = det.new_state("NVDA")
    for i in range(20):
        state, _ = feed_window(det, state, i, 40, 6)
    state, decisions = feed_window(det, state, 20, 40, 30)
    alert = decisions[0].to_alert()
    assert isinstance(alert, SpikeAlert)
    assert alert.key == "NVDA" and alert.status == "raise" and alert.n == decisions[0].n
    assert alert.window_start.timestamp() == T0 + 20 * W
    assert json.loads(json.dumps(decisions[0].to_dict()))["status"] == "raise"


def test_bad_detector_arguments() -> None:
    with pytest.raises(ValueError):
        SpikeDetector(SpikeSettings(), baseline_floor=0)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        det = make()
        det.observe(det.new_state("X"), math.nan, True)


def test_future_event_is_capped_at_now() -> None:
    det = make()
    state = det.new_state("SKEW")
    now = T0 + 10
    state, _ = det.observe(state, now + 5 * 3600, True, now=now)  # a feed five hours ahead
    assert state.window_start == T0
    state, _ = det.observe(state, now + 1, False, now=now + 1)
    assert (state.window_start, state.n, state.late_dropped) == (T0, 2, 0)


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.floats(min_value=-400, max_value=4 * W), st.booleans()), min_size=1, max_size=300
    ),
    split=st.integers(min_value=0, max_value=300),
)
def test_detector_invariants_on_random_streams(events: list[tuple[float, bool]], split: int) -> None:
    det = make(min_count=3, cooldown_s=W)
    state = det.new_state("RND")
    restored = det.new_state("RND")
    clock = T0
    decisions: list[Decision] = []
    for i, (step, negative) in enumerate(events):
        clock += step if step > 0 else 0
        ts = clock + (step if step < 0 else 0)  # some events come late
        state, got = det.observe(state, ts, negative)
        if i == split:  # a restart: the state goes through JSON
            restored = KeyState.from_dict(json.loads(json.dumps(state.to_dict())))
            assert restored == state
        decisions.extend(got)
        assert state.k <= state.n and 0.0 < det.baseline(state) < 1.0
    statuses = [d.status for d in decisions]
    # raises and resolves alternate, starting with a raise
    assert all(s == ("raise" if i % 2 == 0 else "resolve") for i, s in enumerate(statuses))
    assert state.raised == (len(statuses) % 2 == 1)
    for d in decisions:
        if d.status == "raise":
            assert d.n >= 3 and d.p_value < det.settings.alpha
        assert d.window_end - d.window_start == W and 0.0 <= d.share <= 1.0
    raise_times = [d.ts for d in decisions if d.status == "raise"]
    assert all(b - a >= W for a, b in zip(raise_times, raise_times[1:], strict=False))
