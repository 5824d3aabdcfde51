"""RSS/Atom feeds: the list of feeds to poll and parsing a fetched feed into entries (feedparser)."""

from __future__ import annotations

import calendar
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax import SAXException

from finpulse.streams.sources.exceptions import FeedListError, SourceError
from finpulse.streams.sources.extract import strip_html

logger = logging.getLogger(__name__)


class FeedParseError(SourceError):
    """A fetched feed is not well-formed RSS/Atom (the poll skips it and goes on with the others)."""


@dataclass(frozen=True)
class FeedEntry:
    """One item of a feed."""

    link: str | None
    title: str
    summary: str
    published_at: datetime | None
    guid: str | None = None


@dataclass(frozen=True)
class ParsedFeed:
    url: str
    title: str | None
    language: str | None
    entries: list[FeedEntry]


def load_feed_list(path: Path) -> list[str]:
    """Feed URLs of a file: one a line, ``#`` starts a comment, blank lines ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FeedListError(f"cannot read feed list {path}: {exc}") from exc
    urls: list[str] = []
    for number, line in enumerate(lines, start=1):
        url = line.split("#", 1)[0].strip()
        if not url:
            continue
        if not url.startswith(("http://", "https://")):
            raise FeedListError(f"{path}:{number}: {url!r} is not an http(s) URL")
        urls.append(url)
    return list(dict.fromkeys(urls))


def _time(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    return None


def parse_feed(content: bytes, url: str, headers: Mapping[str, str] | None = None) -> ParsedFeed:
    """Entries of an RSS or Atom document; raises :class:`FeedParseError` when it is not well-formed XML.

    Benign oddities feedparser reports (a wrong declared charset, a text/html content type) are logged
    and the entries kept.
    """
    import feedparser

    parsed = feedparser.parse(content, response_headers=dict(headers or {}))
    if parsed.get("bozo"):
        problem = parsed.get("bozo_exception")
        if isinstance(problem, SAXException) or not parsed.get("version"):
            raise FeedParseError(f"{url}: not a well-formed feed: {problem}")
        logger.warning("%s: %s (entries kept)", url, problem)
    if not parsed.get("version"):
        raise FeedParseError(f"{url}: not an RSS or Atom document")
    channel = parsed.get("feed", {})
    entries: list[FeedEntry] = []
    for item in parsed.get("entries", []):
        link = item.get("link") or None
        title = strip_html(item.get("title") or "")
        if not title and not link:
            logger.debug("%s: entry without title nor link skipped", url)
            continue
        summary = strip_html(item.get("summary") or item.get("description") or "")
        entries.append(FeedEntry(link=link, title=title, summary=summary, published_at=_time(item), guid=item.get("id")))
    return ParsedFeed(url=url, title=strip_html(channel.get("title") or "") or None, language=channel.get("language"), entries=entries)
