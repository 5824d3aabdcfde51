"""Negative-sentiment spike detection per key (a ticker, or ``"market"``).

Pure logic: no Kafka, no Faust, no clock. The streaming agent keeps one :class:`KeyState` per key in a
Faust table (as the plain dict of :meth:`KeyState.to_dict`) and calls :meth:`SpikeDetector.observe` for
every scored article, or :meth:`SpikeDetector.advance` from a timer so silent keys still close windows::

    detector = SpikeDetector(settings.spike)
    state = KeyState.from_dict(table[key]) if key in table else detector.new_state(key)
    state, decisions = detector.observe(state, ts, negative, now=time.time())
    table[key] = state.to_dict()
    for decision in decisions:
        send(decision.to_alert(headlines))

Model
-----
Time is cut into tumbling windows of ``window_s`` seconds aligned on the epoch (event time: ``ts`` is
whatever time the caller passes, normally the article's publication or scoring time). The open window
counts ``n`` scored articles and ``k`` negatives.

The baseline negative share ``p0`` is an exponentially weighted average of the closed windows, weighted
by their article counts: with ``lam = 0.5 ** (1 / ewma_halflife_windows)`` every closed window does
``hist_n = lam * hist_n + n`` and ``hist_k = lam * hist_k + k``, and every empty window (a gap) only
decays both sums. So a busy window counts more than a quiet one, an empty window carries no evidence,
and a long silence slowly hands the baseline back to the prior. The prior enters as a pseudo-count
of ``prior_weight`` articles (default ``min_count``) at ``prior_share``::

    p0 = max(baseline_floor, (hist_k + prior_weight * prior_share) / (hist_n + prior_weight))

Before any history ``p0 == prior_share``. The floor (default 1 %) keeps a key whose history holds no
negative at all from treating every single negative article as a spike: with ``p0`` near 0 the tail
probability of one negative would be near 0 too.

Decisions
---------
After every article the open window is tested against ``p0`` (the current window never feeds its own
baseline):

* **raise** when the key is not raised, ``n >= min_count``, the exact binomial upper tail
  ``P(X >= k | n, p0) < alpha`` and the key is out of cooldown (``cooldown_s`` after its last raise).
  A raised key does not raise again until it resolves, so one burst raises once.
* **resolve** (``reason="share"``) when the key is raised and a window of ``n >= min_count`` articles (the
  open one, or one that closes) has a share under ``p0 * resolve_ratio``. The raise needs significance, the
  resolve only a share back near the baseline: between the two the alert stays as it is (hysteresis). The
  open window is tested after every article, so a partial window of ``min_count`` articles can already
  resolve; raise ``min_count`` to make both decisions wait for more evidence. Testing a growing window again
  after each article raises somewhat more often than ``alpha`` under the null (repeated looks); ``alpha`` is a
  per-test level, not a guaranteed false-alarm rate per window.
* A window of fewer than ``min_count`` articles neither raises nor resolves: no articles is no evidence that
  the share is back to normal. A raised key none of whose windows held ``min_count`` articles for
  ``quiet_resolve_s`` (counted from the end of its last window that did, ``KeyState.quiet_since``) resolves
  with ``reason="quiet"``, and the alert says so.

Severity comes from the p-value: ``critical`` under ``alpha / 100``, ``major`` under ``alpha / 10``,
``minor`` under ``alpha``; a resolve is ``normal``.

Late and out-of-order events
----------------------------
An event older than the open window but at most ``max_lateness_s`` (default one window) before its
start counts into the open window: it is still news the agent sees now, and reopening a closed window
could neither undo nor redo the decisions already taken on it. Older events are dropped and counted in
``KeyState.late_dropped``. An event in a later window closes the open one (and decays the baseline over
any empty windows in between).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from finpulse.streams.detect.binomial import Severity, binom_sf, severity_of

if TYPE_CHECKING:
    from finpulse.contracts.records import Headline, SpikeAlert
    from finpulse.settings import SpikeSettings

logger = logging.getLogger(__name__)

Status = Literal["raise", "resolve"]
ResolveReason = Literal["share", "quiet"]

STATE_VERSION = 1
DEFAULT_BASELINE_FLOOR = 0.01

# --------------------------------------------------------------------------------------------------------------------
# State and decisions
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyState:
    """Everything the detector remembers about one key; JSON-able through :meth:`to_dict`.

    ``window_start`` is the start of the open window (None before the first event); ``n``/``k`` its
    counts; ``hist_n``/``hist_k`` the decayed sums of the closed windows behind the baseline;
    ``raised_window_start`` the window of the open alert (None when not raised); ``last_raise_ts`` the
    event time of the last raise (cooldown); ``quiet_since`` the end of the raised key's last window of at
    least ``min_count`` articles (the quiet timeout counts from there).
    """

    key: str
    window_start: float | None = None
    n: int = 0
    k: int = 0
    hist_n: float = 0.0
    hist_k: float = 0.0
    windows_closed: int = 0
    raised: bool = False
    raised_window_start: float | None = None
    last_raise_ts: float | None = None
    late_dropped: int = 0
    quiet_since: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of JSON types (for a Faust table); :meth:`from_dict` reads it back."""
        return {"version": STATE_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyState:
        """Read a dict written by :meth:`to_dict`; anything else is a bug and raises ValueError."""
        body = dict(data)
        version = body.pop("version", None)
        if version != STATE_VERSION:
            raise ValueError(f"spike state version {version!r} is not {STATE_VERSION}")
        names = {f.name for f in fields(cls)}
        unknown = set(body) - names
        if unknown:
            raise ValueError(f"unknown spike state fields: {sorted(unknown)}")
        if not isinstance(body.get("key"), str):
            raise ValueError("spike state needs a string key")
        ints = ("n", "k", "windows_closed", "late_dropped")
        floats = ("hist_n", "hist_k")
        optional_floats = ("window_start", "raised_window_start", "last_raise_ts", "quiet_since")
        for name in ints:
            if name in body and (not isinstance(body[name], int) or isinstance(body[name], bool) or body[name] < 0):
                raise ValueError(f"spike state field {name} must be a non-negative int, got {body[name]!r}")
        for name in floats:
            if name in body:
                body[name] = _as_float(name, body[name])
        for name in optional_floats:
            if body.get(name) is not None:
                body[name] = _as_float(name, body[name])
        if "raised" in body and not isinstance(body["raised"], bool):
            raise ValueError(f"spike state field raised must be a bool, got {body['raised']!r}")
        return cls(**body)


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"spike state field {name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Decision:
    """A raise or a resolve of one key, on the window it was decided on (epoch seconds).

    A resolve's :attr:`reason` is ``share`` (a full window back under the threshold) or ``quiet`` (the quiet
    timeout, ``quiet_timeout_s`` seconds, passed without a full window).
    """

    key: str
    status: Status
    ts: float
    window_start: float
    window_end: float
    n: int
    k: int
    share: float
    baseline: float
    p_value: float
    severity: Severity
    quiet_timeout_s: float | None = None

    @property
    def reason(self) -> ResolveReason | None:
        if self.status == "raise":
            return None
        return "share" if self.quiet_timeout_s is None else "quiet"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_alert(
        self, headlines: list[Headline] | None = None, raised: SpikeAlert | None = None, created: float | None = None
    ) -> SpikeAlert:
        """The :class:`~finpulse.contracts.records.SpikeAlert` record of this decision; a resolve carries
        ``raised``, the raise it closes. ``created`` (epoch) defaults to now."""
        from finpulse.contracts.records import SpikeAlert, utcnow

        return SpikeAlert(
            key=self.key,
            status=self.status,
            window_start=datetime.fromtimestamp(self.window_start, UTC),
            window_end=datetime.fromtimestamp(self.window_end, UTC),
            n=self.n,
            k=self.k,
            share=self.share,
            baseline=self.baseline,
            p_value=self.p_value,
            severity=self.severity,
            headlines=list(headlines or []),
            raised=raised,
            created_at=utcnow() if created is None else datetime.fromtimestamp(created, UTC),
            resolved_by=self.reason,
            quiet_timeout_s=self.quiet_timeout_s,
        )


# --------------------------------------------------------------------------------------------------------------------
# Detector
# --------------------------------------------------------------------------------------------------------------------


class SpikeDetector:
    """Pure spike decisions from :class:`~finpulse.settings.SpikeSettings`; holds no per-key state itself."""

    def __init__(
        self,
        settings: SpikeSettings,
        *,
        baseline_floor: float = DEFAULT_BASELINE_FLOOR,
        prior_weight: float | None = None,
        max_lateness_s: float | None = None,
    ) -> None:
        if not 0.0 < baseline_floor < 1.0:
            raise ValueError(f"baseline_floor must lie in (0, 1), got {baseline_floor}")
        self.settings = settings
        self.baseline_floor = baseline_floor
        self.prior_weight = float(settings.min_count if prior_weight is None else prior_weight)
        if self.prior_weight <= 0:
            raise ValueError(f"prior_weight must be > 0, got {self.prior_weight}")
        self.max_lateness_s = settings.window_s if max_lateness_s is None else max_lateness_s
        if self.max_lateness_s < 0:
            raise ValueError(f"max_lateness_s must be >= 0, got {self.max_lateness_s}")
        self.decay = 0.5 ** (1.0 / settings.ewma_halflife_windows)

    # -- public API --------------------------------------------------------------------------------------------------

    def new_state(self, key: str) -> KeyState:
        return KeyState(key=key)

    def window_of(self, ts: float) -> float:
        """Start of the tumbling window holding ``ts`` (epoch-aligned)."""
        w = self.settings.window_s
        return math.floor(ts / w) * w

    def baseline(self, state: KeyState) -> float:
        """The baseline negative share ``p0`` of a key (from closed windows only; never below the floor)."""
        m = self.prior_weight
        p0 = (state.hist_k + m * self.settings.prior_share) / (state.hist_n + m)
        return min(1.0 - 1e-12, max(self.baseline_floor, p0))

    def observe(
        self, state: KeyState, ts: float, negative: bool, *, now: float | None = None
    ) -> tuple[KeyState, list[Decision]]:
        """Count one scored article of ``state.key`` at event time ``ts``; return the new state and decisions.

        ``now`` (the caller's wall clock, optional) caps ``ts``: an article stamped in the future (a feed
        with a wrong time zone) counts at ``now`` instead of pushing the key's window ahead, which would
        make every correctly stamped article after it "late".

        Decisions come in order: at most a resolve from the window(s) this event closes, then at most one
        raise or resolve on the open window.
        """
        if not math.isfinite(ts):
            raise ValueError(f"event time must be finite, got {ts}")
        if now is not None and ts > now:
            ts = now
        decisions: list[Decision] = []
        if state.window_start is not None and ts < state.window_start:
            if ts < state.window_start - self.max_lateness_s:
                logger.debug("dropped a late event of %s at %s (window starts %s)", state.key, ts, state.window_start)
                return replace(state, late_dropped=state.late_dropped + 1), decisions
            window = state.window_start  # late but tolerated: counts into the open window
        else:
            window = self.window_of(ts)
            state, closing = self._roll_to(state, window, ts)
            decisions.extend(closing)
        state = replace(state, window_start=window, n=state.n + 1, k=state.k + (1 if negative else 0))
        state, decision = self._evaluate_open(state, ts)
        if decision is None:
            state, decision = self._resolve_if_quiet(state, ts)
        if decision is not None:
            decisions.append(decision)
        return state, decisions

    def advance(self, state: KeyState, now: float) -> tuple[KeyState, list[Decision]]:
        """Close every window that ended by ``now`` and apply the quiet timeout (call from a timer, so that a
        raised key that goes silent still resolves)."""
        decisions: list[Decision] = []
        if state.window_start is not None and now >= state.window_start + self.settings.window_s:
            state, decisions = self._roll_to(state, self.window_of(now), now)
        state, quiet = self._resolve_if_quiet(state, now)
        return state, decisions + ([quiet] if quiet is not None else [])

    # -- internals ---------------------------------------------------------------------------------------------------

    def _roll_to(self, state: KeyState, window: float, ts: float) -> tuple[KeyState, list[Decision]]:
        """Close the open window (and any empty ones) so that ``window`` becomes the open one."""
        if state.window_start is None:
            return replace(state, window_start=window), []
        if window <= state.window_start:
            return state, []
        w = self.settings.window_s
        gap = max(0, round((window - state.window_start) / w) - 1)  # empty windows in between
        p0 = self.baseline(state)
        decisions: list[Decision] = []
        resolved = False
        quiet_since = state.quiet_since
        if state.raised and state.n >= self.settings.min_count:  # a thin window is no evidence either way
            if state.k / state.n < p0 * self.settings.resolve_ratio:
                decisions.append(self._decision(state, "resolve", ts, state.window_start, state.n, state.k, p0))
                resolved = True
            else:
                quiet_since = state.window_start + w
        lam = self.decay
        hist_n = (state.hist_n * lam + state.n) * lam**gap
        hist_k = (state.hist_k * lam + state.k) * lam**gap
        new = replace(
            state,
            window_start=window,
            n=0,
            k=0,
            hist_n=hist_n,
            hist_k=hist_k,
            windows_closed=state.windows_closed + 1 + gap,
            quiet_since=quiet_since,
        )
        if resolved:
            new = replace(new, raised=False, raised_window_start=None, quiet_since=None)
        return new, decisions

    def _resolve_if_quiet(self, state: KeyState, at: float) -> tuple[KeyState, Decision | None]:
        """Resolve a raised key when none of its windows held ``min_count`` articles for ``quiet_resolve_s``."""
        s = self.settings
        if not state.raised or state.window_start is None or state.n >= s.min_count:
            return state, None
        since = state.quiet_since
        if since is None:  # a state written before quiet_since existed: count from the end of the raise's window
            since = (state.raised_window_start or state.window_start) + s.window_s
        if at - since < s.quiet_resolve_s:
            return state, None
        decision = self._decision(state, "resolve", at, state.window_start, state.n, state.k, self.baseline(state),
                                  reason="quiet")
        logger.info("spike on %s resolved by the quiet timeout: no window of %d articles for %.0f s",
                    state.key, s.min_count, at - since)
        return replace(state, raised=False, raised_window_start=None, quiet_since=None), decision

    def _evaluate_open(self, state: KeyState, ts: float) -> tuple[KeyState, Decision | None]:
        s = self.settings
        if state.n < s.min_count or state.window_start is None:
            return state, None
        p0 = self.baseline(state)
        if state.raised:
            if state.k / state.n < p0 * s.resolve_ratio:
                decision = self._decision(state, "resolve", ts, state.window_start, state.n, state.k, p0)
                return replace(state, raised=False, raised_window_start=None, quiet_since=None), decision
            return state, None
        if state.last_raise_ts is not None and ts - state.last_raise_ts < s.cooldown_s:
            return state, None
        p_value = binom_sf(state.k, state.n, p0)
        if severity_of(p_value, s.alpha) is None:
            return state, None
        decision = self._decision(state, "raise", ts, state.window_start, state.n, state.k, p0, p_value)
        logger.info(
            "negative spike on %s: %d of %d negative (baseline %.3f, p=%.3g)", state.key, state.k, state.n, p0, p_value
        )
        return replace(state, raised=True, raised_window_start=state.window_start, last_raise_ts=ts,
                       quiet_since=state.window_start + s.window_s), decision

    def _decision(
        self,
        state: KeyState,
        status: Status,
        ts: float,
        window_start: float,
        n: int,
        k: int,
        p0: float,
        p_value: float | None = None,
        reason: ResolveReason = "share",
    ) -> Decision:
        if p_value is None:
            p_value = binom_sf(k, n, p0)
        severity: Severity = "normal"
        if status == "raise":
            severity = severity_of(p_value, self.settings.alpha) or "minor"
        quiet = status == "resolve" and reason == "quiet"
        return Decision(
            key=state.key,
            status=status,
            ts=ts,
            window_start=window_start,
            window_end=window_start + self.settings.window_s,
            n=n,
            k=k,
            share=k / n if n else 0.0,
            baseline=p0,
            p_value=p_value,
            severity=severity,
            quiet_timeout_s=self.settings.quiet_resolve_s if quiet else None,
        )
