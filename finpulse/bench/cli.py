"""``finpulse bench pipeline``: the streaming pipeline's throughput and latency against the model's ceiling."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from finpulse.bench.pipeline import BenchConfig
    from finpulse.settings import Settings

logger = logging.getLogger(__name__)

bench_app = typer.Typer(name="bench", help="Benchmarks of the running system.", no_args_is_help=True)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


@bench_app.command("pipeline")
def pipeline(
    ctx: typer.Context,
    articles: int = typer.Option(3000, help="Articles per end-to-end run (real headlines, repeated with fresh ids)."),
    repeats: int = typer.Option(3, min=1, help="Repeats of every figure (the table quotes medians)."),
    threads: int = typer.Option(0, min=0, help="onnxruntime/torch threads (0 = one per core); the same for every figure."),
    batch_sizes: str = typer.Option("4,8,16,64", help="Runtime sub-batch sizes of the ceiling (micro-batches of stream.batch_size)."),
    raw_texts: int = typer.Option(1000, help="Texts per model-alone run."),
    single_texts: int = typer.Option(400, help="Texts per per-message (batch 1) run."),
    seed_texts: int = typer.Option(150, help="Texts per seed-baseline run (torch fp32, one at a time, padded to 128)."),
    latency_seconds: float = typer.Option(8.0, help="Seconds of open-loop load per latency level."),
    load_levels: str = typer.Option("0.25,0.5,0.9", help="Latency load levels, fractions of the measured maximum."),
    two_workers: bool = typer.Option(True, help="Also measure 2 workers in the same consumer group."),
    recommender_off: bool = typer.Option(True, help="Also measure 1 worker with the recommendation news encoder off."),
    shared_recommender: Path | None = typer.Option(
        None, help="A recommendation model trained with --shared-encoder over the benchmarked sentiment model: also "
                   "measure 1 worker that embeds articles in the sentiment pass."),
    seed_baseline: bool = typer.Option(True, help="Measure the seed's torch way (needs the train extra)."),
    profile: bool = typer.Option(False, help="py-spy record the worker during the first end-to-end run."),
    model_dir: Path | None = typer.Option(None, help="Exported sentiment model dir, used when the configured one has no card."),
    torch_model_dir: Path | None = typer.Option(None, help="Trained (transformers) model dir of the seed baseline."),
    data: Path | None = typer.Option(None, help="Headline CSV (default <data_dir>/twitter-financial-news-sentiment/sent_valid.csv)."),
    out: Path = typer.Option(Path("bench-output/pipeline"), help="Output dir of the JSON, Markdown table and chart."),
    start_stack: bool = typer.Option(
        True, help="Start the embedded stack (kept if already running; stopped at the end if this run started it)."
    ),
    timeout_s: float = typer.Option(300.0, help="Seconds an end-to-end run may take before the benchmark fails."),
) -> None:
    """Model ceiling, per-message vs micro-batched, seed baseline, end to end (1 and 2 workers), latency, RSS, CPU."""
    from rich.console import Console

    from finpulse.bench.pipeline import BenchConfig
    from finpulse.cli import settings_of
    from finpulse.settings import load_settings

    console = Console()
    settings = settings_of(ctx)
    stop_stack: Callable[[], object] | None = None
    if start_stack:
        from finpulse.infra.stack.manager import Stack

        manager = Stack(settings.stack)
        if all(status.action == "started" for status in manager.up()):
            stop_stack = manager.down  # leave the machine as the run found it
        settings = load_settings(manager.env_file)
    try:
        _run_and_report(settings, console, BenchConfig(
            articles=articles, repeats=repeats, threads=threads, batch_sizes=_ints(batch_sizes), raw_texts=raw_texts,
            single_texts=single_texts, seed_texts=seed_texts, latency_seconds=latency_seconds,
            load_levels=_floats(load_levels), two_workers=two_workers, recommender_off_too=recommender_off,
            shared_recommender=shared_recommender,
            seed_baseline=seed_baseline, profile=profile, timeout_s=timeout_s, model_dir=model_dir,
            torch_model_dir=torch_model_dir, data_file=data, out_dir=out,
        ))
    finally:
        if stop_stack is not None:
            stop_stack()


def _run_and_report(settings: Settings, console: Console, config: BenchConfig) -> None:
    from finpulse.bench.pipeline import run_pipeline_bench
    from finpulse.bench.report import render_table, render_targets, write_outputs

    with console.status("benchmarking") as status:

        def step(text: str) -> None:
            status.update(text)
            console.log(text)

        result = run_pipeline_bench(settings, config, on_step=step)
    console.print(f"model: {result.meta['model']} ({result.meta.get('model_version')})")
    console.print(f"recommendation path of the main runs: {result.meta.get('recommender')}")
    if result.meta.get("seed"):
        console.print(f"seed baseline: {result.meta['seed']}")
    console.print(render_table(result))
    console.print(render_targets(result))
    for kind, path in write_outputs(result, config.out_dir).items():
        console.print(f"{kind}: {path}")


def register(app: typer.Typer) -> None:
    """Add ``bench`` (``finpulse bench pipeline``) to the root app."""
    app.add_typer(bench_app, name="bench")
