"""Dead letters of records a sink refused for good: the input record's raw bytes, the sink's status and reason.

An agent that writes a record to a sink (Elasticsearch, Alerta) and gets a refusal that no retry can change
(a mapping error, a 4xx other than 408/429) sends the input record to its dead-letter topic instead of crashing on
it, so one poison record never blocks its partition. ``error_type`` is ``<sink>_<status>`` (``elasticsearch_400``,
``alerta_403``), ``error`` the sink's reason; the value is the input record as it was read, ready to be replayed
once the cause is fixed. Every letter's produce is awaited before the input is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from finpulse.contracts.codecs import Err, dead_letter, encode_checked
from finpulse.streams.metrics import StreamMetrics
from finpulse.streams.sinks.bulk import Rejection

logger = logging.getLogger(__name__)


async def send_refused(topic: Any, event: Any, sink: str, status: int, reason: str, metrics: StreamMetrics) -> Any:
    """Produce the dead letter of ``event`` refused by ``sink``; returns the delivery to await."""
    message = event.message
    err = Err(f"{sink}_{status}", reason)
    letter = dead_letter(topic=message.topic, partition=message.partition, offset=message.offset,
                         key=event.key, value=event.value, err=err)
    delivery = await topic.send(key=event.key, value=encode_checked(letter))
    metrics.dlq.labels(message.topic, err.error_type).inc()
    logger.warning("dead-lettered %s[%d]@%d: %s refused it with %d: %s", message.topic, message.partition,
                   message.offset, sink, status, reason[:300])
    return delivery


async def dead_letter_rejections(topic: Any, rejections: Sequence[Rejection], events: Mapping[tuple[str, str], Any],
                                 metrics: StreamMetrics) -> None:
    """One dead letter per input event that had a document refused (``events``: (index, id) → the event it came
    from), the reasons of all its refused documents together; returns once Kafka acknowledged every letter."""
    refused: dict[int, tuple[Any, list[Rejection]]] = {}
    for rejection in rejections:
        event = events[(rejection.doc.index, rejection.doc.id)]
        refused.setdefault(id(event), (event, []))[1].append(rejection)
    deliveries = []
    for event, its in refused.values():
        reason = "; ".join(r.describe() for r in its)
        deliveries.append(await send_refused(topic, event, "elasticsearch", its[0].status, reason, metrics))
    await asyncio.gather(*deliveries)
