"""The MIND-format reader on a tiny hand-written fixture, malformed lines included."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from finpulse.models.exceptions import MindFormatError
from finpulse.models.mind import (
    Behavior,
    Impression,
    MindNews,
    format_time,
    read_behaviors,
    read_news,
    write_behaviors,
    write_news,
)

NEWS = (
    "N1\tfinancials\tearnings\tJPMorgan beats estimates\tBank profit rises\thttps://x/1\t[]\t[]\n"
    "N2\tenergy\tmacro\tOil slides as OPEC adds supply\t\t\t[]\t[]\n"
    "N3\ttechnology\tdeals\tChipmaker agrees to buy rival\t\thttps://x/3\t"
    '[{"Label": "Chip", "Type": "O"}]\t[]\n'
)
BEHAVIORS = (
    "1\tU1\t11/11/2019 9:05:58 AM\tN1 N2\tN3-1 N2-0\n"
    "2\tU2\t11/12/2019 12:00:01 PM\t\tN1-0 N3-1\n"
    "3\tU1\t11/13/2019 3:15:00 PM\tN1\tN2 N3\n"  # the unlabelled test-split form
)


@pytest.fixture
def mind(tmp_path: Path) -> Path:
    (tmp_path / "news.tsv").write_text(NEWS, encoding="utf-8")
    (tmp_path / "behaviors.tsv").write_text(BEHAVIORS, encoding="utf-8")
    return tmp_path


def test_reads_news_and_behaviors(mind: Path) -> None:
    news = read_news(mind / "news.tsv")
    assert list(news) == ["N1", "N2", "N3"]
    assert news["N1"] == MindNews("N1", "financials", "earnings", "JPMorgan beats estimates", "Bank profit rises", "https://x/1")
    behaviors = list(read_behaviors(mind / "behaviors.tsv", news))
    assert behaviors[0].history == ("N1", "N2")
    assert behaviors[0].impressions == (Impression("N3", True), Impression("N2", False))
    assert behaviors[0].time == datetime(2019, 11, 11, 9, 5, 58)
    assert behaviors[1].history == () and behaviors[1].time.hour == 12
    assert behaviors[2].impressions == (Impression("N2", None), Impression("N3", None))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("4\tU3\t11/11/2019 9:05:58 AM\tN1\n", "expected 5 tab-separated fields, got 4"),
        ("4\tU3\tyesterday\tN1\tN2-1\n", "is not like"),
        ("4\tU3\t11/11/2019 9:05:58 AM\tN1\tN2-7\n", "is not NEWSID-0 or NEWSID-1"),
        ("4\tU3\t11/11/2019 9:05:58 AM\tN1\tN9-1\n", "'N9' is not in news.tsv"),
        ("4\t\t11/11/2019 9:05:58 AM\tN1\tN2-1\n", "empty user id"),
    ],
)
def test_malformed_behavior_names_file_and_line(mind: Path, line: str, reason: str) -> None:
    path = mind / "behaviors.tsv"
    path.write_text(BEHAVIORS + "\n" + line, encoding="utf-8")  # a blank line is skipped, but still counted
    with pytest.raises(MindFormatError, match=rf"behaviors\.tsv:5: .*{reason}"):
        list(read_behaviors(path, read_news(mind / "news.tsv")))


@pytest.mark.parametrize(
    ("line", "reason"),
    [("N4\tx\ty\tonly four\n", "expected 8 tab-separated fields"), ("N1\ta\tb\tdup\t\t\t[]\t[]\n", "duplicate news id"),
     ("N5\ta\tb\t \t\t\t[]\t[]\n", "empty title")],
)
def test_malformed_news_names_file_and_line(mind: Path, line: str, reason: str) -> None:
    path = mind / "news.tsv"
    path.write_text(NEWS + line, encoding="utf-8")
    with pytest.raises(MindFormatError, match=rf"news\.tsv:4: {reason}"):
        read_news(path)


def test_not_utf8_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "news.tsv").write_bytes(b"N1\t\xff\n")
    with pytest.raises(MindFormatError, match="not UTF-8"):
        read_news(tmp_path / "news.tsv")
    with pytest.raises(MindFormatError, match="cannot open"):
        read_news(tmp_path / "missing.tsv")


def test_round_trip(tmp_path: Path) -> None:
    news = [MindNews("N1", "a", "b", "Title\twith tab", "", "", "[]", "[]")]
    behaviors = [Behavior("1", "U1", datetime(2026, 1, 5, 0, 13, 19), ("N1",), (Impression("N1", True),))]
    write_news(tmp_path / "news.tsv", news)
    write_behaviors(tmp_path / "behaviors.tsv", behaviors)
    loaded = read_news(tmp_path / "news.tsv")
    assert loaded["N1"].title == "Title with tab"
    assert list(read_behaviors(tmp_path / "behaviors.tsv", loaded)) == behaviors
    assert format_time(datetime(2019, 11, 11, 9, 5, 58)) == "11/11/2019 9:05:58 AM"
