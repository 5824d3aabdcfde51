"""Throughput benchmark of the sentiment model: torch fp32 vs ORT fp32 vs ORT int8 on the same headlines.

All backends tokenize inside the timed region and pad to the longest text of each batch. Repeats are
interleaved across backends (round robin) so that load from other processes hits them alike; the reported
figure is the median over repeats.

``ort-fp32`` and ``ort-int8`` use the worker's session settings (``model.allow_spinning``, off by default: the
worker shares its cores with the event loop). ``ort-int8-spin`` is the same int8 model with onnxruntime's own
default, spin-waiting intra-op threads: how a process that does nothing but inference runs it.

The topic head's cost (``head_cost_dir``): the same trained model is exported again without ``topic_logits`` (the
two-output graph of before) and both int8 graphs score the same texts as the worker does (``score``, with the embedding
when the graph has it), round robin; ``throughput_cost`` is 1 - (three-output sequences/s) / (two-output sequences/s).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finpulse.bench.exceptions import BenchError
from finpulse.settings import ModelSettings

logger = logging.getLogger(__name__)

BATCH_SIZES = (1, 8, 32)
BACKENDS = ("torch-fp32", "ort-fp32", "ort-int8", "ort-int8-spin")
ORT_BACKENDS = BACKENDS[1:]
#: The int8 graph with the topic head, and the same model's graph without it.
HEAD_COST_BACKENDS = ("ort-int8", "ort-int8-no-topic")


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
    head_cost_dir: Path | None = None,
) -> dict[str, Any]:
    """Sequences/s of each backend and batch size (median over ``repeats``) and the ORT/torch ratios; with
    ``head_cost_dir`` (where the two-output graph is exported), also what the topic head costs (``head_cost``)."""
    threads = threads or os.cpu_count() or 1
    local = settings.model_copy(update={"providers": ["cpu"], "intra_op_threads": threads})
    backends = _Backends.load(model_dir, onnx_dir, local, threads, max(batch_sizes))
    for run in backends.runners.values():  # warm-up
        run(texts[:32])
    load_before = os.getloadavg()
    samples = _measure(backends.runners, BACKENDS, texts, repeats, batch_sizes)
    results = [
        {"backend": backend, "batch_size": b, "seq_per_s": statistics.median(runs), "runs": runs}
        for (backend, b), runs in samples.items()
    ]
    median = {key: statistics.median(runs) for key, runs in samples.items()}
    ratios = {
        f"{backend}/torch-fp32": {str(b): median[(backend, b)] / median[("torch-fp32", b)] for b in batch_sizes}
        for backend in ORT_BACKENDS
    }
    report = {
        "texts": len(texts),
        "mean_chars": sum(len(t) for t in texts) / max(1, len(texts)),
        "repeats": repeats,
        "threads": threads,
        "allow_spinning": local.allow_spinning,
        "denormal_as_zero": local.denormal_as_zero,
        "max_length": backends.max_length,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "model_version": backends.model_version,
        "results": results,
        "ratios": ratios,
    }
    if head_cost_dir is not None:
        report["head_cost"] = measure_head_cost(model_dir, onnx_dir, local, texts, repeats, batch_sizes, head_cost_dir)
    return report


def measure_head_cost(model_dir: Path, onnx_dir: Path, local: ModelSettings, texts: Sequence[str], repeats: int,
                      batch_sizes: Sequence[int], work_dir: Path) -> dict[str, Any]:
    """Sequences/s of the int8 graph of ``onnx_dir`` (with its topic head) and of the same trained model exported to
    ``work_dir`` without it, scoring as the worker does; and the share of throughput the head costs per batch size."""
    from dataclasses import replace

    from finpulse.export.config import SENTIMENT_EXPORT
    from finpulse.export.runtime.sentiment import SentimentRuntime
    from finpulse.export.sentiment import export_sentiment

    with_head = SentimentRuntime.load(onnx_dir, "int8", local, batch_size=max(batch_sizes))
    if with_head.topic_slugs is None:
        raise BenchError(f"{onnx_dir}: the sentiment model has no topic head, so there is no head cost to measure")
    # The output check's agreement thresholds are the build's business: here only the graph's speed matters.
    config = replace(SENTIMENT_EXPORT, output_names=tuple(o for o in SENTIMENT_EXPORT.output_names if o != "topic_logits"),
                     min_int8_agreement=0.0)
    export_sentiment(model_dir, work_dir, local, texts, config=config, base_model=str(with_head.card.data.get("base_model")),
                     training_metrics={"max_length": with_head.max_length})
    without = SentimentRuntime.load(work_dir, "int8", local, batch_size=max(batch_sizes))
    embed = with_head.embedding_dim is not None and without.embedding_dim is not None
    runners: dict[str, Callable[[Sequence[str]], Any]] = {
        "ort-int8": lambda batch: with_head.score(batch, embed=embed),
        "ort-int8-no-topic": lambda batch: without.score(batch, embed=embed),
    }
    for run in runners.values():  # warm-up
        run(texts[:32])
    samples = _measure(runners, HEAD_COST_BACKENDS, texts, repeats, batch_sizes)
    median = {key: statistics.median(runs) for key, runs in samples.items()}
    return {
        "outputs": {"ort-int8": with_head.output_names, "ort-int8-no-topic": without.output_names},
        "embed": embed,
        "results": [{"backend": backend, "batch_size": b, "seq_per_s": median[(backend, b)], "runs": runs}
                    for (backend, b), runs in samples.items()],
        "throughput_cost": {str(b): 1.0 - median[("ort-int8", b)] / median[("ort-int8-no-topic", b)] for b in batch_sizes},
    }


@dataclass(frozen=True)
class _Backends:
    """One scoring function per backend (:data:`BACKENDS`), and what the report says of the model."""

    runners: dict[str, Callable[[Sequence[str]], Any]]
    max_length: int
    model_version: str

    @classmethod
    def load(cls, model_dir: Path, onnx_dir: Path, local: ModelSettings, threads: int, batch_size: int) -> _Backends:
        """torch fp32 from ``model_dir``; the ONNX runtime from ``onnx_dir``: fp32 and int8 with ``local``'s session
        settings, int8 with spinning intra-op threads."""
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from finpulse.export.runtime.sentiment import SentimentRuntime

        torch.set_num_threads(threads)
        runtimes = {v: SentimentRuntime.load(onnx_dir, v, local, batch_size=batch_size) for v in ("fp32", "int8")}  # type: ignore[arg-type]
        spinning = local.model_copy(update={"allow_spinning": True})
        runtimes["int8-spin"] = SentimentRuntime.load(onnx_dir, "int8", spinning, batch_size=batch_size)
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
        return cls(runners, max_length, runtimes["int8"].card.model_version)


def _measure(runners: dict[str, Callable[[Sequence[str]], Any]], backends: Sequence[str], texts: Sequence[str],
             repeats: int, batch_sizes: Sequence[int]) -> dict[tuple[str, int], list[float]]:
    """Sequences/s of every (backend, batch size), ``repeats`` times, round robin across the backends."""
    samples: dict[tuple[str, int], list[float]] = {(b, n): [] for b in backends for n in batch_sizes}
    for repeat in range(repeats):
        for batch_size in batch_sizes:
            for backend in backends:
                samples[(backend, batch_size)].append(_timed(runners[backend], texts, batch_size))
        logger.info("bench repeat %d/%d done", repeat + 1, repeats)
    return samples


def write_bench(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    from finpulse.models.plots import plot_bench

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "bench.json"
    json_path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return json_path, plot_bench(report["results"], out_dir / "bench.png")
