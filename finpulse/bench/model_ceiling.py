"""The pipeline benchmark's model-only figures: the ONNX runtime alone (its ceiling, per batch setting and per
message) and the seed's torch way (one message at a time, padded to 128 tokens)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from finpulse.bench.config import BenchConfig, BenchResult
from finpulse.settings import Settings

logger = logging.getLogger(__name__)


def _rate(run: Callable[[Sequence[str]], Any], texts: Sequence[str], batch: int) -> tuple[float, float]:
    """Texts per second, and this process's CPU seconds per 1,000 texts (every thread, onnxruntime's included)."""
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(texts), batch):
        run(texts[start : start + batch])
    elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    return len(texts) / elapsed, cpu_s / len(texts) * 1000


class ModelBench:
    """The ONNX runtime alone (per batch setting and per message) and the seed's torch way."""

    def __init__(self, settings: Settings, config: BenchConfig, model_dir: Path, texts: Sequence[str]) -> None:
        from finpulse.export.runtime.sentiment import SentimentRuntime

        self.config = config
        self.texts = list(texts)
        local = settings.model.model_copy(update={"providers": ["cpu"], "intra_op_threads": config.thread_count})
        self.runtime = SentimentRuntime.load(model_dir, "int8", local, batch_size=max(config.batch_sizes))
        self.model_version = self.runtime.model_version
        self.max_length = self.runtime.max_length
        self._torch: Callable[[Sequence[str]], Any] | None = None
        self.torch_note = ""
        if config.seed_baseline:
            self._torch = self._load_torch(settings)

    def _load_torch(self, settings: Settings) -> Callable[[Sequence[str]], Any] | None:
        directory = self.config.torch_model_dir or settings.model.artifacts_dir / "sentiment" / "train" / "model"
        if not (directory / "config.json").is_file():
            self.torch_note = f"no trained model at {directory}: seed baseline skipped"
            logger.warning(self.torch_note)
            return None
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as exc:
            self.torch_note = f"torch/transformers not installed ({exc}): seed baseline skipped (install the train extra)"
            logger.warning(self.torch_note)
            return None
        torch.set_num_threads(self.config.thread_count)
        model = AutoModelForSequenceClassification.from_pretrained(directory, dtype=torch.float32)
        model.eval()
        tokenizer = AutoTokenizer.from_pretrained(directory)
        self.torch_note = f"torch fp32 from {directory}, one message at a time, padded to 128 tokens"

        def run(batch: Sequence[str]) -> Any:  # the seed: one message, padded to max_length=128
            enc = tokenizer(list(batch), truncation=True, max_length=128, padding="max_length", return_tensors="pt")
            with torch.inference_mode():
                return model(**enc).logits.softmax(-1)

        run(self.texts[:2])
        return run

    def round(self, result: BenchResult) -> None:
        """One repeat of every model-only figure."""
        texts = self.texts[: self.config.raw_texts]
        self.runtime.score(texts[:64])  # warm
        chunk = self.config.micro_batch
        for b in self.config.batch_sizes:  # the worker hands the runtime micro-batches of `chunk`; it runs them in sub-batches of b
            self.runtime.batch_size = b
            rate, cpu = _rate(self.runtime.score, texts, chunk)
            result.add(f"raw_b{b}", rate)
            result.add(f"raw_b{b}_cpu_s_per_1k", cpu)
        self.runtime.batch_size = 1
        result.add("raw_b1", _rate(self.runtime.score, self.texts[: self.config.single_texts], 1)[0])
        self.runtime.batch_size = max(self.config.batch_sizes)
        if self._torch is not None:
            result.add("seed_torch_b1_pad128", _rate(self._torch, self.texts[: self.config.seed_texts], 1)[0])
