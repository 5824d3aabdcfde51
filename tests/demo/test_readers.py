"""The demo's readers act, its pure parts: favourite sectors, the sector of a recommended item, the match measure."""

from __future__ import annotations

import numpy as np

from finpulse.demo.readers import ReaderFeed, api_url, favourite_sectors, item_sector, sector_match
from finpulse.models.simulate import SimArticle, SimUser
from finpulse.settings import Settings
from finpulse.tagging.sectors import ALL_SECTORS


def user(weights: dict[str, float]) -> SimUser:
    sector_w = np.asarray([weights.get(s, 0.001) for s in ALL_SECTORS])
    return SimUser("U1", sector_w, np.ones(3) / 3, frozenset(), 0.0, 1.0, 12.0)


def article(i: int, sector: str) -> SimArticle:
    return SimArticle(f"a{i}", f"headline {i}", (), sector, "markets", 0, 0.0)


def test_favourites_are_the_sectors_near_the_largest_interest_in_order() -> None:
    assert favourite_sectors(user({"energy": 0.5, "financials": 0.3, "technology": 0.1})) == ["energy", "financials"]
    assert favourite_sectors(user({"technology": 0.9})) == ["technology"]


def test_item_sector_reads_the_tickers_first_then_the_words() -> None:
    assert item_sector({"title": "Exxon and Chevron lift output", "tickers": ["XOM"]}) == "energy"
    assert item_sector({"title": "JPMorgan beats estimates", "tickers": ["JPM", "BAC"]}) == "financials"
    assert item_sector({"title": "Regional bank shares slide", "tickers": []}) == "financials"
    assert item_sector({"title": "Stocks close mixed"}) == "markets"


def test_sector_match_compares_the_feeds_with_the_candidates() -> None:
    reader = user({"energy": 0.8})
    articles = [article(i, "energy" if i % 4 == 0 else "technology") for i in range(40)]  # a quarter energy
    feed = [{"title": "oil", "tickers": ["XOM"]}, {"title": "crude", "tickers": ["CVX"]}, {"title": "chips", "tickers": ["NVDA"]},
            {"title": "refinery", "tickers": ["VLO"]}]
    matched, base = sector_match([ReaderFeed(reader, 5, feed)], articles)
    assert matched == 0.75 and base == 0.25
    assert sector_match([], articles) == (0.0, 0.0)
    assert sector_match([ReaderFeed(reader, 1, [])], articles) == (0.0, 0.25)


def test_a_wildcard_listen_address_is_reached_on_loopback() -> None:
    assert api_url(Settings.model_validate({"recommend": {"api_port": 8123}})) == "http://127.0.0.1:8123"
    named = Settings.model_validate({"recommend": {"api_host": "10.0.0.5", "api_port": 80}})
    assert api_url(named) == "http://10.0.0.5:80"
