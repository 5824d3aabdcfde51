"""Typed, versioned records that travel on the finpulse topics.

Every record is a pydantic model serialised as UTF-8 JSON. ``schema_version`` lets consumers
refuse records from a future producer instead of misreading them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SentimentLabel = Literal["negative", "neutral", "positive"]
LABELS: tuple[SentimentLabel, ...] = ("negative", "neutral", "positive")
MARKET_KEY = "market"
#: The topics of twitter-financial-news-topic in its label order (label i is ``TOPICS[i]``): what the sentiment
#: model's topic head predicts.
TOPICS: tuple[str, ...] = (
    "Analyst Update", "Fed | Central Banks", "Company | Product News", "Treasuries | Corporate Debt", "Dividend",
    "Earnings", "Energy | Oil", "Financials", "Currencies", "General News | Opinion", "Gold | Metals | Materials", "IPO",
    "Legal | Regulation", "M&A | Investments", "Macro", "Markets", "Politics", "Personnel Change", "Stock Commentary",
    "Stock Movement",
)
#: A short key per topic, in the order of :data:`TOPICS`: what records, index fields and spike keys carry.
TOPIC_SLUGS: tuple[str, ...] = (
    "analyst-update", "fed-central-banks", "company-product-news", "treasuries-corporate-debt", "dividend",
    "earnings", "energy-oil", "financials", "currencies", "general-news-opinion", "gold-metals-materials", "ipo",
    "legal-regulation", "m-and-a-investments", "macro", "markets", "politics", "personnel-change", "stock-commentary",
    "stock-movement",
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def clamp_published(when: datetime, reference: datetime, max_age: timedelta, max_ahead: timedelta) -> datetime:
    """``when`` (a publication time) moved into [``reference`` - ``max_age``, ``reference`` + ``max_ahead``].

    Feeds carry placeholder and mistyped dates (1970, 2099); taken as they are, they would pick a monthly index of
    their own or outrank every fresh article by date. The record keeps the date its source gave; readers clamp it
    against a reference that does not change when the record is read again (when it was written), so a re-delivered
    record lands where it landed the first time.
    """
    return min(max(when, reference - max_age), reference + max_ahead)


class Record(BaseModel):
    """The base of every record finpulse writes to a topic: strict (unknown fields refused), frozen, JSON bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class NewsArticle(Record):
    """An article as scraped or replayed (topic ``news.raw``)."""

    schema_version: Literal[1] = 1
    id: str = Field(min_length=8, max_length=64, pattern=r"^[0-9a-f]+$")
    url: str | None = Field(None, max_length=4096)
    source: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1, max_length=2048)
    summary: str = Field("", max_length=20_000)
    body: str = Field("", max_length=500_000)
    published_at: datetime | None = None
    fetched_at: datetime = Field(default_factory=utcnow)
    tickers: list[str] = Field(default_factory=list, max_length=64)
    language: str = Field("en", min_length=2, max_length=16)

    @field_validator("tickers")
    @classmethod
    def _upper_unique(cls, value: list[str]) -> list[str]:
        seen: dict[str, None] = {}
        for ticker in value:
            t = ticker.strip().upper()
            if not t or len(t) > 12 or not all(c.isalnum() or c in ".-" for c in t):
                raise ValueError(f"invalid ticker {ticker!r}")
            seen[t] = None
        return list(seen)

    @field_validator("published_at", "fetched_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def text_for_model(self) -> str:
        """The text the sentiment model reads: the headline, plus the summary when there is one."""
        return f"{self.title}. {self.summary}" if self.summary else self.title


class ScoredArticle(NewsArticle):
    """An article with its sentiment (topic ``news.scored``)."""

    label: SentimentLabel
    probabilities: dict[SentimentLabel, float]
    negative_score: float = Field(ge=0.0, le=1.0)
    model_version: str
    scored_at: datetime = Field(default_factory=utcnow)
    embedding: list[float] | None = None


class DeadLetter(Record):
    """An input that could not be processed, kept with its raw bytes (topics ``*.dlq``)."""

    schema_version: Literal[1] = 1
    source_topic: str
    partition: int
    offset: int
    key_b64: str | None
    value_b64: str
    value_size: int = 0
    value_sha256: str = ""
    value_truncated: bool = False  # True when only the first DLQ_MAX_VALUE_BYTES are kept (the rest stays at source_topic/offset)
    error_type: str
    error: str
    failed_at: datetime = Field(default_factory=utcnow)


class Headline(Record):
    id: str
    title: str
    url: str | None
    negative_score: float
    published_at: datetime | None


class SpikeAlert(Record):
    """A raised or resolved negative-sentiment spike (topic ``alerts``).

    A resolve's own fields describe the window it was decided on; ``raised`` is the raise it closes, as it was
    sent (so the closed alert keeps the evidence that triggered it); ``resolved_by`` says why (``share``: a window
    of at least ``min_count`` articles came back under the threshold; ``quiet``: no window held enough articles
    for ``quiet_timeout_s``). The three are optional, so the resolves written before them still read.
    """

    schema_version: Literal[1] = 1
    key: str  # a ticker, or "market" for the global series
    status: Literal["raise", "resolve"]
    window_start: datetime
    window_end: datetime
    n: int
    k: int
    share: float
    baseline: float
    p_value: float
    severity: Literal["critical", "major", "minor", "warning", "normal"]
    headlines: list[Headline] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    raised: SpikeAlert | None = None
    resolved_by: Literal["share", "quiet"] | None = None
    quiet_timeout_s: float | None = None

    @property
    def alert_id(self) -> str:
        return f"{self.key}:{int(self.window_start.timestamp())}:{self.status}"


class SentimentObservation(Record):
    """One scored article seen under one key (a ticker or "market"); topic ``sentiment.observations``.

    The scorer fans each article out to one observation per key, keyed by that key, so every key's
    spike state lives in exactly one partition (co-partitioned with its Faust table).
    """

    schema_version: Literal[1] = 1
    key: str
    article_id: str
    event_time: datetime
    negative: bool
    negative_score: float
    title: str
    url: str | None = None
    published_at: datetime | None = None


class SpikeTick(Record):
    """A clock tick for one key (topic ``sentiment.ticks``, keyed like the observations).

    The worker's timer sends one for every raised key whose window has ended, so a key that goes
    quiet after a spike still closes its windows and, after the quiet timeout, resolves; the spike
    agent handles it inside stream iteration, where its table can be written. ``expired`` lists article ids of the key whose
    de-duplication entries fell out of the recent windows and are to be deleted.
    """

    schema_version: Literal[1] = 1
    key: str
    now: datetime
    expired: list[str] = Field(default_factory=list, max_length=10_000)
