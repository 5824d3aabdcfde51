"""What the spike agent stores per key, and counting one observation into it (pure: no Faust, no Kafka)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from finpulse.contracts.records import Headline, SentimentObservation, SpikeAlert
from finpulse.streams.detect.counted import CountedIds
from finpulse.streams.detect.spikes import Decision, KeyState, SpikeDetector


@dataclass
class SpikeEntry:
    """What the spike table stores per key (as a plain dict).

    ``raised`` is the open alert's raise (a :class:`SpikeAlert` dict), which its resolve carries again;
    ``partition`` the table partition the key lives in (where its deletion must go).
    """

    state: KeyState
    evidence: list[dict[str, Any]] = field(default_factory=list)  # Headline dicts of the open window
    last_seen: float = 0.0  # wall clock of the last observation: ticks act only on keys quiet for a window
    raised: dict[str, Any] | None = None
    partition: int | None = None

    @classmethod
    def load(cls, value: dict[str, Any] | None, detector: SpikeDetector, key: str) -> SpikeEntry:
        if value is None:
            return cls(detector.new_state(key))
        partition = value.get("p")
        return cls(KeyState.from_dict(value["state"]), list(value["evidence"]), float(value.get("last_seen", 0.0)),
                   value.get("raised"), None if partition is None else int(partition))

    def dump(self) -> dict[str, Any]:
        return {"state": self.state.to_dict(), "evidence": self.evidence, "last_seen": self.last_seen,
                "raised": self.raised, "p": self.partition}

    def keep_ids_after(self, window_s: float) -> float | None:
        """Counted ids of windows before this bound can go: they are older than the window before the open one."""
        return None if self.state.window_start is None else self.state.window_start - window_s

    def quiet(self, now: float, window_s: float) -> bool:
        """Raised, and no observation arrived for a whole window of wall-clock time."""
        return self.state.raised and now - self.last_seen >= window_s


@dataclass(frozen=True)
class Update:
    """What counting one observation produced: the new entry, the alert decisions, their alerts and the window
    it counted in."""

    entry: SpikeEntry
    decisions: list[Decision]
    window_start: float
    alerts: list[SpikeAlert] = field(default_factory=list)


def alerts_of(
    decisions: list[Decision], evidence: list[dict[str, Any]], raised: dict[str, Any] | None, top_n: int, now: float
) -> tuple[list[SpikeAlert], dict[str, Any] | None]:
    """The alerts of ``decisions`` (in order, created at ``now``) and the raise evidence the key keeps after them.

    A raise carries the ``top_n`` most negative distinct headlines of ``evidence``, and is kept (returned) until
    a resolve carries it; ``raised`` is the raise kept from before.
    """
    alerts = []
    for decision in decisions:
        if decision.status == "raise":
            headlines = {h["id"]: Headline.model_validate(h) for h in evidence}.values()
            alert = decision.to_alert(sorted(headlines, key=lambda h: -h.negative_score)[:top_n], created=now)
            raised = alert.model_dump(mode="json")
        else:
            kept = None if raised is None else SpikeAlert.model_validate(raised)
            alert = decision.to_alert([], raised=kept, created=now)
            raised = None
        alerts.append(alert)
    return alerts, raised


def update(
    entry: SpikeEntry, obs: SentimentObservation, detector: SpikeDetector, top_n: int, counted: CountedIds,
    now: float | None = None,
) -> Update | None:
    """Count ``obs`` into ``entry``; None when this article was already counted for the key.

    Nothing is written: the caller stores the entry, then records the id in ``counted``. ``now`` (wall
    clock) caps future-dated event times, so one bad timestamp cannot push a key's window ahead.
    """
    if counted.window_of(obs.key, obs.article_id) is not None:
        return None
    wall = time.time() if now is None else now
    previous_window = entry.state.window_start
    state, decisions = detector.observe(entry.state, obs.event_time.timestamp(), obs.negative, now=now)
    window = state.window_start if state.window_start is not None else 0.0
    evidence = entry.evidence if state.window_start == previous_window else []
    if obs.negative:
        headline = Headline(
            id=obs.article_id, title=obs.title, url=obs.url,
            negative_score=obs.negative_score, published_at=obs.published_at,
        )
        evidence = sorted([*evidence, headline.model_dump(mode="json")], key=lambda h: -h["negative_score"])[:top_n]
    # a raise may come from the window this observation closed or from the open one: both windows' headlines
    alerts, raised = alerts_of(decisions, entry.evidence + evidence, entry.raised, top_n, wall)
    return Update(SpikeEntry(state, evidence, wall, raised, entry.partition), decisions, window, alerts)
