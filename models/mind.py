"""MIND-format logs: ``news.tsv`` and ``behaviors.tsv`` (Microsoft News Dataset layout).

``news.tsv``: news id, category, subcategory, title, abstract, url, title entities, abstract entities
(tab-separated, no header). ``behaviors.tsv``: impression id, user id, time (``11/11/2019 9:05:58 AM``),
history (clicked news ids separated by spaces), impressions (``N1-1 N2-0``: news id and click label; the
MIND test split has no labels). The reader takes our simulated logs and real MIND files alike; a
malformed line raises :class:`MindFormatError` naming the file and the line number.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from finpulse.models.exceptions import MindFormatError

logger = logging.getLogger(__name__)

MIND_TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
NEWS_COLUMNS = 8
BEHAVIOR_COLUMNS = 5


@dataclass(frozen=True, slots=True)
class MindNews:
    news_id: str
    category: str
    subcategory: str
    title: str
    abstract: str = ""
    url: str = ""
    title_entities: str = "[]"
    abstract_entities: str = "[]"

    def text(self) -> str:
        return self.title


@dataclass(frozen=True, slots=True)
class Impression:
    news_id: str
    clicked: bool | None  # None in the unlabelled MIND test split


@dataclass(frozen=True, slots=True)
class Behavior:
    impression_id: str
    user_id: str
    time: datetime
    history: tuple[str, ...]
    impressions: tuple[Impression, ...]


def _clean(field: str) -> str:
    return field.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        handle = path.open("r", encoding="utf-8", newline="")
    except OSError as exc:
        raise MindFormatError(f"{path}: cannot open: {exc.strerror}") from exc
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield number, line
        except UnicodeDecodeError as exc:
            raise MindFormatError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start} of a line)") from exc


def read_news(path: Path) -> dict[str, MindNews]:
    """Every article of a ``news.tsv``; a duplicate id or a line without 8 fields is an error."""
    news: dict[str, MindNews] = {}
    for number, line in _lines(path):
        fields = line.split("\t")
        if len(fields) != NEWS_COLUMNS:
            raise MindFormatError(f"{path}:{number}: expected {NEWS_COLUMNS} tab-separated fields, got {len(fields)}")
        if not fields[0]:
            raise MindFormatError(f"{path}:{number}: empty news id")
        if fields[0] in news:
            raise MindFormatError(f"{path}:{number}: duplicate news id {fields[0]!r}")
        if not fields[3].strip():
            raise MindFormatError(f"{path}:{number}: empty title of {fields[0]!r}")
        news[fields[0]] = MindNews(*fields)
    return news


def parse_time(text: str) -> datetime:
    return datetime.strptime(text.strip(), MIND_TIME_FORMAT)


def read_behaviors(path: Path, news: dict[str, MindNews] | None = None) -> Iterator[Behavior]:
    """The impressions of a ``behaviors.tsv``, in file order; with ``news``, unknown ids are errors."""
    for number, line in _lines(path):
        fields = line.split("\t")
        if len(fields) != BEHAVIOR_COLUMNS:
            raise MindFormatError(f"{path}:{number}: expected {BEHAVIOR_COLUMNS} tab-separated fields, got {len(fields)}")
        impression_id, user_id, when, history, shown = fields
        if not user_id:
            raise MindFormatError(f"{path}:{number}: empty user id")
        try:
            time = parse_time(when)
        except ValueError:
            raise MindFormatError(f"{path}:{number}: time {when!r} is not like 11/11/2019 9:05:58 AM") from None
        items: list[Impression] = []
        for token in shown.split():
            news_id, sep, label = token.rpartition("-")
            if not sep:
                items.append(Impression(token, None))
            elif label in ("0", "1") and news_id:
                items.append(Impression(news_id, label == "1"))
            else:
                raise MindFormatError(f"{path}:{number}: impression {token!r} is not NEWSID-0 or NEWSID-1")
        if not items:
            raise MindFormatError(f"{path}:{number}: no impressions")
        past = tuple(history.split())
        if news is not None:
            for news_id in (*past, *(i.news_id for i in items)):
                if news_id not in news:
                    raise MindFormatError(f"{path}:{number}: news id {news_id!r} is not in news.tsv")
        yield Behavior(impression_id, user_id, time, past, tuple(items))


def write_news(path: Path, news: Sequence[MindNews]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        for n in news:
            fields = (n.news_id, n.category, n.subcategory, n.title, n.abstract, n.url, n.title_entities, n.abstract_entities)
            out.write("\t".join(_clean(f) for f in fields) + "\n")


def write_behaviors(path: Path, behaviors: Sequence[Behavior]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        for b in behaviors:
            shown = " ".join(i.news_id if i.clicked is None else f"{i.news_id}-{int(i.clicked)}" for i in b.impressions)
            out.write(f"{b.impression_id}\t{b.user_id}\t{format_time(b.time)}\t{' '.join(b.history)}\t{shown}\n")


def format_time(when: datetime) -> str:
    # MIND writes hours without a leading zero: 11/11/2019 9:05:58 AM
    hour = when.strftime("%I").lstrip("0") or "12"
    return f"{when.month:02d}/{when.day:02d}/{when.year} {hour}:{when:%M:%S %p}"
