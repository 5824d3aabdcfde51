"""``finpulse bench ...``: every benchmark of finpulse (pipeline, sentiment, rank, encoder, roundtrip)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    as_json: bool = typer.Option(False, "--json", help="One JSON object (meta, summary) on stdout; progress on stderr."),
) -> None:
    """Model ceiling, per-message vs micro-batched, seed baseline, end to end (1 and 2 workers), latency, RSS, CPU."""
    from rich.console import Console

    from finpulse.bench.pipeline import BenchConfig
    from finpulse.context import settings_of
    from finpulse.settings import load_settings

    console = Console(stderr=as_json)  # with --json, stdout carries the JSON object alone
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
        ), as_json)
    finally:
        if stop_stack is not None:
            stop_stack()


def _run_and_report(settings: Settings, console: Console, config: BenchConfig, as_json: bool = False) -> None:
    from finpulse.bench.pipeline import run_pipeline_bench
    from finpulse.bench.report import render_table, render_targets, summary, write_outputs

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
    files = write_outputs(result, config.out_dir)
    for kind, path in files.items():
        console.print(f"{kind}: {path}")
    if as_json:
        typer.echo(json.dumps({"meta": result.meta, "summary": summary(result),
                               "files": {kind: str(path) for kind, path in files.items()}}, default=str))


def _emit(as_json: bool, report: dict[str, Any], lines: list[str]) -> None:
    """The figures: one JSON object on stdout with ``--json``, else the printed lines."""
    if as_json:
        typer.echo(json.dumps(report, default=str))
        return
    for line in lines:
        typer.echo(line)


@bench_app.command("rank")
def rank(
    ctx: typer.Context,
    candidates: int = typer.Option(50_000, "--candidates", min=1),
    repeats: int = typer.Option(2000, "--repeats", min=1),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout instead of text."),
) -> None:
    """Top-K recommendation latency over N candidates on one core (p50/p99)."""
    from finpulse.bench.rank import bench_rank, rank_lines
    from finpulse.context import settings_of

    report = bench_rank(candidates, repeats=repeats, top_k=settings_of(ctx).recommend.top_k)
    _emit(as_json, report, rank_lines(report))


@bench_app.command("encoder")
def encoder(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout instead of text."),
) -> None:
    """Encoder cost per article: one shared pass (logits + embedding) against two passes."""
    from finpulse.bench.rank import bench_encoder, encoder_lines
    from finpulse.context import settings_of

    report = bench_encoder(settings_of(ctx))
    _emit(as_json, report, encoder_lines(report))


@bench_app.command("roundtrip")
def roundtrip(
    ctx: typer.Context,
    clicks_per_s: list[float] = typer.Option([200.0], "--rate", help="Clicks per second (repeatable: one run each)."),
    duration: float = typer.Option(30.0, "--duration"),
    via_api: bool = typer.Option(False, "--via-api", help="Send the clicks through a clicks API of its own."),
    worker_role: list[str] = typer.Option([], "--worker-role", help="What its worker runs (repeatable; "
                                          "default stream.roles): news, alerts, recommend."),
    compare_roles: bool = typer.Option(False, "--compare-roles", help="Each rate also with a worker that "
                                       "runs only the recommend role, back to back."),
    out: Path | None = typer.Option(None, "--out", help="Write roundtrip.json and roundtrip.png here."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout instead of text."),
) -> None:
    """Click -> recommendation feed round trip through Kafka (p50/p99, CPU per click by process)."""
    from dataclasses import asdict

    from finpulse.bench.roundtrip import bench_roundtrip
    from finpulse.context import settings_of

    settings = settings_of(ctx)
    role_sets: list[list[str] | None] = [worker_role or None] + ([["recommend"]] if compare_roles else [])
    runs = []
    for rate in clicks_per_s:
        for role_set in role_sets:
            runs.append(bench_roundtrip(settings, rate, duration, via_api, roles=role_set))
            if not as_json:
                for line in runs[-1].lines():
                    typer.echo(line)
    files: dict[str, Any] = {}
    if out is not None:
        from finpulse.bench.roundtrip_report import write_report

        files = write_report(runs, out)
    if as_json:
        typer.echo(json.dumps({"runs": [asdict(run) for run in runs], "files": files}, default=str))
    else:
        for path in files.values():
            typer.echo(f"wrote {path}")


@bench_app.command("sentiment")
def sentiment(
    ctx: typer.Context,
    texts: int = typer.Option(256, "--texts", min=8, help="Real headlines (twitter-fin valid) per measurement."),
    repeats: int = typer.Option(5, "--repeats", min=1),
    threads: int = typer.Option(0, "--threads", min=0, help="Threads for torch and onnxruntime (0 = all cores)."),
    head_cost: bool = typer.Option(False, "--head-cost", help="Also export the model without its topic head and "
                                   "measure what the head costs the int8 graph's throughput."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout instead of the table."),
) -> None:
    """Sequences/s of torch fp32, ORT fp32 and ORT int8 (worker settings, and spinning) at batch 1/8/32, same run."""
    from finpulse.bench.sentiment import BACKENDS, run_bench, write_bench
    from finpulse.context import settings_of
    from finpulse.models.data import load_twitter
    from finpulse.models.exceptions import ArtefactMissingError

    settings = settings_of(ctx).model
    model_dir = settings.artifacts_dir / "sentiment" / "train" / "model"
    if not (model_dir / "config.json").is_file():
        raise ArtefactMissingError(f"no trained model at {model_dir}: run `finpulse model build sentiment`")
    headlines = [e.text for e in load_twitter(settings.data_dir, "valid")][:texts]
    bench_dir = settings.artifacts_dir / "sentiment" / "bench"
    report = run_bench(model_dir, settings.sentiment_path(), settings, headlines, repeats=repeats, threads=threads or None,
                       head_cost_dir=bench_dir / "no-topic-head" if head_cost else None)
    json_path, png_path = write_bench(report, bench_dir)
    if as_json:
        typer.echo(json.dumps({**report, "files": {"json": str(json_path), "png": str(png_path)}}, default=str))
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sentiment: sequences/s, median of {repeats} ({len(headlines)} headlines, "
                        f"{report['threads']} threads)")
    table.add_column("batch")
    for backend in BACKENDS:
        table.add_column(backend)
    table.add_column("int8 / torch")
    table.add_column("int8-spin / torch")
    by = {(r["backend"], r["batch_size"]): r["seq_per_s"] for r in report["results"]}
    for b in sorted({r["batch_size"] for r in report["results"]}):
        table.add_row(str(b), *(f"{by[(k, b)]:.1f}" for k in BACKENDS),
                      *(f"{report['ratios'][f'{k}/torch-fp32'][str(b)]:.2f}x" for k in ("ort-int8", "ort-int8-spin")))
    Console(width=120).print(table)
    if head_cost:
        typer.echo("topic head cost (int8, share of throughput): " + ", ".join(
            f"batch {b} {cost:+.1%}" for b, cost in report["head_cost"]["throughput_cost"].items()))
    typer.echo(f"bench: {json_path} {png_path}")


@bench_app.command("recovery")
def recovery(
    ctx: typer.Context,
    keys: str = typer.Option("10000,100000", help="Table sizes (spike-state entries), comma-separated."),
    stores: str = typer.Option("memory,rocksdb", help="Table stores to compare, comma-separated."),
    start_stack: bool = typer.Option(True, help="Start the embedded stack (stopped at the end if this run started it)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout instead of the table."),
) -> None:
    """Seconds a worker takes to restore its tables after a restart: memory against RocksDB, per table size."""
    from finpulse.bench.recovery import lines, report, run_recovery_bench
    from finpulse.context import settings_of
    from finpulse.settings import load_settings

    settings = settings_of(ctx)
    stop_stack: Callable[[], object] | None = None
    if start_stack:
        from finpulse.infra.stack.manager import Stack

        manager = Stack(settings.stack)
        if all(status.action == "started" for status in manager.up()):
            stop_stack = manager.down
        settings = load_settings(manager.env_file)
    try:
        runs = run_recovery_bench(settings, _ints(keys), [s.strip() for s in stores.split(",") if s.strip()])
    finally:
        if stop_stack is not None:
            stop_stack()
    _emit(as_json, report(runs), lines(runs))


def register(app: typer.Typer) -> None:
    """Add the ``bench`` group to the root app."""
    app.add_typer(bench_app, name="bench")
