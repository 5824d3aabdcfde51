"""Ticker tagging: cashtags, exchange symbols, company names, ambiguity rules, speed."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from finpulse.tagging.exceptions import CompanyDataError
from finpulse.tagging.tickers import Company, TickerTagger, default_tagger, load_companies, tag_tickers

SENT_VALID = Path("/work/shared/data/twitter-financial-news-sentiment/sent_valid.csv")


def valid_headlines() -> list[str]:
    if not SENT_VALID.is_file():
        pytest.skip(f"{SENT_VALID} is not there")
    with SENT_VALID.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$AAPL up 3%", ["AAPL"]),
        ("$BRK.B and $brk-b", ["BRK.B"]),
        ("$aapl, $TSLA's rally", ["AAPL", "TSLA"]),
        ("paid $5 for it, revenue $5.2B, US$10", []),
        ("margin at 5$ and $ 10", []),
        ("Houlihan Lokey, Inc. (NYSE:HLI) and (NASDAQ: MSFT)", ["HLI", "MSFT"]),
        ("$CL_F futures", []),
    ],
)
def test_cashtags_and_exchange_symbols(text: str, expected: list[str]) -> None:
    assert tag_tickers(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Apple Inc. beats; Google's cloud grows", ["AAPL", "GOOGL"]),
        ("J.P. Morgan upgrades Coca-Cola", ["JPM", "KO"]),
        ("Lowe's tops estimates while McDonald's and Yum! Brands lag", ["LOW", "MCD", "YUM"]),
        ("i bought an apple and some microsoft-style software", []),
        ("Dow Jones falls 500 points; Nasdaq up 1%", []),
        ("Shares of Target rose after Target Corp said", ["TGT"]),
        ("Target beats estimates, raises outlook", ["TGT"]),
        ("Target price raised to $200 at Citi", ["C"]),
        ("Harrison Ford stars in a new movie", []),
        ("Ford's F-150 recall widens", ["F"]),
        ("Gap Inc. names a new CEO", ["GPS"]),
        ("Gap between rich and poor widens", []),
        ("Delta variant spreads in Europe", []),
        ("investors cheered as Delta raised its outlook", ["DAL"]),
        ("Analysts Raise Price Target On Apple", ["AAPL"]),
        ("UPS AND DOWNS OF THE MARKET THIS WEEK", []),
        ("UPS raises its forecast", ["UPS"]),
        ("see https://example.com/Apple/Microsoft for more", []),
        ("Texas Gov. Greg Abbott signs the bill", []),
        ("Abbott beats estimates on diagnostics", ["ABT"]),
        ("Apache helicopter deal signed", []),
    ],
)
def test_company_names(text: str, expected: list[str]) -> None:
    assert tag_tickers(text) == expected


@pytest.mark.parametrize(
    ("headline", "expected"),
    [
        ("$DELL $HPE - Dell, HPE targets trimmed on compute headwinds https://t.co/YRUHZw7cYl", ["DELL", "HPE"]),
        ("Citi raises Alphabet on margin potential", ["C", "GOOGL"]),
        ("Morgan Stanley sees GM doubling in bull case scenario", ["MS", "GM"]),
        ("UBS Upgrades Hasbro As Stock Price Bakes In Tariffs, Slow Holiday", ["UBS", "HAS"]),
        ("Southwest Airlines Pushes Back Schedule For 737 MAX Until April", ["LUV"]),
        (
            "Brazil's Vale loses spot as world's top iron ore producer to Rio Tinto https://t.co/YFpdog1bsu https://t.co/QYFVJa50go",
            ["VALE", "RIO"],
        ),
        ("Medtronic's stock surges after earnings rise above expectations, and outlook raised", ["MDT"]),
        (
            "Zoom shares slip over security concerns, rising competition https://t.co/9LgzbL552F https://t.co/VSENzzofYP",
            ["ZM"],
        ),
        ("Warren Plans to Crack Down on U.S. Shell Companies, Tax Evasion", []),
        ("Hedge Funds Dropped The Ball On Continental Building Products Inc (CBPX)", []),
        ("Gold rises https://t.co/pCFxistRTq https://t.co/EccKbrGpHF", []),
    ],
)
def test_real_headlines(headline: str, expected: list[str]) -> None:
    assert headline in valid_headlines()
    assert tag_tickers(headline) == expected


def test_tags_many_real_headlines_fast() -> None:
    headlines = valid_headlines()
    tagger = default_tagger()
    started = time.perf_counter()
    tagged = [tagger.tag(h) for h in headlines]
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"{len(headlines)} headlines took {elapsed:.2f}s"
    share = sum(1 for t in tagged if t) / len(tagged)
    assert 0.2 < share < 0.9
    assert all(len(t) == len(set(t)) for t in tagged)


def test_tag_merges_texts_in_order() -> None:
    assert tag_tickers("Nvidia jumps", None, "", "Apple and Nvidia") == ["NVDA", "AAPL"]


def test_dictionary_is_large_and_well_formed() -> None:
    companies = load_companies()
    assert len(companies) >= 400
    tickers = [c.ticker for c in companies]
    assert len(tickers) == len(set(tickers))
    by_ticker = {c.ticker: c for c in companies}
    assert "Google" in by_ticker["GOOGL"].names()
    assert "Target" in by_ticker["TGT"].ambiguous


def test_custom_companies() -> None:
    tagger = TickerTagger([Company("ACME", "Acme Widgets", ("Acme",)), Company("MOON", "Moon Corp", ("~Moon",))])
    assert tagger.tag("Acme Widgets Ltd. buys Acme") == ["ACME"]


def test_bad_data_file(tmp_path: Path) -> None:
    bad = tmp_path / "c.csv"
    bad.write_text("# comment\nticker,name,aliases\nnot a ticker,Foo,\n", encoding="utf-8")
    with pytest.raises(CompanyDataError, match="bad ticker"):
        load_companies(bad)
    bad.write_text("sym,name\n", encoding="utf-8")
    with pytest.raises(CompanyDataError, match="header"):
        load_companies(bad)
    with pytest.raises(CompanyDataError, match="cannot read"):
        load_companies(tmp_path / "missing.csv")
