"""Export of the recommendation model for the stream: the news tower to ONNX, the user tower as numpy.

``news_encoder.onnx``: ``input_ids``, ``attention_mask`` (int64, dynamic batch and sequence) → ``embedding``
(mean-pooled last hidden state, L2-normalised). ``user_tower.npz``: the attention pooling's weights, run by
:class:`finpulse.export.runtime.ranking.UserTower`. ``news_categories.npz`` (models trained with categories): the category
and subcategory vectors added to each embedding, run by :class:`finpulse.export.runtime.categories.NewsCategories`.
Before the card is written, the output check runs the exported
files the way the worker will (tokenizers + onnxruntime + numpy) against the torch model on sample titles and
raises :class:`~finpulse.export.exceptions.ExportCheckError` when they differ beyond tolerance.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finpulse.export.exceptions import ExportCheckError
from finpulse.export.runtime.categories import CATEGORIES_FILE, NewsCategories
from finpulse.export.runtime.ranking import UserTower
from finpulse.export.runtime.recommend import (
    CARD_FILE,
    ENCODER_FILE,
    SHARED_SENTIMENT_KEY,
    TOKENIZER_FILE,
    TOWER_FILE,
    NewsEncoder,
    RecommendCard,
    sha256_of,
)

logger = logging.getLogger(__name__)

MODEL_CARD = "MODEL_CARD.md"
OPSET = 17


@dataclass(frozen=True)
class RecommendCheck:
    n: int
    max_abs_embedding_diff: float
    max_abs_user_diff: float
    max_abs_category_diff: float | None = None


class EmbeddingGraph:
    """A torch wrapper whose only output is the normalised embedding (what the ONNX graph computes)."""

    def __new__(cls, tower: Any) -> Any:
        from torch import nn

        class _Graph(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.tower = tower

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:
                return self.tower(input_ids, attention_mask)

        return _Graph().eval()


def export_encoder(tower: Any, tokenizer: Any, path: Path) -> None:
    import onnx
    import torch

    enc = tokenizer(["Stocks fall on weak guidance", "Acme rises 5% after earnings beat"], return_tensors="pt", padding=True)
    graph = EmbeddingGraph(tower)
    with torch.inference_mode():
        torch.onnx.export(
            graph, (enc["input_ids"], enc["attention_mask"]), str(path), input_names=["input_ids", "attention_mask"],
            output_names=["embedding"], dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                                      "attention_mask": {0: "batch", 1: "sequence"}, "embedding": {0: "batch"}},
            opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )
    onnx.checker.check_model(str(path), full_check=True)


def check_outputs(tower: Any, tokenizer: Any, user: UserTower, directory: Path, texts: Sequence[str], max_length: int,
                  atol: float = 1e-3, categories: NewsCategories | None = None) -> RecommendCheck:
    """Run the exported files as the worker does and compare with torch; raise ExportCheckError beyond ``atol``."""
    import torch

    card = RecommendCard.read(directory)
    encoder = NewsEncoder.load(directory, card, threads=1)
    onnx_emb = encoder.embed(list(texts))
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding="longest", return_tensors="pt")
    with torch.inference_mode():
        torch_emb = tower(enc["input_ids"], enc["attention_mask"]).numpy()
    emb_diff = float(np.abs(onnx_emb - torch_emb).max())
    if emb_diff > atol:
        raise ExportCheckError(f"news encoder: ONNX and torch embeddings differ by {emb_diff:.2e} (> {atol})")
    # The numpy user tower against the same formula in torch, on histories of the exported embeddings.
    rng = np.random.default_rng(0)
    history = onnx_emb[rng.integers(0, len(texts), size=(4, 8))]
    w, b, q, p = (torch.from_numpy(a) for a in (user.w, user.b, user.q, user.p))
    h = torch.from_numpy(history)
    weights = torch.softmax(torch.tanh(h @ w + b) @ q, dim=1)
    expected = torch.nn.functional.normalize((weights[:, :, None] * h).sum(1) @ p.T, dim=-1).numpy()
    user_diff = float(np.abs(user.encode(history) - expected).max())
    if user_diff > atol:
        raise ExportCheckError(f"user tower: numpy and torch differ by {user_diff:.2e} (> {atol})")
    category_diff = None if categories is None else check_categories(categories, onnx_emb, directory, atol)
    return RecommendCheck(len(texts), emb_diff, user_diff, category_diff)


def check_categories(categories: NewsCategories, embeddings: np.ndarray, directory: Path, atol: float) -> float:
    """The exported category vectors, read back as the worker reads them, against the torch formula on every
    (category, subcategory) pair; raise ExportCheckError beyond ``atol``."""
    import torch

    served = NewsCategories.load(directory / CATEGORIES_FILE)
    pairs = [(c, s) for c in range(len(categories.categories)) for s in range(len(categories.subcategories))]
    if not pairs:
        return 0.0
    rows = embeddings[np.arange(len(pairs)) % len(embeddings)]
    got = served.apply(rows, [categories.categories[c] for c, _ in pairs], [categories.subcategories[s] for _, s in pairs])
    c = torch.from_numpy(categories.category_vectors[[c for c, _ in pairs]])
    s = torch.from_numpy(categories.subcategory_vectors[[s for _, s in pairs]])
    expected = torch.nn.functional.normalize(torch.from_numpy(rows) + c + s, dim=-1).numpy()
    diff = float(np.abs(got - expected).max())
    if diff > atol:
        raise ExportCheckError(f"category vectors: numpy and torch differ by {diff:.2e} (> {atol})")
    return diff


def export_recommend(train_dir: Path, out_dir: Path, sample_texts: Sequence[str], eval_results: dict[str, Any] | None = None) -> Path:
    """Export the training run of ``train_dir`` to ``out_dir`` (replaced), check it and write its cards."""
    from finpulse.models.train_recommend import load_categories, load_trained

    tower, tokenizer, user, metrics = load_trained(train_dir)
    categories = load_categories(train_dir)
    max_length = int(metrics["config"]["max_length"])
    work = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    export_encoder(tower, tokenizer, work / ENCODER_FILE)
    tokenizer.backend_tokenizer.save(str(work / TOKENIZER_FILE))
    user.save(work / TOWER_FILE)
    names = [ENCODER_FILE, TOKENIZER_FILE, TOWER_FILE]
    if categories is not None:
        categories.save(work / CATEGORIES_FILE)
        names.append(CATEGORIES_FILE)
    files = {name: sha256_of(work / name) for name in names}
    card: dict[str, Any] = {
        "model_version": metrics["model_version"], "dim": metrics["dim"], "max_length": max_length,
        "base_model": metrics["config"]["base"], "trainable_layers": metrics["config"]["trainable_layers"],
        # Set when the news tower is the sentiment model's frozen encoder (finpulse.export.shared).
        SHARED_SENTIMENT_KEY: metrics.get(SHARED_SENTIMENT_KEY),
        "categories": None if categories is None else {"categories": list(categories.categories),
                                                       "subcategories": list(categories.subcategories)},
        "files": files, "training": {k: metrics[k] for k in ("data", "train", "mind_dir")},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (work / CARD_FILE).write_text(json.dumps(card, indent=2), encoding="utf-8")
    check = check_outputs(tower, tokenizer, user, work, sample_texts, max_length, categories=categories)
    card["check"] = check.__dict__
    if eval_results:
        card["eval"] = eval_results
    (work / CARD_FILE).write_text(json.dumps(card, indent=2), encoding="utf-8")
    (work / MODEL_CARD).write_text(model_card_text(card), encoding="utf-8")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    work.rename(out_dir)
    logger.info("exported recommendation model %s to %s (check: %s)", card["model_version"], out_dir, check)
    return out_dir


def _tuned_layers(trainable_layers: int) -> str:
    if trainable_layers == 0:
        return "frozen: only the user tower was trained"
    return f"top {trainable_layers} layers fine-tuned, lower layers frozen"


def model_card_text(card: dict[str, Any]) -> str:
    lines = [
        f"# Recommendation model {card['model_version']}",
        "",
        "Two-tower news recommender. News tower: the BERT encoder "
        f"`{card['base_model']}` ({_tuned_layers(int(card['trainable_layers']))}), embedding = "
        f"L2-normalised mean of the last hidden state ({card['dim']}-d, max {card['max_length']} tokens). User tower: "
        "additive attention over the clicked articles' embeddings + a linear projection (NRMS-style), run in numpy.",
        "",
        *([f"Category-aware news vectors: embedding + learned vectors of the article's category "
           f"({', '.join(card['categories']['categories'])}) and subcategory ({', '.join(card['categories']['subcategories'])}), "
           "normalised. In finpulse a live article's category is its sector and its subcategory its topic "
           "(finpulse.tagging.sectors.article_categories); unknown names add nothing.", ""] if card.get("categories") else []),
        *([f"Shared encoder: the news tower is the frozen encoder of sentiment model `{card[SHARED_SENTIMENT_KEY]}`; "
           "a worker with FINPULSE_RECOMMEND__SHARED_ENCODER=true takes each article's embedding from the pass that "
           "scores its sentiment.", ""] if card.get(SHARED_SENTIMENT_KEY) else []),
        f"Training data: `{card['training']['mind_dir']}` — {card['training']['data']}.",
        "**These logs are simulated (`finpulse simulate clicks --mind-out`), not MIND**: the figures below measure how "
        "well the model recovers the simulator's latent interests, not real readers.",
        "",
        f"Training: {card['training']['train']}.",
        f"Output check (ONNX vs torch, numpy vs torch): {card.get('check')}.",
        "",
    ]
    if "eval" in card:
        lines += ["| method | AUC | MRR | nDCG@5 | nDCG@10 | nDCG@10 95% CI |", "|---|---|---|---|---|---|"]
        for name, r in card["eval"].items():
            ci = f"{r['ndcg@10_ci_low']:.3f}–{r['ndcg@10_ci_high']:.3f}" if "ndcg@10_ci_low" in r else ""
            lines.append(f"| {name} | {r['auc']:.4f} | {r['mrr']:.4f} | {r['ndcg@5']:.4f} | {r['ndcg@10']:.4f} | {ci} |")
        lines += [f"\nnDCG@10 of the fine-tuned model: {r['ratio_to_popularity']:.2f}x popularity (95% CI "
                  f"{r['ratio_ci_low']:.2f}–{r['ratio_ci_high']:.2f}x, paired bootstrap over the held-out impressions)."
                  for r in card["eval"].values() if "ratio_ci_low" in r]
    lines += ["", "Intended use: ranking fresh financial news for a user in the finpulse feed. Not for decisions about people."]
    return "\n".join(lines) + "\n"
