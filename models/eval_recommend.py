"""Evaluation of recommenders on held-out MIND-format impressions: AUC, MRR, nDCG@5, nDCG@10.

Methods: random, popularity (clicks in the training period), the untuned base encoder (user = mean of the
clicked articles' embeddings) and the fine-tuned two-tower model. On simulated logs (a ``truth.tsv`` beside them)
an oracle row ranks by the simulator's own click probabilities: the ceiling that click noise leaves any model.
With ``truth_news.tsv`` a reference row knows every article's true attributes but infers the user's interests from
the history like the models do (:mod:`finpulse.models.eval_reference`).
Metrics follow MIND's definitions, per impression, averaged over impressions that have a history, a click and a
non-click. Every method is scored on the same impressions, so a paired bootstrap over them (:func:`bootstrap_ci`)
gives each nDCG@10 and the fine-tuned model's ratio to popularity a 95% interval: with a few hundred held-out
impressions, a difference of 0.01 is within what resampling them moves.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finpulse.export.runtime.ranking import UserTower, l2_normalise
from finpulse.models.exceptions import MindFormatError
from finpulse.models.mind import Behavior
from finpulse.models.simulate import TRUTH_FILE, TRUTH_NEWS_FILE, read_truth, read_truth_news
from finpulse.models.train_recommend import (
    MindData,
    embed_all,
    load_categories,
    load_encoder,
    load_mind,
    load_trained,
    news_tower_module,
    tokenize_titles,
)

logger = logging.getLogger(__name__)

METHODS = ("random", "popularity", "untuned MiniLM (mean of clicked)", "fine-tuned two-tower")
ORACLE = "oracle (simulator's true relevance)"
ATTRIBUTES = "true attributes + history (LR)"
#: Resamples of the paired bootstrap; its seed is fixed so the printed intervals are reproducible.
BOOTSTRAP_SAMPLES = 2000
CI_LEVEL = 0.95
#: Resampled impression indices held at once (8 bytes each).
MAX_PICKS = 4_000_000


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Probability that a clicked item outranks a non-clicked one (ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def mrr(labels: np.ndarray, scores: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    y = labels[order]
    return float((y / (np.arange(len(y)) + 1)).sum() / max(y.sum(), 1))


def ndcg(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    def dcg(y: np.ndarray) -> float:
        y = y[:k]
        return float(((2**y - 1) / np.log2(np.arange(len(y)) + 2)).sum())

    ideal = dcg(np.sort(labels)[::-1])
    return dcg(labels[np.argsort(-scores, kind="stable")]) / ideal if ideal > 0 else 0.0


def impression_metrics(behaviors: Sequence[Behavior], scorer: Callable[[Behavior], np.ndarray]) -> np.ndarray:
    """One row per impression: AUC, MRR, nDCG@5, nDCG@10."""
    rows = []
    for b in behaviors:
        labels = np.asarray([int(bool(i.clicked)) for i in b.impressions])
        scores = np.asarray(scorer(b), np.float64)
        rows.append((auc(labels, scores), mrr(labels, scores), ndcg(labels, scores, 5), ndcg(labels, scores, 10)))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def summarise(rows: np.ndarray) -> dict[str, float]:
    return {"auc": float(np.nanmean(rows[:, 0])), "mrr": float(rows[:, 1].mean()), "ndcg@5": float(rows[:, 2].mean()),
            "ndcg@10": float(rows[:, 3].mean()), "impressions": len(rows)}


def score_impressions(behaviors: Sequence[Behavior], scorer: Callable[[Behavior], np.ndarray]) -> dict[str, float]:
    return summarise(impression_metrics(behaviors, scorer))


def bootstrap_ci(per_impression: dict[str, np.ndarray], samples: int = BOOTSTRAP_SAMPLES, level: float = CI_LEVEL,
                 seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each method's mean nDCG@10 and, when both are there, of the fine-tuned model's ratio
    to popularity (key ``"ratio"``), from the same resampled impressions for every method (paired)."""
    if not per_impression:
        return {}
    n = len(next(iter(per_impression.values())))
    if n == 0 or any(len(v) != n for v in per_impression.values()):
        raise ValueError("every method must be scored on the same, non-empty set of impressions")
    rng = np.random.default_rng(seed)
    chunk = max(1, min(samples, MAX_PICKS // n))  # real MIND has ~10^5 impressions: bound the index array's memory
    parts: dict[str, list[np.ndarray]] = {name: [] for name in per_impression}
    for start in range(0, samples, chunk):
        picks = rng.integers(0, n, size=(min(chunk, samples - start), n))
        for name, values in per_impression.items():
            parts[name].append(values[picks].mean(axis=1))
    means = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    tail = (1.0 - level) / 2 * 100

    def interval(values: np.ndarray) -> tuple[float, float]:
        low, high = np.percentile(values, [tail, 100 - tail])
        return float(low), float(high)

    out = {name: interval(values) for name, values in means.items()}
    if METHODS[3] in means and "popularity" in means:
        out["ratio"] = interval(means[METHODS[3]] / means["popularity"])
    return out


def eligible(data: MindData) -> list[Behavior]:
    return [b for b in data.test if b.history and any(i.clicked for i in b.impressions)
            and any(i.clicked is False for i in b.impressions)]


def evaluate_recommend(mind_dir: Path, trained_dir: Path | None, base: str, test_days: float = 1.0, seed: int = 0,
                       max_length: int = 24) -> dict[str, dict[str, float]]:
    """Metrics of every method on the held-out impressions of ``mind_dir``."""
    data = load_mind(mind_dir, test_days)
    test = eligible(data)
    rng = np.random.default_rng(seed)
    popularity = Counter(i.news_id for b in data.train for i in b.impressions if i.clicked)
    needed = sorted({n for b in test for n in (*b.history[-50:], *(i.news_id for i in b.impressions))})
    titles = [data.news[n].title for n in needed]
    pos = {n: i for i, n in enumerate(needed)}
    rows: dict[str, np.ndarray] = {}
    rows["random"] = impression_metrics(test, lambda b: rng.random(len(b.impressions)))
    rows["popularity"] = impression_metrics(
        test, lambda b: np.asarray([popularity.get(i.news_id, 0) + 1e-6 * rng.random() for i in b.impressions]))

    def embedding_scorer(emb: np.ndarray, tower: UserTower, history: int) -> Callable[[Behavior], np.ndarray]:
        def score(b: Behavior) -> np.ndarray:
            user = tower.encode(emb[[pos[h] for h in b.history[-history:]]])
            return emb[[pos[i.news_id] for i in b.impressions]] @ user
        return score

    bert, tokenizer = load_encoder(base)
    ids, mask = tokenize_titles(tokenizer, titles, max_length)
    base_emb = l2_normalise(embed_all(news_tower_module(bert, 1).eval(), ids, mask).numpy())
    rows[METHODS[2]] = impression_metrics(test, embedding_scorer(base_emb, UserTower.mean_pooling(base_emb.shape[1]), 50))
    if trained_dir is not None:
        tower, tok, user, metrics = load_trained(trained_dir)
        length = int(metrics["config"]["max_length"])
        ids, mask = tokenize_titles(tok, titles, length)
        emb = l2_normalise(embed_all(tower, ids, mask).numpy())
        categories = load_categories(trained_dir)
        if categories is not None:  # category-aware news vectors, from the logs' category and subcategory columns
            emb = categories.apply(emb, [data.news[n].category for n in needed], [data.news[n].subcategory for n in needed])
        rows[METHODS[3]] = impression_metrics(test, embedding_scorer(emb, user, int(metrics["config"]["history"])))
    truth_path = mind_dir / TRUTH_FILE
    if truth_path.is_file():
        truth = read_truth(truth_path)

        def oracle(b: Behavior) -> np.ndarray:
            relevance = truth.get(b.impression_id)
            if relevance is None or len(relevance) != len(b.impressions):
                raise MindFormatError(f"{truth_path}: impression {b.impression_id} has no matching relevance row")
            return relevance

        rows[ORACLE] = impression_metrics(test, oracle)
    attributes_path = mind_dir / TRUTH_NEWS_FILE
    if attributes_path.is_file():
        from finpulse.models.eval_reference import fit_attribute_ranker

        rows[ATTRIBUTES] = impression_metrics(test, fit_attribute_ranker(data.train, read_truth_news(attributes_path)))
    return with_intervals(rows)


def with_intervals(rows: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Each method's means plus the paired bootstrap's 95% interval of its nDCG@10 (``ndcg@10_ci``: low, high) and,
    for the fine-tuned model, of its ratio to popularity (``ratio_to_popularity``, ``ratio_ci``)."""
    intervals = bootstrap_ci({name: r[:, 3] for name, r in rows.items()})
    results: dict[str, dict[str, float]] = {}
    for name, r in rows.items():
        results[name] = summarise(r)
        results[name]["ndcg@10_ci_low"], results[name]["ndcg@10_ci_high"] = intervals[name]
    if "ratio" in intervals:
        tuned = results[METHODS[3]]
        tuned["ratio_to_popularity"] = tuned["ndcg@10"] / results["popularity"]["ndcg@10"]
        tuned["ratio_ci_low"], tuned["ratio_ci_high"] = intervals["ratio"]
    return results


def format_table(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"{'method':<36} {'AUC':>7} {'MRR':>7} {'nDCG@5':>7} {'nDCG@10':>8}  {'95% CI':>15}"]
    for name, r in results.items():
        ci = f"{r['ndcg@10_ci_low']:.3f}-{r['ndcg@10_ci_high']:.3f}" if "ndcg@10_ci_low" in r else ""
        lines.append(f"{name:<36} {r['auc']:>7.4f} {r['mrr']:>7.4f} {r['ndcg@5']:>7.4f} {r['ndcg@10']:>8.4f}  {ci:>15}")
    return lines


def ratio_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """nDCG@10 of the fine-tuned model against popularity (the issue's 1.5x target) and against the oracle."""
    tuned = results.get(METHODS[3])
    if tuned is None:
        return []
    lines = [f"fine-tuned nDCG@10 / popularity = {tuned['ndcg@10'] / results['popularity']['ndcg@10']:.2f}x"
             + (f" (95% CI {tuned['ratio_ci_low']:.2f}-{tuned['ratio_ci_high']:.2f}x, paired bootstrap over the "
                f"{int(tuned['impressions'])} impressions)" if "ratio_ci_low" in tuned else "")]
    if ORACLE in results:
        lines.append(f"fine-tuned nDCG@10 / oracle = {tuned['ndcg@10'] / results[ORACLE]['ndcg@10']:.2f}; "
                     f"oracle / popularity = {results[ORACLE]['ndcg@10'] / results['popularity']['ndcg@10']:.2f}x")
    return lines
