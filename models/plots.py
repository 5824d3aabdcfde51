"""PNG plots of training and evaluation (matplotlib with the Agg backend, imported lazily)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curve(history: Mapping[str, Sequence[Mapping[str, float]]], path: Path) -> Path:
    """Training loss by step and validation loss / macro-F1 by evaluation step."""
    plt = _pyplot()
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(10, 4))
    train = history.get("train", [])
    val = history.get("val", [])
    if train:
        ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss (smoothed)", lw=1)
    if val:
        ax_loss.plot([r["step"] for r in val], [r["loss"] for r in val], "o-", label="val loss")
        ax_f1.plot([r["step"] for r in val], [r["macro_f1"] for r in val], "o-", label="val macro-F1")
        ax_f1.plot([r["step"] for r in val], [r["accuracy"] for r in val], "s--", label="val accuracy")
        topic = [r for r in val if "topic_macro_f1" in r]
        if topic:
            ax_loss.plot([r["step"] for r in topic], [r["topic_loss"] for r in topic], "o:", label="val topic loss")
            ax_f1.plot([r["step"] for r in topic], [r["topic_macro_f1"] for r in topic], "^-", label="val topic macro-F1")
            ax_f1.plot([r["step"] for r in topic], [r["topic_accuracy"] for r in topic], "v--", label="val topic accuracy")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_f1.set_xlabel("step")
    ax_f1.set_ylim(0, 1)
    ax_f1.legend()
    fig.suptitle("sentiment (and topic) fine-tuning")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion_matrix(cm: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str = "") -> Path:
    """Confusion matrix with counts, rows = true label (sized for 3 labels up to the 20 topics: the figure grows and
    the predicted labels turn vertical with many labels)."""
    plt = _pyplot()
    import numpy as np

    arr = np.asarray(cm)
    many = len(labels) > 5
    side = max(4.5, 0.5 * len(labels) + 3.0)
    fig, ax = plt.subplots(figsize=(side, side - 0.5))
    ax.imshow(arr, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels=list(labels), rotation=90 if many else 0, fontsize=7 if many else None)
    ax.set_yticks(range(len(labels)), labels=list(labels), fontsize=7 if many else None)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = arr.max() / 2 if arr.size else 0
    for i in range(arr.shape[0]):
        for j in range(arr.shape[1]):
            if many and arr[i, j] == 0:
                continue  # 400 zeros would hide the counts that matter
            ax.text(j, i, str(arr[i, j]), ha="center", va="center", fontsize=6 if many else None,
                    color="white" if arr[i, j] > threshold else "black")
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_bench(results: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Grouped bars: sequences/s by backend and batch size."""
    plt = _pyplot()
    backends = list(dict.fromkeys(r["backend"] for r in results))
    batches = sorted({int(r["batch_size"]) for r in results})
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / max(1, len(backends))
    for k, backend in enumerate(backends):
        values = []
        for b in batches:
            match = [r["seq_per_s"] for r in results if r["backend"] == backend and int(r["batch_size"]) == b]
            values.append(match[0] if match else 0.0)
        ax.bar([i + k * width for i in range(len(batches))], values, width, label=backend)
    ax.set_xticks([i + width * (len(backends) - 1) / 2 for i in range(len(batches))], labels=[f"batch {b}" for b in batches])
    ax.set_ylabel("sequences / s (median)")
    ax.legend()
    ax.set_title("sentiment inference throughput")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
