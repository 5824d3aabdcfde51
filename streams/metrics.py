"""Prometheus metrics of the worker, held in one registry per app (no module-level globals)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class StreamMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events_in = Counter("finpulse_events_in", "Records consumed", ["agent"], registry=r)
        self.events_out = Counter("finpulse_events_out", "Records produced or written", ["agent"], registry=r)
        self.dlq = Counter("finpulse_dlq", "Records sent to a dead-letter topic", ["topic", "error_type"], registry=r)
        self.duplicates = Counter("finpulse_duplicates", "Records dropped as already seen", ["agent"], registry=r)
        self.batch_size = Histogram(
            "finpulse_batch_size", "Records per micro-batch", ["agent"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=r,
        )
        self.inference_seconds = Histogram(
            "finpulse_inference_seconds", "Model time per micro-batch", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.es_bulk_seconds = Histogram(
            "finpulse_es_bulk_seconds", "Elasticsearch bulk latency", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.sink_retries = Counter("finpulse_sink_retries", "Retries of a failing downstream", ["sink"], registry=r)
        self.alerts = Counter("finpulse_alerts", "Alerts raised or resolved", ["status"], registry=r)
        self.alert_deliveries = Counter("finpulse_alert_deliveries", "Alerts delivered per sink", ["sink"], registry=r)
        self.open_alerts = Gauge("finpulse_open_alerts", "Keys with an open spike alert", registry=r)
        self.offset_resets = Counter(
            "finpulse_offset_resets", "Partitions whose committed offset fell below the log start and moved up to it",
            ["topic"], registry=r,
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose the registry over HTTP (``port`` 0 leaves it off)."""
        if port:
            start_http_server(port, addr=host, registry=self.registry)
