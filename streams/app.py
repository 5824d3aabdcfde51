"""Builds the Faust app from settings and wires the agents; nothing else lives here.

Nothing happens at import time: :func:`create_app` is called by ``finpulse worker`` (or a test) with
the settings built once by the CLI, and every heavy part (model session, Elasticsearch client, alert
sinks) is built lazily by its agent when the worker starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from finpulse.settings import KafkaSettings, Settings
from finpulse.streams import faust_fixes
from finpulse.streams.agents import alerts, candidates, clicks, feeds, index, score, spikes
from finpulse.streams.agents.recommend import RecommendParts
from finpulse.streams.agents.score import EmbeddingScorer, Scorer
from finpulse.streams.channels import StreamTopics
from finpulse.streams.metrics import StreamMetrics
from finpulse.streams.sinks.alert_base import AlertSink
from finpulse.streams.sinks.bulk import BulkWriter
from finpulse.streams.sinks.registry import build_sinks

logger = logging.getLogger(__name__)


@dataclass
class StreamApp:
    """The Faust app and the parts tests and views reach into."""

    app: Any
    topics: StreamTopics
    metrics: StreamMetrics
    spike_table: Any  # None without the alerts role
    delivered_table: Any


def _broker_credentials(kafka: KafkaSettings) -> Any:
    """Faust's credentials for ``kafka``'s security protocol (None for PLAINTEXT)."""
    import faust

    from finpulse.infra.kafka_clients import ssl_context

    context = ssl_context(kafka)
    if kafka.security_protocol.sasl:
        assert kafka.sasl_password is not None  # checked by KafkaSettings
        return faust.SASLCredentials(  # SASL_SSL with a context, SASL_PLAINTEXT without
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=kafka.sasl_mechanism,
        )
    return faust.SSLCredentials(context) if context is not None else None


def default_scorer_factory(settings: Settings) -> Callable[[], Scorer]:
    def load() -> Scorer:
        from finpulse.export.runtime import SentimentRuntime

        runtime = SentimentRuntime.load(None, None, settings.model, batch_size=settings.model.inference_batch_size)
        # The pairing with the recommendation model was checked before the worker connected (streams/worker.py).
        return EmbeddingScorer(runtime) if settings.recommend.shared_encoder else runtime

    return load


def default_writer_factory(settings: Settings, metrics: StreamMetrics) -> Callable[[], BulkWriter]:
    def build() -> BulkWriter:
        from finpulse.streams.sinks.elasticsearch import make_async_es_client

        return BulkWriter(
            make_async_es_client(settings.elasticsearch),
            backoff_s=settings.elasticsearch.retry_backoff_s,
            warn_after=settings.elasticsearch.max_retries,
            on_retry=metrics.sink_retries.labels("elasticsearch").inc,
            on_bulk_seconds=metrics.es_bulk_seconds.observe,
            max_bytes=settings.elasticsearch.bulk_max_bytes,
        )

    return build


def faust_app(settings: Settings) -> Any:
    """The Faust app with finpulse's delivery settings (at-least-once, acks from all replicas, crash on agent bugs)."""
    import faust
    from mode.supervisors import CrashingSupervisor

    kafka = settings.kafka
    settings.stream.data_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app_id = settings.worker_app_id()
    app = faust.App(
        app_id,
        broker=[f"kafka://{host}" for host in kafka.broker_list()],
        broker_credentials=_broker_credentials(kafka),
        store=f"{settings.stream.store}://",  # rocksdb: faust.stores.rocksdb over rocksdict
        datadir=str(settings.stream.data_dir / app_id),
        processing_guarantee="at_least_once",  # exactly_once needs transactions (unsupported by Tansu)
        producer_acks=-1,
        producer_linger=kafka.producer_linger_s,
        broker_session_timeout=kafka.session_timeout_s,
        broker_heartbeat_interval=kafka.heartbeat_interval_s,
        broker_request_timeout=kafka.request_timeout_s,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=True,
        topic_replication_factor=1,
        table_standby_replicas=settings.stream.standby_replicas,
        web_enabled=settings.stream.web_port > 0,
        web_port=settings.stream.web_port or 6066,
        web_bind=settings.stream.web_host,
        web_in_thread=False,
        # Faust's own views are off: /table/* reads table data (user profiles) and /router/* tells the cluster's
        # layout, both to anyone; statistics, /graph and /performance describe the worker's insides. Routing a
        # view request to the owner of a key (table_route) reads the assignment, not these views. What stays is
        # finpulse's token-protected view and Faust's plain index ({"status": "OK"} at /).
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        autodiscover=False,
        # An agent that crashes (a bug, e.g. SerializationBug) takes the worker down loudly, with a
        # non-zero exit, instead of leaving a silently dead agent; uncommitted input is re-delivered.
        agent_supervisor=CrashingSupervisor,
        # On shutdown, do not wait for events sitting in a take() buffer to be acknowledged: that wait
        # never ends once the agents stop. Their offsets are not committed, so they are re-delivered
        # at the next start and written idempotently (nothing lost, nothing duplicated).
        stream_wait_empty=False,
    )
    return app


def create_app(
    settings: Settings,
    *,
    scorer_factory: Callable[[], Scorer] | None = None,
    writer_factory: Callable[[], BulkWriter] | None = None,
    sinks_factory: Callable[[], Sequence[AlertSink]] | None = None,
    metrics: StreamMetrics | None = None,
) -> StreamApp:
    """The finpulse Faust app for ``settings`` (factories default to the real model, ES and sinks)."""
    kafka = settings.kafka
    metrics = metrics or StreamMetrics()
    app = faust_app(settings)
    changelogs = faust_fixes.install(app, kafka, lambda topic: metrics.offset_resets.labels(topic).inc())
    topics = StreamTopics.declare(app, settings)
    sinks = sinks_factory or (
        lambda: build_sinks(settings, on_retry=lambda name: metrics.sink_retries.labels(name).inc())
    )
    writer = writer_factory or default_writer_factory(settings, metrics)
    roles = set(settings.stream.roles)
    spike_table = delivered = None
    if "news" in roles:
        score.register(app, topics, settings, metrics, scorer_factory or default_scorer_factory(settings))
        index.register(app, topics, settings, metrics, writer)
    if "alerts" in roles:
        spike_table = spikes.register(app, topics, settings, metrics)
        delivered = alerts.register(app, topics, settings, metrics, sinks, writer)
    if "recommend" in roles:
        recommend = RecommendParts.build(app, topics, settings, metrics, writer)
        candidates.register(recommend)
        clicks.register(recommend)
        feeds.register(recommend)
    changelogs.track(app.tables.values())
    return StreamApp(app, topics, metrics, spike_table, delivered)
