"""``sentiment.observations`` → per-key spike state in a Faust table → ``alerts``.

Observations are keyed by ticker (or "market"), so each key's state lives in one partition and its
table changelog. The ``spike-state`` value holds the detector's :class:`KeyState` and the most
negative headlines of the open window (the evidence an alert carries); the article ids counted in
the recent windows live one per entry in ``spike-counted`` (:mod:`~finpulse.streams.spike_counted`),
so a re-delivered observation is never counted twice and a busy key's writes stay small. A
decision's alert is sent and acknowledged by Kafka *before* the new state is written, and the state
before the counted id: a crash in between re-sends the alert (Alerta de-duplicates it) instead of
losing it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from finpulse.settings import Settings
from finpulse.streams.channels import StreamTopics, each_event, in_event
from finpulse.streams.codecs import Err, decode
from finpulse.streams.exceptions import SerializationBug
from finpulse.streams.metrics import StreamMetrics
from finpulse.streams.records import Headline, SentimentObservation, SpikeTick
from finpulse.streams.spike_counted import CountedIds
from finpulse.streams.spikes import KeyState, SpikeDetector

logger = logging.getLogger(__name__)

AGENT = "spikes"


@dataclass
class SpikeEntry:
    """What the spike table stores per key (as a plain dict)."""

    state: KeyState
    evidence: list[dict[str, Any]] = field(default_factory=list)  # Headline dicts of the open window
    last_seen: float = 0.0  # wall clock of the last observation: ticks act only on keys quiet for a window

    @classmethod
    def load(cls, value: dict[str, Any] | None, detector: SpikeDetector, key: str) -> SpikeEntry:
        if value is None:
            return cls(detector.new_state(key))
        return cls(KeyState.from_dict(value["state"]), list(value["evidence"]), float(value.get("last_seen", 0.0)))

    def dump(self) -> dict[str, Any]:
        return {"state": self.state.to_dict(), "evidence": self.evidence, "last_seen": self.last_seen}

    def keep_ids_after(self, window_s: float) -> float | None:
        """Counted ids of windows before this bound can go: they are older than the window before the open one."""
        return None if self.state.window_start is None else self.state.window_start - window_s

    def quiet(self, now: float, window_s: float) -> bool:
        """Raised, and no observation arrived for a whole window of wall-clock time."""
        return self.state.raised and now - self.last_seen >= window_s


@dataclass(frozen=True)
class Update:
    """What counting one observation produced: the new entry, the alert decisions and the window it counted in."""

    entry: SpikeEntry
    decisions: list[Any]
    window_start: float


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
    return Update(SpikeEntry(state, evidence, wall), decisions, window)


def register(app: Any, topics: StreamTopics, settings: Settings, metrics: StreamMetrics) -> Any:
    """Add the spike agent and its table to ``app``; returns the table (for views and tests)."""
    table = app.Table("spike-state", default=None, partitions=topics.observations.partitions)
    counted = CountedIds(app.Table("spike-counted", default=None, partitions=topics.observations.partitions))
    detector = SpikeDetector(settings.spike)
    top_n = settings.alerts.top_headlines

    ticks_topic = topics.ticks.get_topic_name()

    async def emit(decisions: list[Any], evidence: list[dict[str, Any]]) -> None:
        for decision in decisions:
            headlines = [Headline.model_validate(h) for h in evidence] if decision.status == "raise" else []
            unique = sorted({h.id: h for h in headlines}.values(), key=lambda h: -h.negative_score)
            alert = decision.to_alert(unique[:top_n])
            delivery = await topics.alerts.send(key=alert.key.encode(), value=alert.to_bytes())
            await delivery  # acknowledged by Kafka before the state that produced it is stored
            metrics.alerts.labels(alert.status).inc()

    @app.agent(topics.spike_inputs, name="finpulse.spikes")
    async def spikes(stream: Any) -> None:
        async with each_event(stream) as incoming:
            async for event in incoming:
                metrics.events_in.labels(AGENT).inc()
                if event.message.topic == ticks_topic:
                    await _on_tick(event)
                    continue
                result = decode(event.value, SentimentObservation, 1024 * 1024)
                if isinstance(result, Err):
                    raise SerializationBug(f"unreadable observation: {result.reason}")
                obs = result.value
                entry = SpikeEntry.load(table.get(obs.key), detector, obs.key)
                updated = update(entry, obs, detector, top_n, counted, now=time.time())
                if updated is None:
                    metrics.duplicates.labels(AGENT).inc()
                    continue
                await emit(updated.decisions, entry.evidence + updated.entry.evidence)
                with in_event(event):
                    table[obs.key] = updated.entry.dump()
                    counted.add(obs.key, obs.article_id, updated.window_start)
                metrics.events_out.labels(AGENT).inc()

    async def _on_tick(event: Any) -> None:
        result = decode(event.value, SpikeTick, 64 * 1024)
        if isinstance(result, Err):
            raise SerializationBug(f"unreadable tick: {result.reason}")
        tick = result.value
        value = table.get(tick.key)
        if value is None:
            return
        entry = SpikeEntry.load(value, detector, tick.key)
        if tick.expired:  # an expiry tick only expires; quiet keys get their own tick from the same timer run
            keep_after = entry.keep_ids_after(detector.settings.window_s)
            if keep_after is not None:
                with in_event(event):
                    counted.discard(tick.key, tick.expired, keep_after)
            return
        now = tick.now.timestamp()
        if not entry.quiet(now, detector.settings.window_s):
            return
        state, decisions = detector.advance(entry.state, max(now, (entry.state.window_start or 0.0) + detector.settings.window_s))
        if state == entry.state:
            return
        await emit(decisions, [])
        evidence = entry.evidence if state.window_start == entry.state.window_start else []
        with in_event(event):
            table[tick.key] = SpikeEntry(state, evidence, entry.last_seen).dump()

    @app.timer(interval=max(1.0, settings.spike.window_s / 4))
    async def tick_raised_keys() -> None:
        """Tick every raised key of this worker's partitions whose window has ended; expire old counted ids."""
        now = time.time()
        stamp = datetime.fromtimestamp(now, UTC)
        for key, value in list(table.items()):
            if SpikeEntry.load(value, detector, key).quiet(now, detector.settings.window_s):
                await topics.ticks.send(key=key.encode(), value=SpikeTick(key=key, now=stamp).to_bytes())

        def keep_after(key: str) -> float | None:
            value = table.get(key)
            if value is None:
                return None
            return SpikeEntry.load(value, detector, key).keep_ids_after(detector.settings.window_s)

        for key, expired in counted.expired(keep_after):
            await topics.ticks.send(key=key.encode(), value=SpikeTick(key=key, now=stamp, expired=expired).to_bytes())

    if settings.stream.web_port:
        _register_view(app, table, counted, detector)
    return table


def describe(entry: SpikeEntry, detector: SpikeDetector, counted_ids: int) -> dict[str, Any]:
    """What the spike view shows of a key: the open window, its baseline and the alert state."""
    state = entry.state
    return {
        "key": state.key,
        "window_start": state.window_start,
        "window_s": detector.settings.window_s,
        "n": state.n,
        "k": state.k,
        "baseline": detector.baseline(state),
        "raised": state.raised,
        "windows_closed": state.windows_closed,
        "counted_ids": counted_ids,
        "evidence": entry.evidence,
    }


def _register_view(app: Any, table: Any, counted: CountedIds, detector: SpikeDetector) -> None:
    from faust import web

    @app.page("/spikes/{key}/")
    class SpikeView(web.View):
        """``GET /spikes/<key>/``: the spike state of a ticker (or ``market``), from the partition owner."""

        @app.table_route(table=table, match_info="key")
        async def get(self, request: web.Request, key: str) -> web.Response:
            value = table.get(key)
            if value is None:
                return self.json({"key": key, "error": "no articles seen for this key"}, status=404)
            return self.json(describe(SpikeEntry.load(value, detector, key), detector, counted.count(key)))
