"""``sentiment.observations`` → per-key spike state in a Faust table → ``alerts``.

Observations are keyed by ticker (or "market"), so each key's state lives in one partition and its
table changelog. The table value holds the detector's :class:`KeyState`, the article ids counted in
the recent windows (so a re-delivered observation is never counted twice) and the most negative
headlines of the open window (the evidence an alert carries). A decision's alert is sent and
acknowledged by Kafka *before* the new state is written: a crash in between re-sends the alert
(Alerta de-duplicates it) instead of losing it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from finpulse.settings import Settings
from finpulse.streams.channels import StreamTopics, in_event
from finpulse.streams.codecs import Err, decode
from finpulse.streams.exceptions import SerializationBug
from finpulse.streams.metrics import StreamMetrics
from finpulse.streams.records import Headline, SentimentObservation, SpikeTick
from finpulse.streams.spikes import KeyState, SpikeDetector

logger = logging.getLogger(__name__)

AGENT = "spikes"


@dataclass
class SpikeEntry:
    """What the spike table stores per key (as a plain dict)."""

    state: KeyState
    ids: dict[str, float] = field(default_factory=dict)  # article id → window start it was counted in
    evidence: list[dict[str, Any]] = field(default_factory=list)  # Headline dicts of the open window
    last_seen: float = 0.0  # wall clock of the last observation: ticks act only on keys quiet for a window

    @classmethod
    def load(cls, value: dict[str, Any] | None, detector: SpikeDetector, key: str) -> SpikeEntry:
        if value is None:
            return cls(detector.new_state(key))
        return cls(KeyState.from_dict(value["state"]), dict(value["ids"]), list(value["evidence"]),
                   float(value.get("last_seen", 0.0)))

    def dump(self) -> dict[str, Any]:
        return {"state": self.state.to_dict(), "ids": self.ids, "evidence": self.evidence, "last_seen": self.last_seen}

    def quiet(self, now: float, window_s: float) -> bool:
        """Raised, and no observation arrived for a whole window of wall-clock time."""
        return self.state.raised and now - self.last_seen >= window_s


def update(
    entry: SpikeEntry, obs: SentimentObservation, detector: SpikeDetector, top_n: int, now: float | None = None
) -> tuple[SpikeEntry, list[Any]] | None:
    """Count ``obs`` into ``entry``; None when this article was already counted for the key.

    ``now`` (wall clock) caps future-dated event times, so one bad timestamp cannot push a key's window ahead.
    """
    if obs.article_id in entry.ids:
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
    keep_after = window - detector.settings.window_s
    ids = {aid: w for aid, w in entry.ids.items() if w >= keep_after}
    ids[obs.article_id] = window
    return SpikeEntry(state, ids, evidence, wall), decisions


def register(app: Any, topics: StreamTopics, settings: Settings, metrics: StreamMetrics) -> Any:
    """Add the spike agent and its table to ``app``; returns the table (for views and tests)."""
    table = app.Table("spike-state", default=None, partitions=topics.observations.partitions)
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
        async for event in stream.events():
            metrics.events_in.labels(AGENT).inc()
            if event.message.topic == ticks_topic:
                await _on_tick(event)
                continue
            result = decode(event.value, SentimentObservation, 1024 * 1024)
            if isinstance(result, Err):
                raise SerializationBug(f"unreadable observation: {result.reason}")
            obs = result.value
            entry = SpikeEntry.load(table.get(obs.key), detector, obs.key)
            updated = update(entry, obs, detector, top_n, now=time.time())
            if updated is None:
                metrics.duplicates.labels(AGENT).inc()
                continue
            new_entry, decisions = updated
            await emit(decisions, entry.evidence + new_entry.evidence)
            with in_event(event):
                table[obs.key] = new_entry.dump()
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
        now = tick.now.timestamp()
        if not entry.quiet(now, detector.settings.window_s):
            return
        state, decisions = detector.advance(entry.state, max(now, (entry.state.window_start or 0.0) + detector.settings.window_s))
        if state == entry.state:
            return
        await emit(decisions, [])
        evidence = entry.evidence if state.window_start == entry.state.window_start else []
        with in_event(event):
            table[tick.key] = SpikeEntry(state, entry.ids, evidence, entry.last_seen).dump()

    @app.timer(interval=max(1.0, settings.spike.window_s / 4))
    async def tick_raised_keys() -> None:
        """Tick every raised key of this worker's partitions whose window has ended."""
        now = time.time()
        for key, value in list(table.items()):
            if SpikeEntry.load(value, detector, key).quiet(now, detector.settings.window_s):
                await topics.ticks.send(key=key.encode(), value=SpikeTick(key=key, now=datetime.fromtimestamp(now, UTC)).to_bytes())

    if settings.stream.web_port:
        _register_view(app, table, detector)
    return table


def describe(entry: SpikeEntry, detector: SpikeDetector) -> dict[str, Any]:
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
        "counted_ids": len(entry.ids),
        "evidence": entry.evidence,
    }


def _register_view(app: Any, table: Any, detector: SpikeDetector) -> None:
    from faust import web

    @app.page("/spikes/{key}/")
    class SpikeView(web.View):
        """``GET /spikes/<key>/``: the spike state of a ticker (or ``market``), from the partition owner."""

        @app.table_route(table=table, match_info="key")
        async def get(self, request: web.Request, key: str) -> web.Response:
            value = table.get(key)
            if value is None:
                return self.json({"key": key, "error": "no articles seen for this key"}, status=404)
            return self.json(describe(SpikeEntry.load(value, detector, key), detector))
