"""Ticker tagging: cashtags, exchange-prefixed symbols and company names found in a text.

One compiled regular expression does all the work in a single pass over the text: the company names
(from ``data/companies.csv``) are compiled into a character trie, so the cost of a match does not grow
with the number of companies. Matching is case-sensitive on whole words ("Apple" tags AAPL, "apple pie"
does not). Names that are also common words or names ("Target", "Gap", "Ford", marked ``~`` in the data
file) only tag when the context says "company": a corporate suffix or a possessive follows, or the name
stands capitalised inside a sentence-case text (not at the start of a sentence, not in a Title Case or
ALL CAPS headline). A text that names no known company gets no ticker; cashtags of symbols that are not
in the dictionary are kept, since they are explicit.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from finpulse.tagging.exceptions import CompanyDataError

logger = logging.getLogger(__name__)

MAX_TICKERS = 64  # NewsArticle.tickers holds at most this many
AMBIGUOUS_MARK = "~"
_TICKER_RE = re.compile(r"^[A-Z][A-Z0-9]{0,5}(?:\.[A-Z]{1,2})?$")
_CORP_SUFFIXES = (
    "Inc",
    "Incorporated",
    "Corp",
    "Corporation",
    "Co",
    "Company",
    "Companies",
    "Cos",
    "Ltd",
    "Limited",
    "plc",
    "PLC",
    "LLC",
    "Group",
    "Holdings",
    "Stores",
    "Brands",
    "SA",
    "AG",
    "SE",
    "NV",
)
# Suffixes that make an ambiguous name a company ("Shell Companies", "Target Group" do not).
_COMPANY_SUFFIXES = frozenset({"Inc", "Incorporated", "Corp", "Corporation", "Co", "Ltd", "Limited", "plc", "PLC", "LLC"})
# Words after an ambiguous name that make it a company even at the start of a headline.
_MARKET_WORDS = frozenset(
    "shares stock stocks beats misses tops raises cuts lowers reports posts earnings revenue sales profit "
    "ceo shareholders investors recalls announces agrees plans files sues shuts closes hires lays".split()
)
_EXCHANGES = ("NYSE American", "NYSE Arca", "NYSEArca", "NYSE", "NASDAQ", "Nasdaq", "NasdaqGS", "AMEX", "OTC")
_URL_RE = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_WORD_RE = re.compile(r"[^\W\d_][\w'&.-]*")
_SENTENCE_BREAKS = frozenset(".!?:;-|\u2013\u2014\u2022")
_OPENERS = "\"'([{\u201c\u2018 "


@dataclass(frozen=True)
class Company:
    """One company of the dictionary: its ticker, canonical name and other names."""

    ticker: str
    name: str
    aliases: tuple[str, ...] = ()
    ambiguous: frozenset[str] = field(default_factory=frozenset)

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def _data_path() -> Path:
    return Path(str(resources.files("finpulse.tagging") / "data" / "companies.csv"))


def load_companies(path: Path | None = None) -> list[Company]:
    """Read the company dictionary (``#`` lines are comments; columns ``ticker,name,aliases``)."""
    path = path or _data_path()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CompanyDataError(f"cannot read company data {path}: {exc}") from exc
    rows = csv.reader(line for line in lines if line.strip() and not line.lstrip().startswith("#"))
    header = next(rows, None)
    if header != ["ticker", "name", "aliases"]:
        raise CompanyDataError(f"{path}: header must be ticker,name,aliases (got {header})")
    companies: list[Company] = []
    for number, row in enumerate(rows, start=2):
        if len(row) != 3:
            raise CompanyDataError(f"{path}: row {number} has {len(row)} columns, expected 3: {row}")
        ticker, name, alias_field = (cell.strip() for cell in row)
        if not _TICKER_RE.match(ticker):
            raise CompanyDataError(f"{path}: row {number}: bad ticker {ticker!r}")
        if not name or name.startswith(AMBIGUOUS_MARK):
            raise CompanyDataError(f"{path}: row {number}: the canonical name must be given and unambiguous")
        aliases: list[str] = []
        ambiguous: set[str] = set()
        for raw in alias_field.split("|"):
            alias = raw.strip()
            if not alias:
                continue
            if alias.startswith(AMBIGUOUS_MARK):
                alias = alias[1:].strip()
                ambiguous.add(alias)
            aliases.append(alias)
        companies.append(Company(ticker, name, tuple(aliases), frozenset(ambiguous)))
    return companies


def _trie_regex(words: Iterable[str]) -> str:
    """A regex source matching exactly ``words``, built from their character trie (longest match first)."""
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, dict]) -> str:
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(trie)


def _is_title_case(text: str) -> bool:
    words = [w for w in _WORD_RE.findall(text)[1:] if len(w) >= 4]  # the first word is capitalised anyway
    if len(words) < 3:
        return False
    return sum(1 for w in words if w[0].isupper()) / len(words) >= 0.6


def _is_upper_case(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 10 and sum(1 for c in letters if c.isupper()) / len(letters) >= 0.8


def _at_sentence_start(text: str, start: int) -> bool:
    before = text[:start].rstrip(_OPENERS)
    return not before or before[-1] in _SENTENCE_BREAKS


def _after_capitalised_word(text: str, start: int) -> bool:
    """The name continues a capitalised phrase ("Harrison Ford", "Price Target", "U.S. Shell")."""
    before = text[:start].rstrip(" ")
    words = _WORD_RE.findall(before[-40:])
    if not words or not before.endswith(words[-1]):
        return False
    word = words[-1].replace("\u2019", "'")
    return word[0].isupper() and not word.endswith("'s")  # "Brazil's Vale" is a company


def _followed_by_market_word(text: str, end: int) -> bool:
    """The next word is one news uses of companies ("Zoom shares slip", "Target beats estimates")."""
    following = _WORD_RE.match(text, end + 1) if text[end : end + 1] == " " else None
    return following is not None and following.group().lower().rstrip(".,;:'") in _MARKET_WORDS


class TickerTagger:
    """Finds the tickers a text is about (see the module docstring for the rules)."""

    def __init__(self, companies: Sequence[Company]) -> None:
        self._ticker_of: dict[str, str] = {}
        self._ambiguous: set[str] = set()
        for company in companies:
            for name in company.names():
                previous = self._ticker_of.setdefault(name, company.ticker)
                if previous != company.ticker:
                    logger.warning("company name %r maps to %s and %s; keeping %s", name, previous, company.ticker, previous)
            self._ambiguous |= company.ambiguous
        self.tickers = frozenset(c.ticker for c in companies)
        suffix = "|".join(re.escape(s) for s in _CORP_SUFFIXES)
        exchange = "|".join(re.escape(e) for e in _EXCHANGES)
        names = _trie_regex(self._ticker_of) if self._ticker_of else "(?!)"
        self._pattern = re.compile(
            r"(?<![\w$])\$(?P<cashtag>[A-Za-z]{1,6}(?:[.-][A-Za-z]{1,2})?)(?![\w$])"
            rf"|\b(?:{exchange})\s?:\s?(?P<listed>[A-Z]{{1,5}}(?:\.[A-Z])?)\b"
            rf"|(?<![\w&$@.'\u2019-])(?P<name>{names})"
            rf"(?P<suffix>,?\s(?:{suffix})\b\.?)?(?P<possessive>['\u2019]s?)?(?![\w&])"
        )

    @staticmethod
    def _company_context(match: re.Match[str]) -> bool:
        """A singular corporate suffix ("Gap Inc") or a possessive ("Target's") follows the name."""
        suffix = (match.group("suffix") or "").strip(" ,.")
        return suffix in _COMPANY_SUFFIXES or bool(match.group("possessive"))

    @classmethod
    def from_csv(cls, path: Path | None = None) -> TickerTagger:
        return cls(load_companies(path))

    def __len__(self) -> int:
        return len(self._ticker_of)

    def tag(self, *texts: str | None) -> list[str]:
        """Tickers found in ``texts``, in order of first appearance, without duplicates."""
        found: dict[str, None] = {}
        for text in texts:
            if text:
                for ticker in self._tag_one(text):
                    found[ticker] = None
        return list(found)[:MAX_TICKERS]

    def _tag_one(self, text: str) -> Iterable[str]:
        text = _URL_RE.sub(" ", text)
        title_case: bool | None = None
        upper_case = _is_upper_case(text)
        for match in self._pattern.finditer(text):
            if symbol := match.group("cashtag"):
                symbol = symbol.upper()
                if len(symbol) >= 3 and symbol[-2] == "-":  # BRK-B is written BRK.B
                    symbol = symbol[:-2] + "." + symbol[-1]
                yield symbol
                continue
            if symbol := match.group("listed"):
                yield symbol
                continue
            name = match.group("name")
            if upper_case and name.isupper() and len(name) <= 4:
                continue  # "UPS AND DOWNS": short all-caps names say nothing in an all-caps text
            if name in self._ambiguous and not self._company_context(match):
                if _after_capitalised_word(text, match.start()):
                    continue
                if not _followed_by_market_word(text, match.end()):
                    if title_case is None:
                        title_case = _is_title_case(text)
                    if title_case or upper_case or _at_sentence_start(text, match.start()):
                        continue
            yield self._ticker_of[name]


@lru_cache(maxsize=1)
def default_tagger() -> TickerTagger:
    """The tagger over the shipped company dictionary (built once, on first use)."""
    return TickerTagger.from_csv()


def tag_tickers(*texts: str | None) -> list[str]:
    """Tickers found in ``texts`` by the default tagger."""
    return default_tagger().tag(*texts)
