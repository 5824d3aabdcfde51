"""The pipeline benchmark: model ceiling, per-message vs micro-batched, the seed's torch way, end to end
(``news.raw`` → scored → acknowledged by Elasticsearch) with 1 and 2 workers, latency under open-loop load,
worker RSS and CPU per 1,000 articles.

Every figure is measured ``repeats`` times, interleaved (one round of each figure per repeat), so load from
other processes on a shared machine hits them alike; the report quotes medians.

This module picks the inputs and runs the rounds; the figures themselves come from
:mod:`finpulse.bench.model_ceiling` (the model alone), :mod:`finpulse.bench.throughput` (end to end) and
:mod:`finpulse.bench.latency` (latency under load), over the plumbing of :mod:`finpulse.bench.runs`.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from finpulse.bench.config import BenchConfig, BenchResult
from finpulse.bench.exceptions import BenchError, BenchModelMissing
from finpulse.bench.latency import latency_run
from finpulse.bench.model_ceiling import ModelBench

# ``count_wait_s`` and its bounds are re-exported (``as``): their tests import them from here.
from finpulse.bench.throughput import MAX_COUNT_WAIT_S as MAX_COUNT_WAIT_S
from finpulse.bench.throughput import POLL_S as POLL_S
from finpulse.bench.throughput import count_wait_s as count_wait_s
from finpulse.bench.throughput import end_to_end_round
from finpulse.contracts.records import NewsArticle
from finpulse.settings import Settings

logger = logging.getLogger(__name__)

CARD_FILE = "card.json"


# --- inputs -------------------------------------------------------------------------------------------


def resolve_model_dir(settings: Settings, model_dir: Path | None) -> tuple[Path, str]:
    """The sentiment ONNX dir to benchmark and a note on where it came from."""
    configured = settings.model.sentiment_path()
    if (configured / CARD_FILE).is_file():
        return configured, f"the configured model {configured}"
    if model_dir is not None and (model_dir / CARD_FILE).is_file():
        return model_dir, f"--model-dir {model_dir} (the configured {configured} has no {CARD_FILE}: no usable real model there)"
    raise BenchModelMissing(
        f"{configured} has no {CARD_FILE} (no exported model); pass --model-dir with an exported sentiment model"
    )


def main_run_recommender(settings: Settings, model_dir: Path, fallback_dir: Path) -> tuple[Settings, str]:
    """The settings of the main runs with a recommendation model the benchmarked sentiment model can feed, and a note.

    With one shared encoder pass (the default) the worker refuses a recommender trained over another encoder; the
    benchmark then runs the shared pass with mean pooling instead (an empty model dir: the same embedding and
    candidate work, no user tower), so a benchmarked model of its own does not stop the run.
    """
    from finpulse.export.runtime.exceptions import SharedEncoderMismatchError
    from finpulse.export.runtime.recommend import check_shared_pairing

    rec = settings.recommend
    if not rec.shared_encoder:
        return settings, f"two passes: the recommender's own encoder ({settings.recommend_model_path()})"
    try:
        check_shared_pairing(settings.recommend_model_path(), model_dir)
    except SharedEncoderMismatchError as exc:
        logger.warning("benchmarking the shared pass with mean pooling: %s", exc)
        fallback_dir.mkdir(parents=True, exist_ok=True)
        return (settings.model_copy(update={"recommend": rec.model_copy(update={"model_dir": fallback_dir})}),
                "one shared pass, mean pooling (no recommendation model trained over this sentiment model)")
    return settings, f"one shared pass ({settings.recommend_model_path()})"


def headline_file(settings: Settings, data_file: Path | None) -> Path:
    path = data_file or settings.model.data_dir / "twitter-financial-news-sentiment" / "sent_valid.csv"
    if not path.is_file():
        raise BenchError(f"headline file {path} does not exist (set FINPULSE_MODEL__DATA_DIR or --data)")
    return path


def articles(path: Path, n: int, source: str = "bench") -> Iterator[NewsArticle]:
    """``n`` real headlines, the file repeated with fresh ids as often as needed."""
    from finpulse.streams.sources.replay import count_rows, iter_articles

    rows = count_rows(path) or 1
    return iter_articles(path, source=source, limit=n, repeat=max(1, math.ceil(n / rows) + 1))


# --- the whole benchmark ------------------------------------------------------------------------------


def run_pipeline_bench(settings: Settings, config: BenchConfig, on_step: Callable[[str], None] | None = None) -> BenchResult:
    """Every figure, ``config.repeats`` times, interleaved; medians in the report."""
    step = on_step or (lambda _s: None)
    model_dir, model_note = resolve_model_dir(settings, config.model_dir)
    settings, recommender_note = main_run_recommender(settings, model_dir, config.out_dir / "no-recommendation-model")
    data = headline_file(settings, config.data_file)
    config.micro_batch = settings.stream.batch_size
    rows = list(articles(data, max(config.articles, config.raw_texts)))
    texts = [a.text_for_model() for a in rows]
    pipeline_items = rows[: config.articles]
    result = BenchResult()
    result.meta = _meta(settings, config, model_dir, data, model_note, recommender_note)
    step("loading the model")
    model = ModelBench(settings, config, model_dir, texts)
    result.meta.update(model_version=model.model_version, max_length=model.max_length, seed=model.torch_note)
    for r in range(config.repeats):
        step(f"repeat {r + 1}/{config.repeats}: model alone")
        model.round(result)
        end_to_end_round(settings, config, model_dir, pipeline_items, r, result, step)
    max_rate = result.median("e2e1_docs_per_s") or 1.0
    source = articles(data, 10**7, source="bench-latency")
    for r in range(config.repeats):
        step(f"repeat {r + 1}/{config.repeats}: latency at {', '.join(f'{x:.0%}' for x in config.load_levels)} of {max_rate:.0f}/s")
        for level, row in latency_run(settings, config, model_dir, source, max_rate).items():
            for name, value in row.items():
                result.add(f"lat{level}_{name}", value)
    result.meta["load_avg_after"] = os.getloadavg()
    return result


def _meta(settings: Settings, config: BenchConfig, model_dir: Path, data: Path, model_note: str,
          recommender_note: str) -> dict[str, Any]:
    """What the report says about the run before it starts: when, where, with what model, data and settings."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "threads": config.thread_count,
        "articles": config.articles,
        "repeats": config.repeats,
        "batch_sizes": list(config.batch_sizes),
        "stream_batch_size": settings.stream.batch_size,
        "micro_batch": config.micro_batch,
        "model": model_note,
        "model_dir": str(model_dir),
        "recommender": recommender_note,
        "data": str(data),
        "load_avg_before": os.getloadavg(),
    }
