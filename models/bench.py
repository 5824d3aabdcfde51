"""Throughput benchmark of the sentiment model: torch fp32 vs ORT fp32 vs ORT int8 on the same headlines.

All backends tokenize inside the timed region and pad to the longest text of each batch. Repeats are
interleaved across backends (round robin) so that load from other processes hits them alike; the reported
figure is the median over repeats.

``ort-fp32`` and ``ort-int8`` use the worker's session settings (``model.allow_spinning``, off by default: the
worker shares its cores with the event loop). ``ort-int8-spin`` is the same int8 model with onnxruntime's own
default, spin-waiting intra-op threads: how a process that does nothing but inference runs it.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from finpulse.settings import ModelSettings

logger = logging.getLogger(__name__)

BATCH_SIZES = (1, 8, 32)
BACKENDS = ("torch-fp32", "ort-fp32", "ort-int8", "ort-int8-spin")
ORT_BACKENDS = BACKENDS[1:]


def _timed(run: Callable[[Sequence[str]], Any], texts: Sequence[str], batch_size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        run(texts[start : start + batch_size])
    return len(texts) / (time.perf_counter() - started)


def run_bench(
    model_dir: Path,
    onnx_dir: Path,
    settings: ModelSettings,
    texts: Sequence[str],
    repeats: int = 5,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    threads: int | None = None,
) -> dict[str, Any]:
    """Sequences/s of each backend and batch size (median over ``repeats``) and the ORT/torch ratios."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from finpulse.runtime.sentiment import SentimentRuntime

    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    local = settings.model_copy(update={"providers": ["cpu"], "intra_op_threads": threads})
    runtimes = {v: SentimentRuntime.load(onnx_dir, v, local, batch_size=max(batch_sizes)) for v in ("fp32", "int8")}  # type: ignore[arg-type]
    spinning = local.model_copy(update={"allow_spinning": True})
    runtimes["int8-spin"] = SentimentRuntime.load(onnx_dir, "int8", spinning, batch_size=max(batch_sizes))
    max_length = runtimes["fp32"].max_length
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def torch_run(batch: Sequence[str]) -> Any:
        enc = tokenizer(list(batch), truncation=True, max_length=max_length, padding="longest", return_tensors="pt")
        with torch.inference_mode():
            return model(**enc).logits

    runners: dict[str, Callable[[Sequence[str]], Any]] = {
        "torch-fp32": torch_run,
        "ort-fp32": runtimes["fp32"].probabilities,
        "ort-int8": runtimes["int8"].probabilities,
        "ort-int8-spin": runtimes["int8-spin"].probabilities,
    }
    for run in runners.values():  # warm-up
        run(texts[:32])
    samples: dict[tuple[str, int], list[float]] = {(b, n): [] for b in BACKENDS for n in batch_sizes}
    load_before = os.getloadavg()
    for repeat in range(repeats):
        for batch_size in batch_sizes:
            for backend in BACKENDS:
                samples[(backend, batch_size)].append(_timed(runners[backend], texts, batch_size))
        logger.info("bench repeat %d/%d done", repeat + 1, repeats)
    results = [
        {"backend": backend, "batch_size": b, "seq_per_s": statistics.median(runs), "runs": runs}
        for (backend, b), runs in samples.items()
    ]
    median = {key: statistics.median(runs) for key, runs in samples.items()}
    ratios = {
        f"{backend}/torch-fp32": {str(b): median[(backend, b)] / median[("torch-fp32", b)] for b in batch_sizes}
        for backend in ORT_BACKENDS
    }
    return {
        "texts": len(texts),
        "mean_chars": sum(len(t) for t in texts) / max(1, len(texts)),
        "repeats": repeats,
        "threads": threads,
        "allow_spinning": local.allow_spinning,
        "denormal_as_zero": local.denormal_as_zero,
        "max_length": max_length,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "model_version": runtimes["int8"].card.model_version,
        "results": results,
        "ratios": ratios,
    }


def write_bench(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    from finpulse.models.plots import plot_bench

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "bench.json"
    json_path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return json_path, plot_bench(report["results"], out_dir / "bench.png")
