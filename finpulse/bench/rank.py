"""Benchmarks of the recommendation path (figures printed by ``finpulse recommend bench``, not timed tests).

* ``rank``: top-K over N candidates (one matrix product, argpartition, freshness, exclusion, MMR) on ONE
  core: a child process pinned to one CPU with single-threaded BLAS.
* ``encoder``: one shared encoder pass yielding sentiment logits and the embedding (a two-output ONNX graph)
  against two separate passes (logits-only graph + embedding-only graph), same base encoder, same headlines.
* ``roundtrip``: click → recommendation through Kafka on a running stack, in :mod:`finpulse.bench.roundtrip`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from finpulse.export.runtime.sessions import worker_session_options
from finpulse.settings import Settings

logger = logging.getLogger(__name__)


def percentiles(samples_s: list[float]) -> dict[str, float]:
    a = np.asarray(samples_s) * 1000.0
    return {"n": len(a), "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max())}


def _rank_child(n: int, repeats: int, top_k: int, dim: int = 384) -> dict[str, Any]:
    from finpulse.export.runtime.ranking import CandidatePool, RankConfig, l2_normalise
    from finpulse.export.runtime.ranking import top_k as rank

    rng = np.random.default_rng(0)
    now = time.time()
    vectors = l2_normalise(rng.normal(size=(n, dim)).astype(np.float32))
    published = now - rng.uniform(0, 86_400.0, size=n)
    pool = CandidatePool.build(((f"a{i}", vectors[i], float(published[i]), {}) for i in range(n)), dim)
    config = RankConfig(top_k=top_k)
    users = l2_normalise(rng.normal(size=(64, dim)).astype(np.float32))
    excluded = [f"a{i}" for i in rng.integers(0, n, size=50)]
    for u in users[:5]:
        rank(u, pool, now, config, excluded)
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        rank(users[i % len(users)], pool, now, config, excluded)
        times.append(time.perf_counter() - started)
    return percentiles(times)


def bench_rank(n: int, repeats: int = 2000, top_k: int = 10) -> dict[str, Any]:
    """Top-K latency over ``n`` candidates on one core, in a child process pinned to it (ms percentiles)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = (f"import os, json; os.sched_setaffinity(0, {{sorted(os.sched_getaffinity(0))[0]}}); "
            f"from finpulse.bench.rank import _rank_child; print(json.dumps(_rank_child({n}, {repeats}, {top_k})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"top_k": top_k, "candidates": n, "users": r["n"], **{k: v for k, v in r.items() if k != "n"}}


def rank_lines(r: dict[str, Any]) -> list[str]:
    return [f"top-{r['top_k']} over {r['candidates']} candidates (384-d), one core, {r['users']} users: "
            f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.2f} ms (target p99 <= 25 ms)"]


def _two_output_module(model: Any) -> Any:
    import torch
    from torch import nn

    from finpulse.models.train_sentiment import mean_pooled

    class Both(nn.Module):
        def __init__(self, which: str) -> None:
            super().__init__()
            self.model = model
            self.which = which

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
            out = self.model.bert(input_ids=input_ids, attention_mask=attention_mask)
            emb = mean_pooled(out.last_hidden_state, attention_mask)
            if self.which == "embedding":
                return emb
            logits = self.model.classifier(out.pooler_output)
            return logits if self.which == "logits" else (logits, emb)

    return Both


def bench_encoder(settings: Settings, n_texts: int = 256, batch: int = 32, max_length: int = 64) -> dict[str, Any]:
    """ms per article of sentiment-only, embedding-only and one shared two-output pass (onnxruntime, CPU)."""
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from finpulse.models.train_sentiment import resolve_base
    from finpulse.models.training_logs import HEADLINES_CSV

    path = resolve_base(settings.model.base_model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3, attn_implementation="eager").eval()
    csv_text = (settings.model.data_dir / HEADLINES_CSV).read_text(encoding="utf-8")
    texts = [line.rsplit(",", 1)[0] for line in csv_text.splitlines()[1 : n_texts + 1]]
    Both = _two_output_module(model)
    sample = tokenizer(texts[:2], return_tensors="pt", padding=True)
    sessions: dict[str, Any] = {}
    # the options of the worker's sessions (threads, no spinning, flush-to-zero): the cost a worker would pay
    options = worker_session_options(settings.model.intra_op_threads, allow_spinning=settings.model.allow_spinning,
                                     denormal_as_zero=settings.model.denormal_as_zero)
    with tempfile.TemporaryDirectory() as tmp:
        for which, outputs in (("logits", ["logits"]), ("embedding", ["embedding"]), ("both", ["logits", "embedding"])):
            file = Path(tmp) / f"{which}.onnx"
            axes = {"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}, **{o: {0: "b"} for o in outputs}}
            with torch.inference_mode():
                torch.onnx.export(Both(which).eval(), (sample["input_ids"], sample["attention_mask"]), str(file),
                                  input_names=["input_ids", "attention_mask"], output_names=outputs, dynamic_axes=axes,
                                  opset_version=17, dynamo=False)
            sessions[which] = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
    batches = []
    for s in range(0, len(texts), batch):
        enc = tokenizer(texts[s : s + batch], truncation=True, max_length=max_length, padding="longest", return_tensors="np")
        batches.append({"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)})
    cost: dict[str, float] = {}
    for which, session in sessions.items():
        session.run(None, batches[0])
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for feeds in batches:
                session.run(None, feeds)
            best = min(best, time.perf_counter() - started)
        cost[which] = best / len(texts) * 1000.0
    return {"model": Path(path).name, "texts": len(texts), "batch": batch,
            "threads": settings.model.intra_op_threads or None, "ms_per_article": cost}


def encoder_lines(r: dict[str, Any]) -> list[str]:
    cost = r["ms_per_article"]
    two = cost["logits"] + cost["embedding"]
    return [
        f"encoder cost per article ({r['model']}, {r['texts']} headlines, batch {r['batch']}, onnxruntime CPU, "
        f"{r['threads'] or 'default'} threads, the worker's session options):",
        f"  sentiment logits only      {cost['logits']:.3f} ms",
        f"  embedding only             {cost['embedding']:.3f} ms",
        f"  two separate passes        {two:.3f} ms",
        f"  one shared pass (2 outputs) {cost['both']:.3f} ms  -> saves {100 * (1 - cost['both'] / two):.0f}% "
        f"(sentiment pays {cost['both'] - cost['logits']:+.3f} ms for the embedding, the embedding "
        f"{cost['both'] - cost['embedding']:+.3f} ms for the logits)",
    ]
