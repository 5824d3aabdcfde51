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


def _write_topic_csv(path: Path, rows: list[tuple[str, int]]) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def test_topics_and_their_slugs() -> None:
    from finpulse.contracts.records import TOPIC_SLUGS, TOPICS

    assert len(TOPICS) == 20 and len(TOPIC_SLUGS) == 20
    assert TOPICS[0] == "Analyst Update" and TOPICS[1] == "Fed | Central Banks" and TOPICS[19] == "Stock Movement"
    assert TOPIC_SLUGS[1] == "fed-central-banks" and TOPIC_SLUGS[13] == "m-and-a-investments"
    assert len(set(TOPIC_SLUGS)) == 20
    import re

    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)*", s) for s in TOPIC_SLUGS), TOPIC_SLUGS


def test_topic_train_is_shuffled_with_the_seed_and_valid_keeps_its_order(tmp_path: Path) -> None:
    from finpulse.contracts.records import TOPICS
    from finpulse.models.data import TOPIC_DIR, load_topics

    rows = [(f"tweet {label} number {i} https://t.co/x{i}", label) for label in (1, 5, 13) for i in range(20)]
    _write_topic_csv(tmp_path / TOPIC_DIR / "topic_train.csv", rows)
    _write_topic_csv(tmp_path / TOPIC_DIR / "topic_valid.csv", rows[:7])
    train = load_topics(tmp_path, "train", seed=3)
    assert sorted((e.text, e.label) for e in train) == sorted(rows)
    assert [e.text for e in train] != [t for t, _ in rows]  # the file's label blocks are broken up
    assert train == load_topics(tmp_path, "train", seed=3)
    assert train != load_topics(tmp_path, "train", seed=4)
    assert [(e.text, e.label) for e in load_topics(tmp_path, "valid")] == rows[:7]
    assert TOPICS[train[0].label] in {TOPICS[1], TOPICS[5], TOPICS[13]}


def test_topic_rows_with_bad_labels_are_refused(tmp_path: Path) -> None:
    from finpulse.models.data import TOPIC_DIR, load_topics

    _write_topic_csv(tmp_path / TOPIC_DIR / "topic_valid.csv", [("fine", 3), ("out of range", 20)])
    with pytest.raises(DataError, match="bad label"):
        load_topics(tmp_path, "valid")
    with pytest.raises(DataError, match="not found"):
        load_topics(tmp_path, "train")


def test_validation_rows_seen_in_train_once_links_are_stripped(tmp_path: Path) -> None:
    from finpulse.models.data import TOPIC_DIR, link_stripped, seen_in_train, topic_eval_sets

    assert link_stripped("Fed  hikes  https://t.co/AbC12 again http://x.y/z") == "fed hikes again"
    train = [("Fed hikes rates  https://t.co/aaa", 1), ("Oil jumps https://t.co/bbb", 6)]
    valid = [("Fed hikes rates https://t.co/zzz", 1), ("OIL JUMPS  https://t.co/ccc", 6), ("IPO priced", 11)]
    _write_topic_csv(tmp_path / TOPIC_DIR / "topic_train.csv", train)
    _write_topic_csv(tmp_path / TOPIC_DIR / "topic_valid.csv", valid)
    from finpulse.models.data import load_topics

    assert seen_in_train(load_topics(tmp_path, "valid"), load_topics(tmp_path, "train")) == [True, True, False]
    sets = topic_eval_sets(tmp_path)
    assert list(sets) == ["topic-valid", "topic-valid-unseen"]
    assert [e.text for e in sets["topic-valid"]] == [t for t, _ in valid]
    assert [e.text for e in sets["topic-valid-unseen"]] == ["IPO priced"]


@pytest.mark.skipif(not (REAL / "twitter-financial-news-topic").is_dir(), reason="shared data not present")
def test_real_topic_data_counts() -> None:
    from finpulse.models.data import load_topics, topic_eval_sets

    train = load_topics(REAL, "train", seed=13)
    valid = load_topics(REAL, "valid")
    assert (len(train), len(valid)) == (16990, 4117)
    assert [sum(1 for e in train if e.label == i) for i in range(20)][:4] == [255, 837, 3545, 321]
    assert [sum(1 for e in valid if e.label == i) for i in range(20)][-2:] == [528, 197]
    assert len({e.label for e in train[:100]}) > 10  # shuffled: the first rows are not one label's block
    assert len(topic_eval_sets(REAL)["topic-valid-unseen"]) == 4117 - 678  # the README's near-duplicates
