"""The round-trip benchmark's outputs: ``roundtrip.json`` (every run) and ``roundtrip.png`` (CPU per click by process
and latency, run by run), written by ``finpulse recommend bench roundtrip --out DIR``."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finpulse.bench.roundtrip import TARGET_P99_MS, RoundTrip


def to_json(runs: Sequence[RoundTrip]) -> dict[str, Any]:
    return {
        "meta": {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                 "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                 "target_p99_ms": TARGET_P99_MS},
        "runs": [{**asdict(run), "label": run.label} for run in runs],
    }


def write_report(runs: Sequence[RoundTrip], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "roundtrip.json", "chart": out_dir / "roundtrip.png"}
    paths["json"].write_text(json.dumps(to_json(runs), indent=2), encoding="utf-8")
    chart(runs, paths["chart"])
    return paths


def chart(runs: Sequence[RoundTrip], path: Path) -> Path:
    """Left: CPU ms per click of each process, stacked, against what the cores give per click at that rate.
    Right: p50 and p99 click → feed, log scale, with the 1 s target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [run.label for run in runs]
    names = list(dict.fromkeys(name for run in runs for name in run.cpu.per_process_ms))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    x = range(len(runs))
    bottom = [0.0] * len(runs)
    for name in names:
        values = [run.cpu.per_process_ms.get(name, 0.0) for run in runs]
        left.bar(x, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    budget = [1000.0 * run.cpu.cores / run.rate for run in runs]
    left.plot(x, budget, "k_", markersize=40, markeredgewidth=2, label="all cores / rate")
    left.set_xticks(list(x), labels, rotation=20, ha="right")
    left.set_ylim(0, max([*budget, *bottom]) * 1.4)  # room for the legend above the bars
    left.set_ylabel("CPU ms per click")
    left.set_title("Where the cores go")
    left.legend(fontsize=8, ncol=3, loc="upper center")
    width = 0.4
    right.bar([i - width / 2 for i in x], [run.latency_ms["p50_ms"] for run in runs], width, label="p50")
    right.bar([i + width / 2 for i in x], [run.latency_ms["p99_ms"] for run in runs], width, label="p99")
    right.axhline(TARGET_P99_MS, color="red", linestyle="--", label="target p99")
    right.set_yscale("log")
    right.set_ylim(top=max(run.latency_ms["p99_ms"] for run in runs) * 8)
    right.set_xticks(list(x), labels, rotation=20, ha="right")
    right.set_ylabel("click accepted -> feed read (ms)")
    right.set_title("Round trip through Kafka")
    right.legend(fontsize=8, ncol=3, loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
