from __future__ import annotations

from pathlib import Path

import pytest

from finpulse.contracts.records import LABELS
from finpulse.export.testing import synthetic_examples
from finpulse.models.data import load_phrasebank, load_twitter, stratified_split
from finpulse.models.exceptions import DataError


def test_twitter_label_mapping(tmp_path: Path) -> None:
    d = tmp_path / "twitter-financial-news-sentiment"
    d.mkdir()
    (d / "sent_valid.csv").write_bytes(b'text,label\r\n"Bear, case",0\r\nBull case,1\r\nNothing,2\r\n')
    rows = load_twitter(tmp_path, "valid")
    assert [(r.text, LABELS[r.label]) for r in rows] == [
        ("Bear, case", "negative"),
        ("Bull case", "positive"),
        ("Nothing", "neutral"),
    ]


def test_phrasebank_splits_on_last_at(tmp_path: Path) -> None:
    d = tmp_path / "financial-phrasebank"
    d.mkdir()
    (d / "Sentences_50Agree.txt").write_bytes("Mail me @ home , caf\xe9 sales up@positive\nFlat@neutral\n".encode("latin-1"))
    rows = load_phrasebank(tmp_path, "50")
    assert rows[0].text == "Mail me @ home , caf\xe9 sales up"
    assert LABELS[rows[0].label] == "positive"
    assert LABELS[rows[1].label] == "neutral"


def test_bad_rows_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_twitter(tmp_path, "train")
    d = tmp_path / "financial-phrasebank"
    d.mkdir()
    (d / "Sentences_AllAgree.txt").write_text("1\n", encoding="latin-1")
    with pytest.raises(DataError, match="sentence@label"):
        load_phrasebank(tmp_path, "All")


def test_stratified_split_is_reproducible_and_disjoint() -> None:
    examples = synthetic_examples(300)
    rest, held = stratified_split(examples, 0.1, seed=3)
    assert len(held) == 30 and len(rest) == 270
    assert sorted({e.label for e in held}) == [0, 1, 2]
    again = stratified_split(examples, 0.1, seed=3)
    assert again == (rest, held)


REAL = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.mark.skipif(not (REAL / "twitter-financial-news-sentiment").is_dir(), reason="shared data not present")
def test_real_data_counts() -> None:
    train = load_twitter(REAL, "train")
    assert len(train) == 9543
    assert [sum(1 for e in train if e.label == i) for i in range(3)] == [1442, 6178, 1923]
    assert len(load_phrasebank(REAL, "50")) == 4846
    assert len(load_phrasebank(REAL, "All")) == 2264
