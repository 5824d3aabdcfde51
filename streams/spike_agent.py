"""``sentiment.observations`` → per-key spike state in a Faust table → ``alerts``.

Observations are keyed by ticker (or "market"), so each key's state lives in one partition and its
table changelog. The ``spike-state`` value holds the detector's :class:`KeyState` and the most
negative headlines of the open window (the evidence an alert carries); the article ids counted in
the recent windows live one per entry in ``spike-counted`` (:mod:`~finpulse.streams.spike_counted`),
so a re-delivered observation is never counted twice and a busy key's writes stay small. A
decision's alert is sent and acknowledged by Kafka *before* the new state is written, and the state
before the counted id: a crash in between re-sends the alert (Alerta de-duplicates it) instead of
losing it. The agent takes its input in micro-batches (:class:`~finpulse.streams.spike_batch.SpikeBatch`):
each key's entry is read once, counts the batch's observations in arrival order, and is written once
at the end of the batch, after every alert of the batch was acknowledged.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from finpulse.settings import Settings
from finpulse.streams.channels import StreamTopics, batches, in_event
from finpulse.streams.codecs import Err, decode
from finpulse.streams.exceptions import SerializationBug
from finpulse.streams.metrics import StreamMetrics
from finpulse.streams.records import Headline, SentimentObservation, SpikeTick
from finpulse.streams.spike_batch import SpikeBatch
from finpulse.streams.spike_counted import CountedIds
from finpulse.streams.spike_entry import SpikeEntry
from finpulse.streams.spikes import SpikeDetector

logger = logging.getLogger(__name__)

AGENT = "spikes"


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
        async with batches(stream, settings.stream.batch_size, settings.stream.batch_wait_s) as taken:
            async for events in taken:
                metrics.events_in.labels(AGENT).inc(len(events))
                batch = SpikeBatch(table, counted, detector, top_n)
                for event in events:
                    if event.message.topic == ticks_topic:
                        await _on_tick(event, batch)
                        continue
                    result = decode(event.value, SentimentObservation, 1024 * 1024)
                    if isinstance(result, Err):
                        raise SerializationBug(f"unreadable observation: {result.reason}")
                    obs = result.value
                    done = batch.count(event, obs, now=time.time())
                    if done is None:
                        metrics.duplicates.labels(AGENT).inc()
                        continue
                    await emit(done.update.decisions, done.evidence)
                    metrics.events_out.labels(AGENT).inc()
                batch.flush(table)  # every alert of the batch was acknowledged by Kafka before its state is written

    async def _on_tick(event: Any, batch: SpikeBatch) -> None:
        result = decode(event.value, SpikeTick, 64 * 1024)
        if isinstance(result, Err):
            raise SerializationBug(f"unreadable tick: {result.reason}")
        tick = result.value
        entry = batch.entry(tick.key)
        if entry is None:
            return
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
        batch.put(tick.key, SpikeEntry(state, evidence, entry.last_seen), event)

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
