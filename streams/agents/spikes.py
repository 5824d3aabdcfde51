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

Any text can be a cashtag (up to 64 per article), so the table is bounded (:mod:`~finpulse.streams.retention`):
a key idle for ``spike.idle_expiry_s`` goes, and over ``spike.max_keys`` the least recently seen go first, each
with its counted ids, deleted through the tables in the key's own partition; raised keys stay until they resolve,
and the ``market`` key stays.
Expiry waits for the batch in progress (``SpikeAgent.lock``), whose entries live in memory until it is written.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from finpulse.contracts.codecs import Err, decode
from finpulse.contracts.exceptions import SerializationBug
from finpulse.contracts.records import MARKET_KEY, SentimentObservation, SpikeAlert, SpikeTick
from finpulse.settings import Settings
from finpulse.streams.agents.spike_batch import SpikeBatch
from finpulse.streams.channels import StreamTopics, batches, in_event
from finpulse.streams.detect.counted import CountedIds
from finpulse.streams.detect.entry import SpikeEntry, alerts_of
from finpulse.streams.detect.spikes import SpikeDetector
from finpulse.streams.metrics import StreamMetrics
from finpulse.streams.retention import BoundedTable

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

    @app.timer(interval=settings.stream.sweep_interval_s)
    async def expire_idle_keys() -> None:
        async with agent.lock:
            agent.bounds.expire(time.time())

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
        # A batch holds its keys' entries across awaits (alert sends), so expiry waits for the batch to be written.
        self.lock = asyncio.Lock()
        spike = settings.spike
        self.bounds = BoundedTable(
            self.table, topics.observations.get_topic_name(), topics.observations.partitions,
            idle_s=spike.idle_expiry_s, max_count=spike.max_keys, last_used=lambda v: float(v.get("last_seen", 0.0)),
            partition_of=lambda _key, v: v.get("p"), keep=_kept, after_delete=self.forget_counted,
        )

    def forget_counted(self, by_partition: Mapping[int, list[str]]) -> None:
        """Delete the counted article ids of deleted keys (in the keys' partitions)."""
        partition_of = {key: partition for partition, keys in by_partition.items() for key in keys}
        for key, article_ids in self.counted.ids_of(set(partition_of)).items():
            with self.bounds.deleting(partition_of[key]):
                self.counted.discard(key, article_ids, keep_after=math.inf)

    async def emit(self, alerts: list[SpikeAlert]) -> None:
        for alert in alerts:
            delivery = await self.topics.alerts.send(key=alert.key.encode(), value=alert.to_bytes())
            await delivery  # acknowledged by Kafka before the state that produced it is stored
            self.metrics.alerts.labels(alert.status).inc()

    async def run(self, stream: Any) -> None:
        stream_settings = self.settings.stream
        async with batches(stream, stream_settings.batch_size, stream_settings.batch_wait_s) as taken:
            async for events in taken:
                async with self.lock:
                    await self.on_batch(events)

    async def on_batch(self, events: list[Any]) -> None:
        self.metrics.events_in.labels(AGENT).inc(len(events))
        batch = SpikeBatch(self.table, self.counted, self.detector, self.top_n)
        for event in events:
            if event.message.topic == self.ticks_topic:
                await self.on_tick(event, batch)
            else:
                await self.on_observation(event, batch)
        batch.flush(self.table)  # every alert of the batch was acknowledged by Kafka before its state is written
        if batch.new_keys:
            self.bounds.added(time.time(), batch.new_keys)

    async def on_observation(self, event: Any, batch: SpikeBatch) -> None:
        result = decode(event.value, SentimentObservation, MAX_OBSERVATION_BYTES)
        if isinstance(result, Err):
            raise SerializationBug(f"unreadable observation: {result.reason}")
        done = batch.count(event, result.value, now=time.time())
        if done is None:
            self.metrics.duplicates.labels(AGENT).inc()
            return
        await self.emit(done.update.alerts)
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
        state, decisions = detector.advance(entry.state, now)
        if state == entry.state:
            return
        alerts, raised = alerts_of(decisions, [], entry.raised, self.top_n, time.time())
        await self.emit(alerts)
        evidence = entry.evidence if state.window_start == entry.state.window_start else []
        batch.put(tick.key, SpikeEntry(state, evidence, entry.last_seen, raised, entry.partition), event)

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


def _kept(value: dict[str, Any]) -> bool:
    """Raised keys stay until they resolve; the market key (every article's) is never a flood's victim."""
    state = value["state"]
    return bool(state.get("raised")) or state.get("key") == MARKET_KEY


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
