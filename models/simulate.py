"""A click simulator: users with latent interests choosing among real articles.

Each user has sector and topic interests (sparse Dirichlet draws), a few favourite tickers, a taste for
negative or positive news, an activity level and an hour of the day they read at. A session shows pages of
articles; each shown article is clicked with probability ``position_bias(pos) · engagement(hour) ·
sigmoid(affinity(user, article))``. The same generator writes offline logs in MIND format
(:func:`write_mind_logs`, fixed seed → identical files) and drives the clicks API live
(:func:`live_sessions`). Everything random comes from one ``numpy.random.Generator`` seeded by the caller.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from finpulse.models.exceptions import ArticleSourceError, MindFormatError
from finpulse.models.mind import Behavior, Impression, MindNews, write_behaviors, write_news
from finpulse.tagging.sectors import ALL_SECTORS, ALL_TOPICS, article_categories

logger = logging.getLogger(__name__)

#: twitter-financial-news-sentiment labels: 0 bearish, 1 bullish, 2 neutral.
CSV_SENTIMENT = {"0": -1, "1": 1, "2": 0}
LABEL_SENTIMENT = {"negative": -1, "neutral": 0, "positive": 1}


@dataclass(frozen=True, slots=True)
class SimArticle:
    id: str
    title: str
    tickers: tuple[str, ...]
    sector: str
    topic: str
    sentiment: int  # -1 negative, 0 neutral, 1 positive
    published: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class SimUser:
    user_id: str
    sector_w: np.ndarray
    topic_w: np.ndarray
    tickers: frozenset[str]
    tone: float  # -1 likes bad news, +1 likes good news
    sessions_per_day: float
    peak_hour: float


@dataclass(frozen=True, slots=True)
class Shown:
    article: SimArticle
    position: int
    clicked: bool


@dataclass(frozen=True, slots=True)
class SimPage:
    user: SimUser
    session_id: str
    time: datetime
    shown: tuple[Shown, ...]


@dataclass(frozen=True)
class SimConfig:
    users: int = 1000
    days: float = 7.0
    page_size: int = 10
    pages_per_session: tuple[int, int] = (1, 3)
    sector_weight: float = 6.0
    topic_weight: float = 3.0
    ticker_weight: float = 2.5
    tone_weight: float = 2.5
    base_logit: float = -7.0
    position_exponent: float = 0.3
    candidate_window_s: float = 2 * 86_400.0


def position_bias(position: int, exponent: float) -> float:
    return 1.0 / (1.0 + position) ** exponent


def engagement(hour: float) -> float:
    """Readers click more during market hours (UTC 13–21) than at night."""
    return 0.75 + 0.35 * math.exp(-(((hour - 17.0 + 12.0) % 24.0 - 12.0) ** 2) / 18.0)


def make_users(n: int, rng: np.random.Generator, tickers: Sequence[str], prefix: str = "U") -> list[SimUser]:
    users = []
    pool = sorted(set(tickers))
    for i in range(n):
        sector_w = rng.dirichlet(np.full(len(ALL_SECTORS), 0.15))
        topic_w = rng.dirichlet(np.full(len(ALL_TOPICS), 0.3))
        favs = frozenset(rng.choice(pool, size=min(len(pool), int(rng.integers(0, 4))), replace=False).tolist()) if pool else frozenset()
        tone = float(np.clip(rng.normal(0.0, 0.6), -1.0, 1.0))
        users.append(SimUser(f"{prefix}{i}", sector_w, topic_w, favs, tone, float(rng.gamma(2.0, 0.6)),
                             float(rng.uniform(0, 24))))
    return users


class ClickModel:
    """The ground-truth click probabilities of the simulation."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._sector_index = {s: i for i, s in enumerate(ALL_SECTORS)}
        self._topic_index = {t: i for i, t in enumerate(ALL_TOPICS)}

    def affinity(self, user: SimUser, article: SimArticle) -> float:
        c = self.config
        sector = user.sector_w[self._sector_index.get(article.sector, len(ALL_SECTORS) - 1)] / user.sector_w.max()
        topic = user.topic_w[self._topic_index.get(article.topic, len(ALL_TOPICS) - 1)] / user.topic_w.max()
        ticker = 1.0 if user.tickers.intersection(article.tickers) else 0.0
        return (c.base_logit + c.sector_weight * sector + c.topic_weight * topic + c.ticker_weight * ticker
                + c.tone_weight * user.tone * article.sentiment)

    def relevance(self, user: SimUser, article: SimArticle) -> float:
        """sigmoid(affinity): the click probability without position bias and time of day, what an ideal ranker orders by."""
        return 1.0 / (1.0 + math.exp(-self.affinity(user, article)))

    def probability(self, user: SimUser, article: SimArticle, position: int, hour: float) -> float:
        return min(1.0, self.relevance(user, article) * position_bias(position, self.config.position_exponent)
                   * engagement(hour))


class ClickSimulator:
    """Sessions of simulated users over ``articles`` (sorted by publication time)."""

    def __init__(self, articles: Sequence[SimArticle], config: SimConfig, seed: int) -> None:
        if not articles:
            raise ArticleSourceError("the simulation needs at least one article")
        self.articles = sorted(articles, key=lambda a: (a.published, a.id))
        self.config = config
        self.rng = np.random.default_rng(seed)
        all_tickers = [t for a in self.articles for t in a.tickers]
        self.users = make_users(config.users, self.rng, all_tickers)
        self.model = ClickModel(config)
        self._published = np.asarray([a.published for a in self.articles])

    def _page(self, user: SimUser, session_id: str, when: float) -> SimPage:
        c = self.config
        hi = int(np.searchsorted(self._published, when, side="right"))
        lo = int(np.searchsorted(self._published, when - c.candidate_window_s, side="left"))
        if hi - lo < c.page_size:
            lo = max(0, hi - c.page_size * 5)
            hi = max(hi, min(len(self.articles), lo + c.page_size))
        rows = self.rng.choice(np.arange(lo, hi), size=min(c.page_size, hi - lo), replace=False)
        moment = datetime.fromtimestamp(when, UTC)
        hour = moment.hour + moment.minute / 60.0
        shown = []
        for position, row in enumerate(rows.tolist()):
            article = self.articles[row]
            clicked = bool(self.rng.random() < self.model.probability(user, article, position, hour))
            shown.append(Shown(article, position, clicked))
        return SimPage(user, session_id, moment, tuple(shown))

    def session_times(self, user: SimUser, start: float, days: float) -> list[float]:
        times = []
        for day in range(math.ceil(days)):
            for _ in range(int(self.rng.poisson(user.sessions_per_day))):
                hour = (user.peak_hour + self.rng.normal(0.0, 2.0)) % 24.0
                t = start + day * 86_400.0 + hour * 3600.0
                if t < start + days * 86_400.0:
                    times.append(t)
        return times

    def pages(self, start: float) -> Iterator[SimPage]:
        """Every page of every session over ``config.days`` from ``start`` (epoch), in time order."""
        c = self.config
        sessions: list[tuple[float, int, int]] = []
        for u, user in enumerate(self.users):
            for k, t in enumerate(self.session_times(user, start, c.days)):
                sessions.append((t, u, k))
        sessions.sort()
        for t, u, k in sessions:
            user = self.users[u]
            n_pages = int(self.rng.integers(c.pages_per_session[0], c.pages_per_session[1] + 1))
            for p in range(n_pages):
                yield self._page(user, f"{user.user_id}-S{k}", t + 30.0 * p)


TRUTH_FILE = "truth.tsv"
TRUTH_NEWS_FILE = "truth_news.tsv"


@dataclass(frozen=True, slots=True)
class TrueAttributes:
    """What the simulator's click model knows about an article (:data:`TRUTH_NEWS_FILE`)."""

    sector: str
    topic: str
    sentiment: int
    tickers: tuple[str, ...]


def write_truth_news(path: Path, rows: Sequence[tuple[str, SimArticle]]) -> None:
    """``news id <TAB> sector <TAB> topic <TAB> sentiment <TAB> space-separated tickers`` per article."""
    with path.open("w", encoding="utf-8") as handle:
        for news_id, a in rows:
            handle.write(f"{news_id}\t{a.sector}\t{a.topic}\t{a.sentiment}\t{' '.join(a.tickers)}\n")


def read_truth_news(path: Path) -> dict[str, TrueAttributes]:
    out: dict[str, TrueAttributes] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 5:
                raise MindFormatError(f"{path}:{number}: expected 5 tab-separated fields, got {len(fields)}")
            try:
                sentiment = int(fields[3])
            except ValueError as exc:
                raise MindFormatError(f"{path}:{number}: bad sentiment {fields[3]!r}") from exc
            out[fields[0]] = TrueAttributes(fields[1], fields[2], sentiment, tuple(fields[4].split()))
    return out


def write_truth(path: Path, rows: Sequence[tuple[str, Sequence[float]]]) -> None:
    """``impression id <TAB> relevance of each shown article`` (same order as its impressions)."""
    with path.open("w", encoding="utf-8") as handle:
        for impression_id, relevances in rows:
            handle.write(impression_id + "\t" + " ".join(f"{r:.6g}" for r in relevances) + "\n")


def read_truth(path: Path) -> dict[str, np.ndarray]:
    """The simulator's true relevances per impression id (:data:`TRUTH_FILE`)."""
    truth: dict[str, np.ndarray] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            impression_id, sep, values = line.rstrip("\n").partition("\t")
            try:
                truth[impression_id] = np.asarray([float(v) for v in values.split()], dtype=np.float64)
            except ValueError as exc:
                raise MindFormatError(f"{path}:{number}: bad relevance value ({exc})") from exc
            if not sep:
                raise MindFormatError(f"{path}:{number}: expected 'impression id<TAB>relevances'")
    return truth


def write_mind_logs(
    simulator: ClickSimulator, out_dir: Path, start: float, history_length: int = 50
) -> tuple[int, int]:
    """``news.tsv``, ``behaviors.tsv`` and the simulator's truth of the simulation in ``out_dir``.

    :data:`TRUTH_FILE` holds the position-free click probability of every shown article: it gives the evaluation an
    oracle row (the best ranking any model could reach on these logs). :data:`TRUTH_NEWS_FILE` holds the article
    attributes the click model used. Training never reads either. Returns (articles, impressions).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    news_ids = {a.id: f"N{i + 1}" for i, a in enumerate(simulator.articles)}
    history: dict[str, list[str]] = {}
    behaviors: list[Behavior] = []
    truth: list[tuple[str, list[float]]] = []
    for page in simulator.pages(start):
        past = history.setdefault(page.user.user_id, [])
        items = tuple(Impression(news_ids[s.article.id], s.clicked) for s in page.shown)
        if any(s.clicked for s in page.shown):
            behaviors.append(Behavior(str(len(behaviors) + 1), page.user.user_id, page.time.replace(tzinfo=None),
                                      tuple(past[-history_length:]), items))
            truth.append((behaviors[-1].impression_id,
                          [simulator.model.relevance(page.user, s.article) for s in page.shown]))
        for s in page.shown:
            if s.clicked:
                past.append(news_ids[s.article.id])
    news = [
        MindNews(news_ids[a.id], a.sector, a.topic, a.title, "", "", "[]", "[]") for a in simulator.articles
    ]
    write_news(out_dir / "news.tsv", news)
    write_behaviors(out_dir / "behaviors.tsv", behaviors)
    write_truth(out_dir / TRUTH_FILE, truth)
    write_truth_news(out_dir / TRUTH_NEWS_FILE, [(news_ids[a.id], a) for a in simulator.articles])
    logger.info("wrote %d articles and %d impressions to %s", len(news), len(behaviors), out_dir)
    return len(news), len(behaviors)


def articles_from_csv(path: Path, start: float, days: float, seed: int, limit: int | None = None,
                      text_column: str = "text", label_column: str = "label") -> list[SimArticle]:
    """Headlines of a CSV (e.g. twitter-financial-news-sentiment), published uniformly over the period."""
    from finpulse.contracts.ids import article_id
    from finpulse.tagging.tickers import tag_tickers

    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or text_column not in reader.fieldnames:
                raise ArticleSourceError(f"{path}: no {text_column!r} column")
            rows = [(r[text_column], r.get(label_column, "")) for r in reader if r.get(text_column, "").strip()]
    except OSError as exc:
        raise ArticleSourceError(f"cannot read {path}: {exc.strerror}") from exc
    if limit is not None:
        rows = rows[:limit]
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(start - 2 * 86_400.0, start + days * 86_400.0, size=len(rows)))
    order = rng.permutation(len(rows))
    articles = []
    seen: set[str] = set()
    for (text, label), when in zip((rows[i] for i in order), times.tolist(), strict=True):
        title = " ".join(text.split())
        aid = article_id(None, f"sim:{path.name}", title)
        if aid in seen:
            continue
        seen.add(aid)
        tickers = tuple(tag_tickers(title))
        articles.append(SimArticle(aid, title, tickers, *article_categories(tickers, title),
                                   CSV_SENTIMENT.get(str(label).strip(), 0), when))
    return articles


def article_from_scored(article: object) -> SimArticle:
    """A simulation article of a :class:`~finpulse.contracts.records.ScoredArticle`."""
    from finpulse.contracts.records import ScoredArticle

    assert isinstance(article, ScoredArticle)
    when = (article.published_at or article.fetched_at).timestamp()
    return SimArticle(article.id, article.title, tuple(article.tickers),
                      *article_categories(article.tickers, article.text_for_model()), LABEL_SENTIMENT.get(article.label, 0), when)


def page_events(page: SimPage) -> list[dict[str, object]]:
    """The API events of one page: an impression per shown article, then a click per clicked one."""
    stamp = page.time.isoformat()
    events: list[dict[str, object]] = []
    for s in page.shown:
        base = {"user_id": page.user.user_id, "article_id": s.article.id, "timestamp": stamp,
                "position": s.position, "session_id": page.session_id}
        events.append({**base, "event_type": "impression"})
        if s.clicked:
            events.append({**base, "event_type": "click"})
    return events


def live_pages(simulator: ClickSimulator, now: float) -> Iterator[SimPage]:
    """An endless stream of pages at wall-clock time ``now`` (users chosen by activity)."""
    weights = np.asarray([u.sessions_per_day for u in simulator.users])
    weights = weights / weights.sum()
    k = 0
    while True:
        user = simulator.users[int(simulator.rng.choice(len(simulator.users), p=weights))]
        k += 1
        yield simulator._page(user, f"{user.user_id}-L{k}", now)


def default_start() -> float:
    return datetime(2026, 1, 5, tzinfo=UTC).timestamp()


def days_ago(days: float) -> float:
    return (datetime.now(UTC) - timedelta(days=days)).timestamp()
