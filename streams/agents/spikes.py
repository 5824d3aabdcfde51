"""``sentiment.observations`` → per-key spike state in a Faust table → ``alerts``.

Observations are keyed by ticker (or "market"), so each key's state lives in one partition and its
table changelog. The ``spike-state`` value holds the detector's :class:`KeyState` and the most
negative headlines of the open window (the evidence an alert carries); the article ids counted in
the recent windows live one per entry in ``spike-counted`` (:mod:`~finpulse.streams.detect.counted`),
so a re-delivered observation is never counted twice and a busy key's writes stay small. A
decision's alert is sent and acknowledged by Kafka *before* the new state is written, and the state
before the counted id: a crash in between re-sends the alert (Alerta de-duplicates it) instead of
losing it. The agent takes its input in micro-batches (:class:`~finpulse.streams.agents.spike_batch.SpikeBatch`):
each key's entry is read once, counts the batch's observations in arrival order, and is written once
at the end of the batch, after every alert of the batch was acknowledged.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from finpulse.contracts.codecs import Err, decode
from finpulse.contracts.exceptions import SerializationBug
from finpulse.contracts.records import Headline, SentimentObservation, SpikeTick
from finpulse.settings import Settings
from finpulse.streams.agents.spike_batch import SpikeBatch
from finpulse.streams.channels import StreamTopics, batches, in_event
from finpulse.streams.detect.counted import CountedIds
from finpulse.streams.detect.entry import SpikeEntry
from finpulse.streams.detect.spikes import SpikeDetector
from finpulse.streams.metrics import StreamMetrics

logger = logging.getLogger(__name__)

AGENT = "spikes"
MAX_OBSERVATION_BYTES = 1024 * 1024
MAX_TICK_BYTES = 64 * 1024


def register(app: Any, topics: StreamTopics, settings: Settings, metrics: StreamMetrics) -> Any:
    """Add the spike agent, its tables and timer to ``app``; returns the state table (for views and tests)."""
    agent = SpikeAgent(app, topics, settings, metrics)
    app.agent(topics.spike_inputs, name="finpulse.spikes")(agent.run)

    @app.timer(interval=max(1.0, settings.spike.window_s / 4))
    async def tick_raised_keys() -> None:
        await agent.tick_quiet_keys()

    if settings.stream.web_port:
        _register_view(app, agent.table, agent.counted, agent.detector)
    return agent.table


class SpikeAgent:
    """The spike agent's work on one worker: count observations, act on ticks, send and acknowledge alerts."""

    def __init__(self, app: Any, topics: StreamTopics, settings: Settings, metrics: StreamMetrics) -> None:
        self.topics, self.settings, self.metrics = topics, settings, metrics
        self.table = app.Table("spike-state", default=None, partitions=topics.observations.partitions)
        self.counted = CountedIds(app.Table("spike-counted", default=None, partitions=topics.observations.partitions))
        self.detector = SpikeDetector(settings.spike)
        self.top_n = settings.alerts.top_headlines
        self.ticks_topic = topics.ticks.get_topic_name()

    async def emit(self, decisions: list[Any], evidence: list[dict[str, Any]]) -> None:
        for decision in decisions:
            headlines = [Headline.model_validate(h) for h in evidence] if decision.status == "raise" else []
            unique = sorted({h.id: h for h in headlines}.values(), key=lambda h: -h.negative_score)
            alert = decision.to_alert(unique[: self.top_n])
            delivery = await self.topics.alerts.send(key=alert.key.encode(), value=alert.to_bytes())
            await delivery  # acknowledged by Kafka before the state that produced it is stored
            self.metrics.alerts.labels(alert.status).inc()

    async def run(self, stream: Any) -> None:
        stream_settings = self.settings.stream
        async with batches(stream, stream_settings.batch_size, stream_settings.batch_wait_s) as taken:
            async for events in taken:
                self.metrics.events_in.labels(AGENT).inc(len(events))
                batch = SpikeBatch(self.table, self.counted, self.detector, self.top_n)
                for event in events:
                    if event.message.topic == self.ticks_topic:
                        await self.on_tick(event, batch)
                    else:
                        await self.on_observation(event, batch)
                batch.flush(self.table)  # every alert of the batch was acknowledged by Kafka before its state is written

    async def on_observation(self, event: Any, batch: SpikeBatch) -> None:
        result = decode(event.value, SentimentObservation, MAX_OBSERVATION_BYTES)
        if isinstance(result, Err):
            raise SerializationBug(f"unreadable observation: {result.reason}")
        done = batch.count(event, result.value, now=time.time())
        if done is None:
            self.metrics.duplicates.labels(AGENT).inc()
            return
        await self.emit(done.update.decisions, done.evidence)
        self.metrics.events_out.labels(AGENT).inc()

    async def on_tick(self, event: Any, batch: SpikeBatch) -> None:
        result = decode(event.value, SpikeTick, MAX_TICK_BYTES)
        if isinstance(result, Err):
            raise SerializationBug(f"unreadable tick: {result.reason}")
        tick, detector = result.value, self.detector
        entry = batch.entry(tick.key)
        if entry is None:
            return
        if tick.expired:  # an expiry tick only expires; quiet keys get their own tick from the same timer run
            keep_after = entry.keep_ids_after(detector.settings.window_s)
            if keep_after is not None:
                with in_event(event):
                    self.counted.discard(tick.key, tick.expired, keep_after)
            return
        now = tick.now.timestamp()
        if not entry.quiet(now, detector.settings.window_s):
            return
        state, decisions = detector.advance(entry.state, max(now, (entry.state.window_start or 0.0) + detector.settings.window_s))
        if state == entry.state:
            return
        await self.emit(decisions, [])
        evidence = entry.evidence if state.window_start == entry.state.window_start else []
        batch.put(tick.key, SpikeEntry(state, evidence, entry.last_seen), event)

    async def tick_quiet_keys(self) -> None:
        """Tick every raised key of this worker's partitions whose window has ended; expire old counted ids."""
        now, detector, table, ticks = time.time(), self.detector, self.table, self.topics.ticks
        stamp = datetime.fromtimestamp(now, UTC)
        for key, value in list(table.items()):
            if SpikeEntry.load(value, detector, key).quiet(now, detector.settings.window_s):
                await ticks.send(key=key.encode(), value=SpikeTick(key=key, now=stamp).to_bytes())

        def keep_after(key: str) -> float | None:
            value = table.get(key)
            if value is None:
                return None
            return SpikeEntry.load(value, detector, key).keep_ids_after(detector.settings.window_s)

        for key, expired in self.counted.expired(keep_after):
            await ticks.send(key=key.encode(), value=SpikeTick(key=key, now=stamp, expired=expired).to_bytes())


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
