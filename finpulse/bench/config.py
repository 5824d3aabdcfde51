"""What the pipeline benchmark measures (:class:`BenchConfig`) and what it measured (:class:`BenchResult`)."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class BenchConfig:
    articles: int = 3000
    repeats: int = 3
    threads: int = 0  # 0 = os.cpu_count()
    batch_sizes: tuple[int, ...] = (4, 8, 16, 64)
    micro_batch: int = 64  # texts per score() call, as the worker's stream.batch_size
    raw_texts: int = 1000
    single_texts: int = 400
    seed_texts: int = 150
    latency_seconds: float = 8.0
    load_levels: tuple[float, ...] = (0.25, 0.5, 0.9)
    two_workers: bool = True
    recommender_off_too: bool = True  # also measure 1 worker with the recommendation news encoder off
    #: A recommendation model trained with --shared-encoder over the benchmarked sentiment model: also measure 1
    #: worker that embeds articles in the sentiment pass (FINPULSE_RECOMMEND__SHARED_ENCODER) with it.
    shared_recommender: Path | None = None
    seed_baseline: bool = True
    profile: bool = False
    timeout_s: float = 300.0
    model_dir: Path | None = None
    torch_model_dir: Path | None = None
    data_file: Path | None = None
    out_dir: Path = Path("bench-output")

    @property
    def thread_count(self) -> int:
        return self.threads or os.cpu_count() or 1


@dataclass
class BenchResult:
    meta: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.samples.setdefault(name, []).append(value)

    def median(self, name: str) -> float | None:
        values = self.samples.get(name)
        return statistics.median(values) if values else None
