"""The demo's second act: simulated readers click through the clicks API and the worker's live feed answers.

After the headlines are indexed, :func:`run_readers` takes the scored articles from ``news.scored``, lets a few
simulated users (each with a favourite sector or two, :mod:`finpulse.models.simulate`) read pages of them
through ``POST /v1/events`` of a clicks API process, then asks the worker's ``GET /v1/users/{id}/recommendations``
for every reader's feed. :func:`feed_table` shows each reader's favourite sectors next to what the feed recommends,
and :func:`sector_match` measures how much of the feeds falls in the readers' favourite sectors against how much
of the candidate articles does (what a feed that ignored the reader would show).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import numpy as np
from rich.table import Table

from finpulse.demo.exceptions import DemoError
from finpulse.models.simulate import ClickSimulator, SimArticle, SimConfig, SimUser
from finpulse.settings import Settings
from finpulse.tagging.sectors import ALL_SECTORS, article_categories

logger = logging.getLogger(__name__)

READERS = 12
#: A reader's favourite sectors: those holding at least this share of the user's largest sector interest.
FAVOURITE_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class ReaderFeed:
    user: SimUser
    clicks: int
    items: list[dict[str, object]]


def favourite_sectors(user: SimUser) -> list[str]:
    top = float(user.sector_w.max())
    order = np.argsort(-user.sector_w)
    return [ALL_SECTORS[i] for i in order.tolist() if user.sector_w[i] >= FAVOURITE_SHARE * top]


def item_sector(item: dict[str, object]) -> str:
    tickers = item.get("tickers") or []
    return article_categories(tuple(str(t) for t in tickers) if isinstance(tickers, list) else (), str(item.get("title", "")))[0]


def sector_match(feeds: Sequence[ReaderFeed], articles: Sequence[SimArticle]) -> tuple[float, float]:
    """(share of recommended items in their reader's favourite sectors, share of the candidate articles that are)."""
    hits = total = 0
    base = []
    for feed in feeds:
        favourites = set(favourite_sectors(feed.user))
        hits += sum(1 for item in feed.items if item_sector(item) in favourites)
        total += len(feed.items)
        base.append(sum(1 for a in articles if a.sector in favourites) / max(len(articles), 1))
    return (hits / total if total else 0.0), (float(np.mean(base)) if base else 0.0)


def api_url(settings: Settings) -> str:
    """Where a local client reaches the clicks API (a wildcard listen address is reached on loopback)."""
    host = settings.recommend.api_host
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{settings.recommend.api_port}"


def wait_healthy(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise DemoError(f"{url} did not answer 200 within {timeout_s:.0f} s")


def run_readers(settings: Settings, token: str, seconds: float, rate: float, seed: int = 7) -> tuple[list[ReaderFeed], list[SimArticle]]:
    """Simulated readers for ``seconds`` through the clicks API, then every reader's feed from the worker."""
    from finpulse.demo.live import articles_from_topic, send_live

    articles = articles_from_topic(settings, limit=20_000, idle_s=2.0)
    if not articles:
        raise DemoError("no scored articles on news.scored for the readers to choose among")
    simulator = ClickSimulator(articles, SimConfig(users=READERS), seed)
    api = api_url(settings)
    wait_healthy(f"{api}/healthz")
    stats = asyncio.run(send_live(simulator, api, token, rate, seconds))
    logger.info("readers sent %d pages, %d clicks (%d events refused)", stats.pages, stats.clicks, stats.rejected)
    time.sleep(settings.recommend.debounce_s + 2.0)  # the last clicks reach the profiles
    web = f"http://{settings.stream.web_host}:{settings.stream.web_port}"
    view_token = settings.recommend.view_token.get_secret_value() if settings.recommend.view_token else ""
    feeds = []
    with httpx.Client(base_url=web, timeout=10, headers={"Authorization": f"Bearer {view_token}"}) as client:
        for user in simulator.users:
            response = client.get(f"/v1/users/{user.user_id}/recommendations")
            if response.status_code == 404:  # no event of this reader reached the worker
                continue
            response.raise_for_status()
            body = response.json()
            clicks = int(body.get("clicks_seen", 0))
            if clicks:  # a reader who only saw pages has a profile but nothing to rank by
                feeds.append(ReaderFeed(user, clicks, list(body.get("items", []))))
    return feeds, articles


def feed_table(feeds: Sequence[ReaderFeed], shown: int = 6, per_feed: int = 3) -> Table:
    table = Table("reader", "favourite sectors", "clicks", "top of the live feed (sector: headline)", expand=True,
                  title="live recommendations (worker: GET /v1/users/{id}/recommendations)")
    for feed in sorted(feeds, key=lambda f: -f.clicks)[:shown]:
        favourites = favourite_sectors(feed.user)
        lines = []
        for item in feed.items[:per_feed]:
            sector = item_sector(item)
            colour = "green" if sector in favourites else "white"
            lines.append(f"[{colour}]{sector}[/]: {str(item.get('title', ''))[:80]}")
        table.add_row(feed.user.user_id, ", ".join(favourites), str(feed.clicks), "\n".join(lines))
    return table
