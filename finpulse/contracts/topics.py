"""Every Kafka topic of finpulse, defined in one place.

``finpulse topics create`` creates them; the Faust app and the producers take their names from here.
Faust's own changelog topics (tables) are created by Faust with compaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from finpulse.settings import KafkaSettings

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int | None = 7 * DAY_MS
    compacted: bool = False
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)

    def configs(self) -> dict[str, str]:
        cfg = dict(self.config)
        cfg["cleanup.policy"] = "compact" if self.compacted else "delete"
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        return cfg


NEWS_RAW = "news.raw"
NEWS_RAW_DLQ = "news.raw.dlq"
NEWS_SCORED = "news.scored"
NEWS_INDEX_DLQ = "news.index.dlq"
ALERTS = "alerts"
ALERTS_DLQ = "alerts.dlq"
CLICKS = "clicks"
CLICKS_DLQ = "clicks.dlq"
RECOMMENDATIONS = "recommendations"
RECOMMENDATIONS_INDEX_DLQ = "recommendations.index.dlq"
SENTIMENT_OBSERVATIONS = "sentiment.observations"
SENTIMENT_TICKS = "sentiment.ticks"

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(NEWS_RAW, 4, description="Articles as scraped or replayed (NewsArticle JSON), keyed by article id."),
    TopicSpec(NEWS_RAW_DLQ, 1, retention_ms=30 * DAY_MS, description="Raw news records that failed validation, with reason."),
    TopicSpec(NEWS_SCORED, 4, description="Articles with sentiment (ScoredArticle JSON), keyed by article id."),
    TopicSpec(NEWS_INDEX_DLQ, 1, retention_ms=30 * DAY_MS,
              description="Scored articles Elasticsearch refused for good, with the status and reason."),
    TopicSpec(
        SENTIMENT_OBSERVATIONS, 4, retention_ms=2 * DAY_MS,
        description="One record per (scored article, ticker or market), keyed by ticker: feeds the spike detector.",
    ),
    TopicSpec(
        SENTIMENT_TICKS, 4, retention_ms=DAY_MS,
        description="Clock ticks for raised keys (same keys and partitions as the observations): quiet keys resolve.",
    ),
    TopicSpec(ALERTS, 1, retention_ms=30 * DAY_MS, description="Raised and resolved spikes (SpikeAlert JSON), keyed by ticker."),
    TopicSpec(ALERTS_DLQ, 1, retention_ms=30 * DAY_MS, description="Alert records that could not be decoded."),
    TopicSpec(CLICKS, 4, description="Impression and click events, keyed by user id."),
    TopicSpec(CLICKS_DLQ, 1, retention_ms=30 * DAY_MS, description="Click events that failed validation."),
    TopicSpec(RECOMMENDATIONS, 4, description="Top-K recommendations per user, keyed by user id."),
    TopicSpec(RECOMMENDATIONS_INDEX_DLQ, 1, retention_ms=30 * DAY_MS,
              description="Recommendation lists Elasticsearch refused a document of for good, with the status and reason."),
)


def topic_name(kafka: KafkaSettings, base: str) -> str:
    """The real topic name of a base name under the configured prefix."""
    return f"{kafka.topic_prefix}{base}"
