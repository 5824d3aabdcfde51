"""The pipeline benchmark's table (rich), JSON and chart (matplotlib PNG), and the targets it checks."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finpulse.bench.pipeline import BenchResult


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None
    goal: float
    higher_is_better: bool = True

    @property
    def met(self) -> bool | None:
        if self.value is None or math.isnan(self.value):
            return None
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _spread(result: BenchResult, name: str, digits: int = 1) -> str:
    values = result.samples.get(name) or []
    return ", ".join(_fmt(v, digits) for v in values)


def ceiling_of(result: BenchResult) -> tuple[int | None, float | None]:
    """The best runtime sub-batch size of the model-alone runs and its median texts/s (the ceiling)."""
    raw = {b: result.median(f"raw_b{b}") for b in result.meta.get("batch_sizes", [])}
    best_b = max((b for b in raw if raw[b] is not None), key=lambda b: raw[b] or 0.0, default=None)
    return best_b, raw.get(best_b) if best_b is not None else None


def summary(result: BenchResult) -> dict[str, Any]:
    """Medians, the ceiling (best batch setting), the ratios and the targets."""
    best_b, ceiling = ceiling_of(result)
    single = result.median("raw_b1")
    seed = result.median("seed_torch_b1_pad128")
    e2e1 = result.median("e2e1_docs_per_s")
    e2e2 = result.median("e2e2_docs_per_s")
    e2e1s = result.median("e2e1s_docs_per_s")
    e2e1x = result.median("e2e1x_docs_per_s")
    p99_half = result.median("lat0.50_indexed_p99")

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    targets = [
        Target("end-to-end / ceiling >= 0.85", ratio(e2e1, ceiling), 0.85),
        Target("  same, recommendation encoder off >= 0.85", ratio(e2e1s, ceiling), 0.85),
        Target("  same, one shared encoder pass >= 0.85", ratio(e2e1x, ceiling), 0.85),
        Target("micro-batched / per-message >= 1.4", ratio(ceiling, single), 1.4),
        Target("end-to-end / seed's way >= 5", ratio(e2e1, seed), 5.0),
        Target("  same, recommendation encoder off >= 5", ratio(e2e1s, seed), 5.0),
        Target("p99 publish->indexed at 50% load <= 2 s", p99_half, 2.0, higher_is_better=False),
    ]
    return {
        "ceiling_batch_size": best_b,
        "ceiling_docs_per_s": ceiling,
        "per_message_docs_per_s": single,
        "seed_docs_per_s": seed,
        "e2e_1_worker_docs_per_s": e2e1,
        "e2e_2_workers_docs_per_s": e2e2,
        "e2e_1_worker_no_recommender_docs_per_s": e2e1s,
        "e2e_1_worker_shared_encoder_docs_per_s": e2e1x,
        "ratios": {
            "e2e_over_ceiling": ratio(e2e1, ceiling),
            "e2e_no_recommender_over_ceiling": ratio(e2e1s, ceiling),
            "e2e_shared_encoder_over_ceiling": ratio(e2e1x, ceiling),
            "shared_over_separate_encoder_pass": ratio(e2e1x, e2e1),
            "batched_over_per_message": ratio(ceiling, single),
            "e2e_over_seed": ratio(e2e1, seed),
            "two_over_one_worker": ratio(e2e2, e2e1),
        },
        "targets": [{"name": t.name, "value": t.value, "goal": t.goal, "met": t.met} for t in targets],
    }


def all_processes_cpu(result: BenchResult, workers: str) -> float | None:
    """Median over the runs of the CPU seconds per 1,000 articles of the workers, the broker, the search server
    and the counter together (None unless each was measured in every run)."""
    parts = [result.samples.get(f"e2e{workers}_{name}cpu_s_per_1k", [])
             for name in ("", "kafka_", "elasticsearch_", "bench_")]
    runs = len(parts[0])
    if runs == 0 or any(len(p) != runs for p in parts):
        return None
    return statistics.median(sum(run) for run in zip(*parts, strict=True))


def rows(result: BenchResult) -> list[tuple[str, str, str]]:
    """(figure, median, runs) rows of the table."""
    out: list[tuple[str, str, str]] = []
    for b in result.meta.get("batch_sizes", []):
        out.append((f"model alone, ONNX int8, micro-batch {result.meta.get('micro_batch')} run as sub-batches of {b} (texts/s)",
                    _fmt(result.median(f"raw_b{b}")), _spread(result, f"raw_b{b}")))
    best, _ = ceiling_of(result)
    if f"raw_b{best}_cpu_s_per_1k" in result.samples:
        out.append((f"model alone at the ceiling (sub-batches of {best}): CPU s per 1,000 texts",
                    _fmt(result.median(f"raw_b{best}_cpu_s_per_1k"), 2), _spread(result, f"raw_b{best}_cpu_s_per_1k", 2)))
    out.append(("model alone, per message: batch 1 (texts/s)", _fmt(result.median("raw_b1")), _spread(result, "raw_b1")))
    out.append(("seed's way: torch fp32, 1 msg, pad 128 (texts/s)", _fmt(result.median("seed_torch_b1_pad128")),
                _spread(result, "seed_torch_b1_pad128")))
    labels = {"1": "1 worker", "1s": "1 worker, recommendation encoder off", "1x": "1 worker, one shared encoder pass",
              "2": "2 workers"}
    for w, label in labels.items():
        if f"e2e{w}_docs_per_s" not in result.samples:
            continue
        out.append((f"end to end, {label}: news.raw -> ES ack (docs/s)", _fmt(result.median(f"e2e{w}_docs_per_s")),
                    _spread(result, f"e2e{w}_docs_per_s")))
        out.append((f"  {label}: peak RSS (MB, max over workers)", _fmt(result.median(f"e2e{w}_peak_rss_mb"), 0),
                    _spread(result, f"e2e{w}_peak_rss_mb", 0)))
        out.append((f"  {label}: CPU s per 1,000 articles", _fmt(result.median(f"e2e{w}_cpu_s_per_1k"), 2),
                    _spread(result, f"e2e{w}_cpu_s_per_1k", 2)))
        processes = ("kafka", "Kafka broker"), ("elasticsearch", "search server"), \
            ("bench", "the benchmark's own document counter")
        for server, what in processes:
            key = f"e2e{w}_{server}_cpu_s_per_1k"
            if key in result.samples:
                out.append((f"  {label}: {what} CPU s per 1,000 articles", _fmt(result.median(key), 2),
                            _spread(result, key, 2)))
        total = all_processes_cpu(result, w)
        cores = result.meta.get("cores")
        if total is not None and cores:
            out.append((f"  {label}: all these processes, CPU s per 1,000 articles", _fmt(total, 2), ""))
            out.append((f"  {label}: the most {cores} cores allow at that cost (docs/s)", _fmt(cores * 1000 / total), ""))
    levels = sorted({k.split("_")[0][3:] for k in result.samples if k.startswith("lat")})
    for level in levels:
        rate = result.median(f"lat{level}_rate")
        for kind in ("indexed", "scored"):
            q = [result.median(f"lat{level}_{kind}_{p}") for p in ("p50", "p95", "p99")]
            out.append((f"latency publish->{kind} at {float(level):.0%} ({_fmt(rate, 0)}/s): p50/p95/p99 s",
                        " / ".join(_fmt(v, 3) for v in q), _spread(result, f"lat{level}_{kind}_p99", 3) + " (p99)"))
    return out


def render_table(result: BenchResult) -> Any:
    from rich.table import Table

    table = Table(title=f"finpulse bench pipeline - {result.meta.get('date')} - {result.meta.get('machine')}")
    table.add_column("figure")
    table.add_column("median", justify="right")
    table.add_column("runs")
    for row in rows(result):
        table.add_row(*row)
    return table


def render_targets(result: BenchResult) -> Any:
    from rich.table import Table

    table = Table(title="targets")
    table.add_column("target")
    table.add_column("measured", justify="right")
    table.add_column("met")
    for t in summary(result)["targets"]:
        mark = "n/a" if t["met"] is None else ("yes" if t["met"] else "NO")
        table.add_row(t["name"], _fmt(t["value"], 2), mark)
    return table


def markdown(result: BenchResult) -> str:
    """The table and the targets as Markdown (for docs/benchmarks.md and the README's table)."""
    lines = ["| figure | median | runs |", "|---|---:|---|"]
    lines += [f"| {a.strip()} | {b} | {c} |" for a, b, c in rows(result)]
    lines += ["", "| target | measured | met |", "|---|---:|---|"]
    for t in summary(result)["targets"]:
        mark = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['name']} | {_fmt(t['value'], 2)} | {mark} |")
    return "\n".join(lines) + "\n"


def write_outputs(result: BenchResult, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"meta": result.meta, "summary": summary(result), "samples": result.samples, "extra": result.extra}
    paths = {"json": out_dir / "pipeline.json", "markdown": out_dir / "pipeline.md", "chart": out_dir / "pipeline.png"}
    paths["json"].write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    paths["markdown"].write_text(markdown(result), encoding="utf-8")
    _chart(result, paths["chart"])
    return paths


def _chart(result: BenchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summary(result)
    optional = {"e2e_1_worker_no_recommender_docs_per_s", "e2e_1_worker_shared_encoder_docs_per_s"}
    bars = [
        ("seed torch\n1 msg", "seed_docs_per_s", "#999"),
        ("ONNX int8\nbatch 1", "per_message_docs_per_s", "#6a9"),
        (f"ONNX int8\nsub-batch {s['ceiling_batch_size']}\n(ceiling)", "ceiling_docs_per_s", "#2a7"),
        ("end to end\n1 worker", "e2e_1_worker_docs_per_s", "#27c"),
        ("end to end\n1 worker\nno rec.\nencoder", "e2e_1_worker_no_recommender_docs_per_s", "#49e"),
        ("end to end\n1 worker\nshared\npass", "e2e_1_worker_shared_encoder_docs_per_s", "#6bf"),
        ("end to end\n2 workers", "e2e_2_workers_docs_per_s", "#158"),
    ]
    bars = [b for b in bars if b[1] not in optional or s[b[1]] is not None]  # figures this run did not measure
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    names = [b[0] for b in bars]
    values = [s[b[1]] or 0.0 for b in bars]
    ax.bar(names, values, color=[b[2] for b in bars])
    ax.set_ylabel("articles / s (median)")
    ax.set_title("throughput")
    ax.tick_params(axis="x", labelsize=7)
    levels = sorted({k.split("_")[0][3:] for k in result.samples if k.startswith("lat")})
    for p in ("p50", "p95", "p99"):
        ys = [result.median(f"lat{lv}_indexed_{p}") or math.nan for lv in levels]
        ax2.plot([float(lv) * 100 for lv in levels], ys, marker="o", label=p)
    ax2.axhline(2.0, color="red", lw=0.8, ls="--", label="2 s target")
    ax2.set_xlabel("load, % of measured max")
    ax2.set_ylabel("publish -> indexed, s")
    ax2.set_title("latency under open-loop load")
    ax2.legend()
    fig.suptitle(f"finpulse pipeline - {result.meta.get('date')} - {result.meta.get('machine')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
