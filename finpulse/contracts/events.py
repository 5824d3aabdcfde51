"""Records of the recommendation topics: click/impression events in, recommendation lists out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import Field, field_validator

from finpulse.contracts.records import Record, utcnow

ID_PATTERN = r"^[A-Za-z0-9_.:@-]+$"
MAX_CLOCK_SKEW = timedelta(minutes=10)


class ClickEvent(Record):
    """One impression or click of an article by a user (topic ``clicks``, keyed by user id)."""

    schema_version: Literal[1] = 1
    user_id: str = Field(min_length=1, max_length=128, pattern=ID_PATTERN)
    article_id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    event_type: Literal["impression", "click"]
    timestamp: datetime
    position: int = Field(ge=0, le=10_000)
    session_id: str = Field(min_length=1, max_length=128, pattern=ID_PATTERN)
    received_at: datetime | None = None  # set by the clicks API when it accepted the event

    @field_validator("timestamp", "received_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def check_clock(self, now: datetime) -> str | None:
        """Why the timestamp is not acceptable at ``now`` (too far in the future), or None."""
        if self.timestamp - now > MAX_CLOCK_SKEW:
            return f"timestamp {self.timestamp.isoformat()} is more than {MAX_CLOCK_SKEW} in the future"
        return None


class RecommendedItem(Record):
    article_id: str
    score: float
    title: str = ""
    url: str | None = None
    tickers: list[str] = Field(default_factory=list)
    published_at: datetime | None = None


class RecommendationList(Record):
    """The top-K feed of one user (topic ``recommendations``, keyed by user id)."""

    schema_version: Literal[1] = 1
    user_id: str
    items: list[RecommendedItem]
    model_version: str
    clicks_seen: int = 0
    trigger_received_at: datetime | None = None  # when the click that caused this list reached the API
    generated_at: datetime = Field(default_factory=utcnow)
