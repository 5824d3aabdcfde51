"""Replaying a file of headlines to ``news.raw``, as if they were arriving live.

:func:`iter_articles` turns a CSV file (e.g. the twitter-financial-news CSVs, header ``text,label``) or a
JSON-lines file (fields ``title``/``text``, optional ``url``, ``source``, ``published_at``, ``tickers``,
``summary``, ``body``, ``language``) into :class:`NewsArticle` records with tickers tagged; ``.gz`` files
are read transparently. :func:`replay_file` publishes them, keyed by article id, paced either by their
original timestamps scaled by ``speed`` or at a fixed ``rate`` per second, and reports what happened.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import ValidationError

from finpulse.contracts.ids import article_id
from finpulse.contracts.records import NewsArticle, utcnow
from finpulse.contracts.topics import NEWS_RAW, topic_name
from finpulse.settings import Settings
from finpulse.streams.sources.exceptions import ProducerError, ReplayFileError
from finpulse.streams.sources.producer import make_producer
from finpulse.tagging.tickers import TickerTagger, default_tagger

if TYPE_CHECKING:
    from kafka import KafkaProducer

logger = logging.getLogger(__name__)

CSV_SUFFIXES = frozenset({".csv", ".tsv"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
TITLE_MAX = 2048


@dataclass
class ReplayStats:
    """Counts of one replay."""

    read: int = 0  # rows read from the file (times the repeats)
    produced: int = 0  # records handed to the producer
    delivered: int = 0  # records acknowledged by the brokers
    failed: int = 0  # records the brokers did not acknowledge
    skipped: int = 0  # rows that were not articles (empty text, bad JSON, invalid fields)
    tagged: int = 0  # articles with at least one ticker
    elapsed_s: float = 0.0
    topic: str = ""
    first_ids: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.produced / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _open_text(path: Path) -> IO[str]:
    try:
        raw: IO[bytes] = gzip.GzipFile(path, "rb") if path.suffix == ".gz" else path.open("rb")  # type: ignore[assignment]
    except OSError as exc:
        raise ReplayFileError(f"cannot open {path}: {exc}") from exc
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def detect_format(path: Path) -> str:
    """``csv`` or ``jsonl``, from the suffix (before ``.gz``) or else from the first character."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    last = suffixes[-1] if suffixes else ""
    if last in CSV_SUFFIXES:
        return "csv"
    if last in JSONL_SUFFIXES:
        return "jsonl"
    with _open_text(path) as handle:
        head = handle.read(4096).lstrip()
    return "jsonl" if head.startswith("{") else "csv"


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value  # epoch milliseconds or seconds
        return datetime.fromtimestamp(seconds, UTC)
    text = str(value).strip()
    if text.replace(".", "", 1).isdigit():
        return _parse_time(float(text))
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _csv_rows(handle: IO[str], path: Path, text_column: str) -> Iterator[dict[str, Any] | None]:
    delimiter = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
    reader = csv.DictReader(handle, delimiter=delimiter)
    columns = reader.fieldnames or []
    if text_column not in columns:
        fallback = next((c for c in ("title", "text", "headline") if c in columns), None)
        if fallback is None:
            raise ReplayFileError(f"{path}: no column {text_column!r} (columns: {', '.join(columns) or 'none'})")
        logger.info("%s has no column %r; using %r", path, text_column, fallback)
        text_column = fallback
    for row in reader:
        yield {**row, "title": row.get(text_column)}


def _jsonl_rows(handle: IO[str], path: Path, text_column: str) -> Iterator[dict[str, Any] | None]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            logger.warning("%s:%d: not JSON (%s); skipped", path, number, exc)
            yield None
            continue
        if not isinstance(row, dict):
            logger.warning("%s:%d: not a JSON object; skipped", path, number)
            yield None
            continue
        title = row.get("title") or row.get(text_column) or row.get("text") or row.get("headline")
        yield {**row, "title": title}


def _article(row: dict[str, Any], default_source: str, tagger: TickerTagger | None, round_: int) -> NewsArticle:
    title = " ".join(str(row.get("title") or "").split())[:TITLE_MAX]
    if not title:
        raise ValueError("no text")
    url = row.get("url") or None
    source = str(row.get("source") or default_source)
    summary = str(row.get("summary") or "")
    ident = article_id(url, source, title)
    if round_:
        ident = hashlib.sha256(f"{ident}:{round_}".encode()).hexdigest()[:32]  # each repeat is a new article
    given = row.get("tickers")
    if isinstance(given, str):
        given = [t for t in given.replace(";", ",").replace(" ", ",").split(",") if t]
    tickers = list(given) if given else (tagger.tag(title, summary) if tagger else [])
    fields: dict[str, Any] = {
        "id": ident,
        "url": url,
        "source": source,
        "title": title,
        "summary": summary,
        "body": str(row.get("body") or ""),
        "published_at": _parse_time(row.get("published_at")),
        "tickers": tickers,
    }
    if row.get("language"):
        fields["language"] = str(row["language"])
    return NewsArticle(**fields)


def iter_articles(
    path: Path,
    *,
    text_column: str = "text",
    source: str | None = None,
    limit: int | None = None,
    repeat: int = 1,
    tag: bool = True,
    tagger: TickerTagger | None = None,
    stats: ReplayStats | None = None,
) -> Iterator[NewsArticle]:
    """The articles of a CSV or JSON-lines file, tickers tagged, at most ``limit`` of them.

    The file is read ``repeat`` times; repeats get fresh ids so that downstream dedup keeps them.
    Rows that are not articles are logged and counted in ``stats.skipped``.
    """
    path = Path(path)
    if not path.is_file():
        raise ReplayFileError(f"{path} is not a file")
    if repeat < 1:
        raise ReplayFileError(f"repeat must be at least 1 (got {repeat})")
    fmt = detect_format(path)
    default_source = source or f"replay:{path.name.split('.')[0]}"
    active_tagger = (tagger or default_tagger()) if tag else None
    stats = stats if stats is not None else ReplayStats()
    yielded = 0
    for round_ in range(repeat):
        with _open_text(path) as handle:
            rows = _csv_rows(handle, path, text_column) if fmt == "csv" else _jsonl_rows(handle, path, text_column)
            for row in rows:
                if limit is not None and yielded >= limit:
                    return
                stats.read += 1
                if row is None:
                    stats.skipped += 1
                    continue
                try:
                    article = _article(row, default_source, active_tagger, round_)
                except (ValidationError, ValueError, TypeError) as exc:
                    stats.skipped += 1
                    logger.warning("%s row %d skipped: %s", path, stats.read, str(exc).splitlines()[0])
                    continue
                if article.tickers:
                    stats.tagged += 1
                yielded += 1
                yield article


class Pacer:
    """Waits so that records go out at their original pace scaled by ``speed``, or at ``rate`` per second.

    ``speed <= 0`` and no rate means as fast as possible. Records without a time are not delayed.
    """

    def __init__(
        self,
        *,
        speed: float = 1.0,
        rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.speed = speed
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._start: float | None = None
        self._first_time: datetime | None = None
        self._count = 0

    def due(self, published_at: datetime | None) -> float:
        """Seconds after the start at which the next record is due."""
        if self.rate is not None:
            return self._count / self.rate
        if self.speed <= 0 or published_at is None:
            return 0.0
        if self._first_time is None:
            self._first_time = published_at
        return max(0.0, (published_at - self._first_time).total_seconds() / self.speed)

    def wait(self, published_at: datetime | None) -> None:
        now = self._clock()
        if self._start is None:
            self._start = now
        delay = self._start + self.due(published_at) - now
        self._count += 1
        if delay > 0:
            self._sleep(delay)


def publish_articles(
    producer: KafkaProducer,
    topic: str,
    articles: Iterable[NewsArticle],
    *,
    pacer: Pacer | None = None,
    retime: bool = False,
    stats: ReplayStats | None = None,
    on_progress: Callable[[ReplayStats], None] | None = None,
    flush_timeout_s: float = 60.0,
) -> ReplayStats:
    """Send ``articles`` to ``topic`` keyed by id, then flush; counts go to (and come back in) ``stats``.

    ``retime`` stamps each article's ``published_at`` with the time it is sent (live-looking demo data).
    """
    stats = stats if stats is not None else ReplayStats()
    stats.topic = topic
    started = time.perf_counter()

    def delivered(_metadata: object) -> None:
        stats.delivered += 1

    def failed(exc: BaseException) -> None:
        stats.failed += 1
        if stats.failed <= 10:
            logger.error("delivery to %s failed: %r", topic, exc)

    for article in articles:
        if pacer is not None:
            pacer.wait(article.published_at)
        if retime:
            article = article.model_copy(update={"published_at": utcnow(), "fetched_at": utcnow()})
        future = producer.send(topic, value=article.to_bytes(), key=article.id.encode("ascii"))
        future.add_callback(delivered)
        future.add_errback(failed)
        stats.produced += 1
        if len(stats.first_ids) < 10:
            stats.first_ids.append(article.id)
        if on_progress is not None:
            on_progress(stats)
    producer.flush(timeout=flush_timeout_s)
    stats.elapsed_s = time.perf_counter() - started
    if on_progress is not None:
        on_progress(stats)
    unacked = stats.produced - stats.delivered - stats.failed
    if unacked:
        stats.failed += unacked
        logger.error("%d records to %s were not acknowledged within %.0f s", unacked, topic, flush_timeout_s)
    return stats


def replay_file(
    settings: Settings,
    path: Path,
    *,
    speed: float = 1.0,
    rate: float | None = None,
    limit: int | None = None,
    repeat: int = 1,
    text_column: str = "text",
    source: str | None = None,
    retime: bool = False,
    tag: bool = True,
    producer: KafkaProducer | None = None,
    on_progress: Callable[[ReplayStats], None] | None = None,
) -> ReplayStats:
    """Replay ``path`` to ``news.raw`` (under ``settings.kafka.topic_prefix``) and return the counts.

    A ``producer`` passed in is flushed but not closed; otherwise one is built from the settings and closed.
    """
    stats = ReplayStats()
    articles = iter_articles(Path(path), text_column=text_column, source=source, limit=limit, repeat=repeat, tag=tag, stats=stats)
    topic = topic_name(settings.kafka, NEWS_RAW)
    own = producer is None
    active = producer if producer is not None else make_producer(settings.kafka, client_id="finpulse-replay")
    try:
        publish_articles(active, topic, articles, pacer=Pacer(speed=speed, rate=rate), retime=retime, stats=stats, on_progress=on_progress)
    finally:
        if own:
            active.close(timeout=10)
    logger.info(
        "replayed %s to %s: %d produced, %d delivered, %d failed, %d skipped, %d tagged in %.1f s",
        path,
        topic,
        stats.produced,
        stats.delivered,
        stats.failed,
        stats.skipped,
        stats.tagged,
        stats.elapsed_s,
    )
    if stats.produced and stats.delivered == 0:
        raise ProducerError(f"none of {stats.produced} records reached {topic} at {settings.kafka.bootstrap_servers}")
    return stats


def count_rows(path: Path, limit: int | None = None, repeat: int = 1) -> int | None:
    """Rows a replay of ``path`` will read at most (for a progress bar); None when it cannot tell cheaply."""
    try:
        with _open_text(Path(path)) as handle:
            lines = sum(1 for line in handle if line.strip())
    except (OSError, ReplayFileError):
        return None
    rows = max(0, lines - (1 if detect_format(Path(path)) == "csv" else 0)) * repeat
    return min(rows, limit) if limit is not None else rows
