"""Sector per ticker and topic per headline, for the click simulator.

``finpulse/tagging/data/companies.csv`` has no sector column, so this module ships a small hand-written
GICS-style mapping of widely covered US tickers (written from public knowledge as of 2025). Headlines with
no mapped ticker get a sector from keywords, else ``markets``; the topic comes from keywords too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

SECTORS: dict[str, tuple[str, ...]] = {
    "technology": ("AAPL", "MSFT", "NVDA", "AMD", "INTC", "ORCL", "CRM", "ADBE", "CSCO", "IBM", "QCOM", "AVGO", "TXN", "MU",
                   "NOW", "SHOP", "SNOW", "PLTR", "TSM", "ASML", "UBER", "PYPL", "XYZ", "SQ", "AMAT", "LRCX", "DELL", "HPQ"),
    "communication": ("GOOGL", "GOOG", "META", "NFLX", "DIS", "T", "VZ", "TMUS", "CMCSA", "SNAP", "PINS", "SPOT", "EA", "TTWO",
                      "WBD", "PSKY", "RBLX"),
    "consumer": ("AMZN", "TSLA", "HD", "MCD", "NKE", "SBUX", "TGT", "WMT", "COST", "LOW", "BKNG", "CMG", "F", "GM", "RIVN",
                 "LCID", "BABA", "JD", "PDD", "EBAY", "ETSY", "LULU", "GME", "AMC", "CCL", "RCL", "NCLH", "MAR", "HLT",
                 "KO", "PEP", "PG", "BYND", "KHC", "MDLZ", "CL", "PM", "MO", "TM"),
    "financials": ("JPM", "BAC", "WFC", "C", "GS", "MS", "SCHW", "BLK", "AXP", "V", "MA", "COF", "USB", "PNC", "BRK.B",
                   "HOOD", "COIN", "SOFI", "AIG", "MET", "HSBC", "UBS", "CS", "DB"),
    "healthcare": ("JNJ", "PFE", "MRK", "ABBV", "LLY", "UNH", "BMY", "AMGN", "GILD", "MRNA", "BNTX", "CVS", "TMO", "ABT",
                   "MDT", "ISRG", "NVO", "AZN", "REGN", "VRTX", "BIIB", "HUM", "CI"),
    "energy": ("XOM", "CVX", "COP", "OXY", "SLB", "HAL", "BP", "SHEL", "EOG", "PSX", "MPC", "VLO", "DVN", "KMI", "FCX"),
    "industrials": ("BA", "CAT", "DE", "GE", "HON", "LMT", "RTX", "NOC", "UPS", "FDX", "UNP", "MMM", "DAL", "UAL", "AAL",
                    "LUV"),
    "realestate_utilities": ("AMT", "PLD", "SPG", "O", "NEE", "DUK", "SO", "D", "EXC"),
}

TICKER_SECTOR: dict[str, str] = {ticker: sector for sector, tickers in SECTORS.items() for ticker in tickers}

_SECTOR_WORDS: dict[str, tuple[str, ...]] = {
    "technology": ("tech", "chip", "semiconductor", "software", "cloud", "ai ", "artificial intelligence", "apple", "microsoft",
                   "nvidia", "intel", "cyber"),
    "communication": ("streaming", "media", "telecom", "advertis", "social media", "google", "facebook", "netflix", "disney"),
    "consumer": ("retail", "consumer", "restaurant", "automaker", "car ", "cars", "ev ", "electric vehicle", "tesla", "amazon",
                 "walmart", "cruise", "beverage", "food"),
    "financials": ("bank", "lender", "loan", "credit", "insurer", "brokerage", "fintech", "crypto", "bitcoin", "payments",
                   "mortgage", "wall street"),
    "healthcare": ("drug", "pharma", "biotech", "vaccine", "fda", "health", "medical", "hospital", "trial"),
    "energy": ("oil", "crude", "opec", "natural gas", "energy", "refiner", "drilling", "pipeline", "brent"),
    "industrials": ("airline", "aerospace", "defense", "boeing", "rail", "freight", "manufactur", "industrial", "shipping"),
    "realestate_utilities": ("reit", "real estate", "housing", "home sales", "utility", "utilities", "power grid"),
}

TOPICS: dict[str, tuple[str, ...]] = {
    "earnings": ("earnings", "eps", "quarter", "revenue", "profit", "guidance", "results", "beats", "misses", "q1", "q2", "q3",
                 "q4", "sales"),
    "analyst": ("upgrade", "downgrade", "price target", "rating", "analyst", "overweight", "underweight", "outperform",
                "buy rating", "neutral"),
    "deals": ("merger", "acquisition", "acquire", "buyout", "takeover", "deal", "stake", "ipo", "spin-off", "spinoff"),
    "macro": ("fed", "inflation", "rate hike", "rates", "yield", "treasury", "gdp", "jobs", "unemployment", "recession", "cpi",
              "economy", "ecb", "central bank", "tariff"),
    "legal": ("lawsuit", "sue", "probe", "investigation", "sec ", "regulator", "antitrust", "fine", "settlement", "court"),
    "crypto": ("bitcoin", "crypto", "ethereum", "blockchain", "token"),
}

DEFAULT_SECTOR = "markets"
DEFAULT_TOPIC = "markets"
ALL_SECTORS: tuple[str, ...] = (*SECTORS, DEFAULT_SECTOR)
ALL_TOPICS: tuple[str, ...] = (*TOPICS, DEFAULT_TOPIC)

_WORD_RE = re.compile(r"\s+")


def _norm(text: str) -> str:
    return " " + _WORD_RE.sub(" ", text.lower()) + " "


def sector_of(tickers: Sequence[str], text: str = "") -> str:
    """The sector of the first mapped ticker, else of the first matching keyword, else ``markets``."""
    for ticker in tickers:
        sector = TICKER_SECTOR.get(ticker.upper())
        if sector:
            return sector
    normal = _norm(text)
    for sector, words in _SECTOR_WORDS.items():
        if any(w in normal for w in words):
            return sector
    return DEFAULT_SECTOR


def topic_of(text: str) -> str:
    normal = _norm(text)
    for topic, words in TOPICS.items():
        if any(w in normal for w in words):
            return topic
    return DEFAULT_TOPIC


def article_categories(tickers: Sequence[str], text: str) -> tuple[str, str]:
    """(category, subcategory) of an article as finpulse files it: its sector and its topic.

    The click simulator writes these into the MIND logs' ``category`` and ``subcategory`` columns, and the live
    candidate agent computes them the same way for the category-aware news vectors
    (:class:`finpulse.export.runtime.categories.NewsCategories`).
    """
    return sector_of(tickers, text), topic_of(text)
