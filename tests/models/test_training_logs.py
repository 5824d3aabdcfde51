"""The default build's simulated logs: made once, remade when the parameters that made them change."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from finpulse.models.mind import read_behaviors, read_news
from finpulse.models.training_logs import PARAMETERS_FILE, LogParameters, ensure_logs, recorded_parameters

TITLES = ["JPMorgan bank profit rises", "Oil jumps as OPEC cuts output", "Nvidia chip demand soars",
          "Goldman lender sees loan growth", "Crude slides on supply", "Software maker beats estimates"]


def headlines(path: Path, n: int = 120) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(n):
            writer.writerow([f"{TITLES[i % len(TITLES)]} {i}", i % 3])
    return path


def test_made_once_then_kept(tmp_path: Path) -> None:
    source = headlines(tmp_path / "sent_train.csv")
    params = LogParameters(users=30, days=2.0, seed=3, article_limit=100)
    mind = tmp_path / "mind"
    assert ensure_logs(mind, source, params) is True
    news = read_news(mind / "news.tsv")
    assert len(news) == 100 and list(read_behaviors(mind / "behaviors.tsv", news))
    recorded = json.loads((mind / PARAMETERS_FILE).read_text(encoding="utf-8"))
    assert recorded == {"users": 30, "days": 2.0, "seed": 3, "article_limit": 100, "csv": "sent_train.csv"}
    stamp = (mind / "behaviors.tsv").stat().st_mtime_ns
    assert ensure_logs(mind, source, params) is False
    assert (mind / "behaviors.tsv").stat().st_mtime_ns == stamp


def test_remade_when_the_parameters_differ_or_were_not_recorded(tmp_path: Path) -> None:
    source = headlines(tmp_path / "sent_train.csv")
    mind = tmp_path / "mind"
    small, large = LogParameters(users=10, days=2.0, seed=3, article_limit=60), LogParameters(users=40, days=2.0, seed=3, article_limit=60)
    ensure_logs(mind, source, small)
    before = (mind / "behaviors.tsv").read_text(encoding="utf-8")
    assert ensure_logs(mind, source, large) is True
    assert (mind / "behaviors.tsv").read_text(encoding="utf-8") != before
    assert recorded_parameters(mind) == large.as_json(source)
    (mind / PARAMETERS_FILE).unlink()  # logs of a build that recorded nothing (before the record existed)
    assert recorded_parameters(mind) is None
    assert ensure_logs(mind, source, large) is True
