"""A reference ranker for simulated logs: the simulator's true article attributes, a profile counted from history.

It answers "how far can a ranker get when it knows exactly what each article is about, but, like every model,
has to infer the user's interests from the clicked history?". Features per (history, candidate): the share and
the top-normalised count of the candidate's sector and topic among the clicked articles, whether it names a ticker
the user clicked before, the mean clicked sentiment times the candidate's, whether the candidate fell back to the
default sector or topic (``markets``), and the history length; a logistic
regression fitted on the training impressions weights them. Only simulated logs carry the attributes
(``truth_news.tsv``); a text model sees the headline alone.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from finpulse.models.mind import Behavior
from finpulse.models.simulate import TrueAttributes
from finpulse.tagging.sectors import DEFAULT_SECTOR, DEFAULT_TOPIC

HISTORY = 50


def features(behavior: Behavior, attrs: Mapping[str, TrueAttributes]) -> np.ndarray:
    """One feature row per shown article of ``behavior``."""
    history = [attrs[n] for n in behavior.history[-HISTORY:] if n in attrs]
    n = max(len(history), 1)
    sectors = Counter(a.sector for a in history)
    topics = Counter(a.topic for a in history)
    tickers = {t for a in history for t in a.tickers}
    tone = float(np.mean([a.sentiment for a in history])) if history else 0.0
    top_sector = max(sectors.values(), default=1)
    top_topic = max(topics.values(), default=1)
    rows = []
    for item in behavior.impressions:
        a = attrs[item.news_id]
        s, t = sectors.get(a.sector, 0), topics.get(a.topic, 0)
        rows.append([s / top_sector, t / top_topic, s / n, t / n, float(s > 0), float(t > 0),
                     float(bool(tickers.intersection(a.tickers))), tone * a.sentiment, float(a.sentiment),
                     math.log1p(n), s / top_sector * math.log1p(n), float(a.sector == DEFAULT_SECTOR),
                     float(a.topic == DEFAULT_TOPIC)])
    return np.asarray(rows, dtype=np.float64)


def fit_attribute_ranker(train: Sequence[Behavior], attrs: Mapping[str, TrueAttributes]) -> Callable[[Behavior], np.ndarray]:
    """A scorer of impressions fitted on the clicked/not-clicked labels of ``train`` (impressions with a history)."""
    from sklearn.linear_model import LogisticRegression

    x: list[np.ndarray] = []
    y: list[int] = []
    for b in train:
        if b.history:
            x.append(features(b, attrs))
            y.extend(int(bool(i.clicked)) for i in b.impressions)
    model = LogisticRegression(max_iter=2000).fit(np.concatenate(x), np.asarray(y))

    def score(b: Behavior) -> np.ndarray:
        return np.asarray(model.decision_function(features(b, attrs)), dtype=np.float64)

    return score
