"""``alerts`` → alert sinks (Alerta, log) and the alerts index.

The last alert id delivered per key is kept in a table, so an alert re-delivered by Kafka after a
crash is not sent to the sinks a second time; sinks retry transient failures until they accept,
and the offset is acknowledged only after every sink and Elasticsearch accepted the alert or refused
it for good. A refusal for good (an Alerta 4xx other than 408/429, a document Elasticsearch cannot
index) sends the alert record to ``alerts.dlq`` with the sink, status and reason; the other sinks
still get the alert, and the agent goes on (no crash loop on one alert). Every dead letter's produce is
acknowledged by Kafka before the alert's offset is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from finpulse.contracts.codecs import Err, dead_letter, decode, encode_checked
from finpulse.contracts.records import SpikeAlert
from finpulse.settings import Settings
from finpulse.streams.agents.dead_letters import dead_letter_rejections, send_refused
from finpulse.streams.channels import StreamTopics, each_event, in_event
from finpulse.streams.metrics import StreamMetrics
from finpulse.streams.sinks.alert_base import AlertSink
from finpulse.streams.sinks.bulk import BulkWriter, Doc
from finpulse.streams.sinks.exceptions import AlertDeliveryError

logger = logging.getLogger(__name__)

AGENT = "alerts"


def alerts_index(prefix: str, alert: SpikeAlert) -> str:
    return f"{prefix}-alerts-{alert.window_start:%Y.%m}"


def register(
    app: Any,
    topics: StreamTopics,
    settings: Settings,
    metrics: StreamMetrics,
    sinks_factory: Callable[[], Sequence[AlertSink]],
    writer_factory: Callable[[], BulkWriter],
) -> Any:
    """Add the alert delivery agent and its table to ``app``; returns the table.

    Over 60 lines because the agent is a closure over the table, the sinks and the writer that Faust calls with the
    stream; its steps (decode, deliver to each sink, dead-letter refusals, index) read in order in one place."""
    delivered = app.Table("alerts-delivered", default=None, partitions=topics.alerts.partitions)
    prefix = settings.elasticsearch.index_prefix

    @app.agent(topics.alerts, name="finpulse.alerts")
    async def deliver(stream: Any) -> None:
        sinks = list(sinks_factory())
        writer = writer_factory()
        try:
            await _deliver_all(stream, sinks, writer)
        finally:
            for sink in sinks:
                await sink.close()
            await writer.close()

    async def _deliver_all(stream: Any, sinks: list[AlertSink], writer: BulkWriter) -> None:
        async with each_event(stream) as incoming:
            async for event in incoming:
                metrics.events_in.labels(AGENT).inc()
                message = event.message
                result = decode(event.value, SpikeAlert, 1024 * 1024)
                if isinstance(result, Err):
                    letter = dead_letter(topic=message.topic, partition=message.partition, offset=message.offset,
                                         key=event.key, value=event.value, err=result)
                    await (await topics.alerts_dlq.send(key=event.key, value=encode_checked(letter)))
                    metrics.dlq.labels(message.topic, result.error_type).inc()
                    continue
                alert = result.value
                if delivered.get(alert.key) == alert.alert_id:
                    metrics.duplicates.labels(AGENT).inc()
                    continue
                await _to_sinks(event, alert, sinks)
                doc = alert.model_dump(mode="json", exclude={"schema_version"})
                doc["alert_id"] = alert.alert_id
                index = alerts_index(prefix, alert)
                written = await writer.write([Doc(index, alert.alert_id, doc)])
                await dead_letter_rejections(topics.alerts_dlq, written.rejected, {(index, alert.alert_id): event}, metrics)
                with in_event(event):
                    delivered[alert.key] = alert.alert_id
                if alert.status == "raise":
                    metrics.open_alerts.inc()
                else:
                    metrics.open_alerts.dec()
                metrics.events_out.labels(AGENT).inc()

    async def _to_sinks(event: Any, alert: SpikeAlert, sinks: list[AlertSink]) -> None:
        """Deliver ``alert`` to every sink; one that refuses it for good gets it dead-lettered, the others still
        get it."""
        for sink in sinks:
            try:
                await sink.deliver(alert)
            except AlertDeliveryError as exc:
                await (await send_refused(topics.alerts_dlq, event, sink.name, exc.status, exc.reason, metrics))
                continue
            metrics.alert_deliveries.labels(sink.name).inc()
