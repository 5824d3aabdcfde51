"""The click simulator: deterministic under a seed, position bias, interests that show in the clicks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from finpulse.models.exceptions import MindFormatError
from finpulse.models.mind import read_behaviors, read_news
from finpulse.models.simulate import (
    TRUTH_FILE,
    TRUTH_NEWS_FILE,
    ClickSimulator,
    SimArticle,
    SimConfig,
    default_start,
    page_events,
    read_truth,
    read_truth_news,
    write_mind_logs,
)
from finpulse.tagging.sectors import sector_of, topic_of

START = default_start()
TITLES = {
    "financials": ["JPMorgan bank profit rises", "Goldman lender sees loan growth", "Bank credit losses climb"],
    "energy": ["Oil jumps as OPEC cuts output", "Crude slides on supply", "Refiner margins widen on oil"],
    "technology": ["Nvidia chip demand soars", "Software maker beats", "Semiconductor stocks rally"],
}


def articles(n: int = 300) -> list[SimArticle]:
    out = []
    sectors = list(TITLES)
    for i in range(n):
        sector = sectors[i % 3]
        title = f"{TITLES[sector][i % 3]} #{i}"
        out.append(SimArticle(f"{i:032x}", title, (), sector, topic_of(title), (i % 3) - 1, START - 86_400 + i * 600.0))
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_logs(tmp_path: Path) -> None:
    config = SimConfig(users=40, days=2)
    write_mind_logs(ClickSimulator(articles(), config, seed=3), tmp_path / "a", START)
    write_mind_logs(ClickSimulator(articles(), config, seed=3), tmp_path / "b", START)
    write_mind_logs(ClickSimulator(articles(), config, seed=4), tmp_path / "c", START)
    for name in ("news.tsv", "behaviors.tsv", TRUTH_FILE, TRUTH_NEWS_FILE):
        assert digest(tmp_path / "a" / name) == digest(tmp_path / "b" / name)
    assert digest(tmp_path / "a" / "behaviors.tsv") != digest(tmp_path / "c" / "behaviors.tsv")
    news = read_news(tmp_path / "a" / "news.tsv")
    behaviors = list(read_behaviors(tmp_path / "a" / "behaviors.tsv", news))
    assert behaviors and all(any(i.clicked for i in b.impressions) for b in behaviors)
    for user in {b.user_id for b in behaviors}:
        times = [b.time for b in behaviors if b.user_id == user]
        assert times == sorted(times)


def test_truth_rows_match_impressions(tmp_path: Path) -> None:
    write_mind_logs(ClickSimulator(articles(), SimConfig(users=80, days=2), seed=5), tmp_path, START)
    news = read_news(tmp_path / "news.tsv")
    behaviors = list(read_behaviors(tmp_path / "behaviors.tsv", news))
    truth = read_truth(tmp_path / TRUTH_FILE)
    assert set(truth) == {b.impression_id for b in behaviors}
    clicked, skipped = [], []
    for b in behaviors:
        relevance = truth[b.impression_id]
        assert len(relevance) == len(b.impressions) and ((relevance > 0) & (relevance < 1)).all()
        clicked += [r for r, i in zip(relevance, b.impressions, strict=True) if i.clicked]
        skipped += [r for r, i in zip(relevance, b.impressions, strict=True) if not i.clicked]
    assert np.mean(clicked) > 3 * np.mean(skipped)  # clicks follow the true relevance
    attrs = read_truth_news(tmp_path / TRUTH_NEWS_FILE)
    assert set(attrs) == set(news)
    by_title = {a.title: a for a in articles()}
    for news_id, item in news.items():
        source = by_title[item.title]
        assert (attrs[news_id].sector, attrs[news_id].topic, attrs[news_id].sentiment, attrs[news_id].tickers) == (
            source.sector, source.topic, source.sentiment, source.tickers)


def test_malformed_truth_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / TRUTH_FILE
    path.write_text("1\t0.5 0.25\n2\t0.5 x\n", encoding="utf-8")
    with pytest.raises(MindFormatError, match=r"truth.tsv:2: bad relevance"):
        read_truth(path)
    path.write_text("1 0.5\n", encoding="utf-8")
    with pytest.raises(MindFormatError, match=r"truth.tsv:1: expected"):
        read_truth(path)
    news = tmp_path / TRUTH_NEWS_FILE
    news.write_text("N1\tenergy\tmacro\t-1\tXOM CVX\nN2\tenergy\tmacro\tbad\t\n", encoding="utf-8")
    with pytest.raises(MindFormatError, match=r"truth_news.tsv:2: bad sentiment"):
        read_truth_news(news)
    news.write_text("N1\tenergy\n", encoding="utf-8")
    with pytest.raises(MindFormatError, match=r"truth_news.tsv:1: expected 5"):
        read_truth_news(news)


def test_position_bias_and_interests_show_in_clicks() -> None:
    sim = ClickSimulator(articles(), SimConfig(users=200, days=3), seed=1)
    by_position = np.zeros(10)
    shown = np.zeros(10)
    liked = disliked = liked_shown = disliked_shown = 0
    sectors = list(TITLES)
    for page in sim.pages(START):
        weights = page.user.sector_w
        for s in page.shown:
            shown[s.position] += 1
            by_position[s.position] += s.clicked
        top = max(sectors, key=lambda name: weights[list(sim.model._sector_index).index(name)])
        for s in page.shown:
            if s.article.sector == top:
                liked += s.clicked
                liked_shown += 1
            else:
                disliked += s.clicked
                disliked_shown += 1
    ctr = by_position / np.maximum(shown, 1)
    assert ctr[0] > ctr[9] * 1.5
    assert liked / liked_shown > 1.5 * disliked / disliked_shown


def test_page_events_are_api_events() -> None:
    sim = ClickSimulator(articles(), SimConfig(users=5, days=1), seed=2)
    page = next(sim.pages(START))
    events = page_events(page)
    assert sum(e["event_type"] == "impression" for e in events) == len(page.shown)
    assert {e["user_id"] for e in events} == {page.user.user_id}


def test_sector_and_topic_rules() -> None:
    assert sector_of(["JPM"]) == "financials"
    assert sector_of([], "Oil prices jump") == "energy"
    assert sector_of([], "Stocks drift") == "markets"
    assert topic_of("Apple beats earnings estimates") == "earnings"
    assert topic_of("Fed signals rate hike") == "macro"
