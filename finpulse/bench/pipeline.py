"""The pipeline benchmark: model ceiling, per-message vs micro-batched, the seed's torch way, end to end
(``news.raw`` → scored → acknowledged by Elasticsearch) with 1 and 2 workers, latency under open-loop load,
worker RSS and CPU per 1,000 articles.

Every figure is measured ``repeats`` times, interleaved (one round of each figure per repeat), so load from
other processes on a shared machine hits them alike; the report quotes medians.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from finpulse.bench.exceptions import BenchError, BenchModelMissing, BenchTimeout
from finpulse.bench.workers import BenchWorker, ServerCpu
from finpulse.settings import Settings
from finpulse.streams.records import NewsArticle

logger = logging.getLogger(__name__)

CARD_FILE = "card.json"
# Short group timings: Tansu completes a join only after about half the session timeout (QUIRKS.md).
BENCH_KAFKA = {"session_timeout_s": 6.0, "heartbeat_interval_s": 1.0, "request_timeout_s": 15.0}


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
    from finpulse.recommend.encoder import check_shared_pairing
    from finpulse.recommend.exceptions import SharedEncoderMismatchError

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
    from finpulse.sources.replay import count_rows, iter_articles

    rows = count_rows(path) or 1
    return iter_articles(path, source=source, limit=n, repeat=max(1, math.ceil(n / rows) + 1))


# --- model-only figures -------------------------------------------------------------------------------


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
        from finpulse.runtime.sentiment import SentimentRuntime

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


# --- pipeline figures ---------------------------------------------------------------------------------


def run_settings(base: Settings, model_dir: Path, threads: int, tag: str, no_recommender: Path | None = None,
                 faust_dir: Path | None = None, shared_recommender: Path | None = None) -> Settings:
    """Settings of one pipeline run: its own topics, group and indices, the benchmarked model.

    ``no_recommender`` (an empty dir) as the recommendation model dir turns the worker's news encoder off;
    ``shared_recommender`` runs that recommendation model over the embeddings of the sentiment pass.
    """
    from finpulse.infra.stack.process import free_port

    data = base.model_dump()
    name = f"bench-{tag}-{uuid.uuid4().hex[:8]}"
    data["kafka"].update(BENCH_KAFKA, topic_prefix=f"{name}.", consumer_group=name)
    data["elasticsearch"]["index_prefix"] = name
    data["model"].update(sentiment_dir=model_dir, sentiment_variant="int8", providers=["cpu"], intra_op_threads=threads)
    data["stream"].update(web_port=free_port(), metrics_port=free_port())
    data["alerts"]["sinks"] = ["log"]
    data["log_level"] = "WARNING"
    if faust_dir is not None and "data_dir" in data["stream"]:  # the worker's Faust data under the bench's output
        faust_dir.mkdir(parents=True, exist_ok=True)
        data["stream"]["data_dir"] = faust_dir
    if no_recommender is not None:
        no_recommender.mkdir(parents=True, exist_ok=True)
        data["recommend"].update(model_dir=no_recommender, shared_encoder=False)
    if shared_recommender is not None:
        data["recommend"].update(model_dir=shared_recommender, shared_encoder=True)
    return Settings.model_validate(data)


def with_ports(settings: Settings) -> Settings:
    """The same run settings with fresh web/metrics ports (a second worker on the same machine)."""
    from finpulse.infra.stack.process import free_port

    data = settings.model_dump()
    data["stream"].update(web_port=free_port(), metrics_port=free_port())
    return Settings.model_validate(data)


class EsCounter:
    def __init__(self, settings: Settings) -> None:
        from finpulse.sinks.elasticsearch import make_es_client

        self.client = make_es_client(settings.elasticsearch)
        self.index = f"{settings.elasticsearch.index_prefix}-news-*"

    def count(self) -> int:
        return int(self.client.count(index=self.index, ignore_unavailable=True, allow_no_indices=True)["count"])

    def docs(self, size: int = 10000) -> list[dict[str, Any]]:
        self.client.indices.refresh(index=self.index, ignore_unavailable=True, allow_no_indices=True)
        body = self.client.search(index=self.index, size=size, source_includes=["id", "fetched_at", "scored_at"])
        return [h["_source"] for h in body["hits"]["hits"]]

    def close(self) -> None:
        self.client.close()


def _publish(settings: Settings, items: Sequence[NewsArticle], rate: float | None = None, retime: bool = False) -> Any:
    from finpulse.infra.topics import NEWS_RAW, topic_name
    from finpulse.sources.producer import make_producer
    from finpulse.sources.replay import Pacer, publish_articles

    producer = make_producer(settings.kafka)
    try:
        pacer = Pacer(rate=rate) if rate else None
        return publish_articles(producer, topic_name(settings.kafka, NEWS_RAW), items, pacer=pacer, retime=retime)
    finally:
        producer.close()


def _prepare(settings: Settings) -> None:
    from finpulse.streams.worker import prepare

    prepare(settings)


def _start_workers(settings: Settings, count: int, log_dir: Path) -> list[BenchWorker]:
    workers = []
    for i in range(count):
        worker_settings = settings if i == 0 else with_ports(settings)
        workers.append(BenchWorker(worker_settings, log_dir / f"{settings.kafka.consumer_group}-w{i}.log").start())
    return workers


POLL_S = 0.05
MAX_COUNT_WAIT_S = 0.5


def count_wait_s(remaining: int, rate: float) -> float:
    """Seconds until the throughput run's next ``_count``: every :data:`POLL_S` until the first document
    and in the last stretch, a quarter of the time the remaining documents need at the rate so far in
    between (at most :data:`MAX_COUNT_WAIT_S`). Each ``_count`` costs the search server CPU the pipeline
    then lacks; the first and the last document are still seen within :data:`POLL_S`, unless the rate
    quadruples at the very end."""
    if rate <= 0:
        return POLL_S
    return min(MAX_COUNT_WAIT_S, max(POLL_S, 0.25 * remaining / rate))


def _check_alive(workers: Sequence[BenchWorker]) -> None:
    for w in workers:
        if not w.alive:
            raise BenchError(f"worker {w.pid} exited with {w.proc.returncode if w.proc else None}:\n{w.log_tail()}")


def throughput_run(base: Settings, config: BenchConfig, model_dir: Path, items: Sequence[NewsArticle],
                   workers: int, profile_to: Path | None = None, recommender: bool = True,
                   shared: Path | None = None) -> dict[str, float]:
    """Pre-load ``items`` into news.raw, start ``workers`` worker processes, time first → last document indexed."""
    off = None if recommender else config.out_dir / "no-recommender-model"
    tag = f"e2e{workers}{'' if recommender else 's'}{'x' if shared else ''}"
    settings = run_settings(base, model_dir, config.thread_count, tag, off, config.out_dir / "faust", shared)
    _prepare(settings)
    stats = _publish(settings, items)
    if stats.failed:
        raise BenchError(f"{stats.failed} articles were not acknowledged by Kafka")
    n = len(items)
    counter = EsCounter(settings)
    procs = _start_workers(settings, workers, config.out_dir / "logs")
    servers = ServerCpu.of_stack(settings.stack.state_dir)
    spy = _start_profile(procs[0].pid, profile_to) if profile_to else None
    try:
        deadline = time.monotonic() + config.timeout_s
        first: tuple[float, int, float] | None = None
        servers0: dict[str, float] = {}
        last, count, count_at = 0, 0, 0.0
        while True:
            now = time.time()
            cpu = sum(w.sample()[0] for w in procs)  # every tick: the peak RSS is not missed
            if now >= count_at:
                count = counter.count()
                if first is None and count > 0:
                    first = (now, count, cpu)
                    servers0 = servers.sample()
                if count >= n:
                    last = count
                    break
                rate = (count - first[1]) / (now - first[0]) if first is not None and now > first[0] else 0.0
                count_at = now + count_wait_s(n - count, rate)
            _check_alive(procs)
            if time.monotonic() > deadline:
                raise BenchTimeout(f"{count} of {n} documents indexed after {config.timeout_s:.0f} s")
            time.sleep(POLL_S)
        assert first is not None
        t0, c0, cpu0 = first
        elapsed = max(1e-6, now - t0)
        docs = last - c0
        servers1 = servers.sample()
        server_cpu = {f"{name}_cpu_s_per_1k": (servers1[name] - servers0[name]) / max(1, docs) * 1000
                      for name in servers1 if name in servers0}
        return {
            "docs_per_s": docs / elapsed,
            "cpu_s_per_1k": (cpu - cpu0) / max(1, docs) * 1000,
            **server_cpu,
            "peak_rss_mb": max(w.peak_rss for w in procs) / 2**20,
            "elapsed_s": elapsed,
        }
    finally:
        if spy is not None:
            _stop_profile(spy)
        for w in procs:
            w.stop()
        counter.close()


def _start_profile(pid: int, out: Path) -> Any:
    import shutil
    import subprocess
    import sys

    # the environment's own scripts dir first: the CLI may run from a venv that is not on PATH
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if exe is None:
        logger.warning("py-spy is not installed: no profile (pip install py-spy)")
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "50", "--format", "raw", "--threads",
                             "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_profile(spy: Any) -> None:
    import signal
    import subprocess

    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        logger.warning("py-spy did not stop; killing it")
        spy.kill()


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan}

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]

    return {"p50": q(0.50), "p95": q(0.95), "p99": q(0.99)}


def latency_run(base: Settings, config: BenchConfig, model_dir: Path, source: Iterator[NewsArticle],
                max_rate: float) -> dict[str, dict[str, float]]:
    """One worker; open-loop load at each level of ``max_rate`` for ``latency_seconds``; publish → indexed latency.

    The publish time is stamped into ``fetched_at`` when each article is sent. "scored" latency is the indexed
    document's ``scored_at`` minus it (exact); "indexed" latency matches the k-th published article of a level
    with the first poll (every 50 ms) that saw k documents of the level in Elasticsearch (arrival order ≈
    publish order; resolution 50 ms).
    """
    settings = run_settings(base, model_dir, config.thread_count, "lat", faust_dir=config.out_dir / "faust")
    _prepare(settings)
    counter = EsCounter(settings)
    procs = _start_workers(settings, 1, config.out_dir / "logs")
    out: dict[str, dict[str, float]] = {}
    try:
        warm = [next(source) for _ in range(50)]
        _publish(settings, warm, retime=True)
        _wait_count(counter, len(warm), config.timeout_s, procs)
        base_count = len(warm)
        for level in config.load_levels:
            rate = max(1.0, level * max_rate)
            items = [next(source) for _ in range(max(20, int(rate * config.latency_seconds)))]
            polls: list[tuple[float, int]] = []
            done = threading.Event()

            def send(items: list[NewsArticle] = items, rate: float = rate, done: threading.Event = done) -> None:
                try:
                    _publish(settings, items, rate, True)
                finally:
                    done.set()

            publisher = threading.Thread(target=send, name="bench-publisher", daemon=True)
            publisher.start()
            target = base_count + len(items)
            deadline = time.monotonic() + config.latency_seconds + config.timeout_s
            while True:
                count = counter.count()
                polls.append((time.time(), count))
                if done.is_set() and count >= target:
                    break
                _check_alive(procs)
                if time.monotonic() > deadline:
                    raise BenchTimeout(f"latency run at {level:.0%}: {count - base_count} of {len(items)} indexed")
                time.sleep(0.05)
            publisher.join()
            ids = {a.id for a in items}
            docs = [d for d in counter.docs() if d["id"] in ids]
            published = sorted(datetime.fromisoformat(d["fetched_at"]).timestamp() for d in docs)
            scored = [datetime.fromisoformat(d["scored_at"]).timestamp() - datetime.fromisoformat(d["fetched_at"]).timestamp()
                      for d in docs]
            indexed: list[float] = []
            p = 0
            for k, sent in enumerate(published, start=1):
                while p < len(polls) and polls[p][1] - base_count < k:
                    p += 1
                if p < len(polls):
                    indexed.append(polls[p][0] - sent)
            base_count = target
            row = {"rate": rate, "articles": float(len(items))}
            row.update({f"scored_{k}": v for k, v in _quantiles(scored).items()})
            row.update({f"indexed_{k}": v for k, v in _quantiles(indexed).items()})
            out[f"{level:.2f}"] = row
            logger.info("latency at %.0f%% (%.0f/s): %s", level * 100, rate, row)
        return out
    finally:
        for w in procs:
            w.stop()
        counter.close()


def _wait_count(counter: EsCounter, n: int, timeout_s: float, procs: Sequence[BenchWorker]) -> None:
    deadline = time.monotonic() + timeout_s
    while counter.count() < n:
        _check_alive(procs)
        if time.monotonic() > deadline:
            raise BenchTimeout(f"fewer than {n} documents after {timeout_s:.0f} s")
        time.sleep(0.1)


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
    result.meta = {
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
    step("loading the model")
    model = ModelBench(settings, config, model_dir, texts)
    result.meta.update(model_version=model.model_version, max_length=model.max_length, seed=model.torch_note)
    for r in range(config.repeats):
        step(f"repeat {r + 1}/{config.repeats}: model alone")
        model.round(result)
        step(f"repeat {r + 1}/{config.repeats}: end to end, 1 worker")
        profile_to = config.out_dir / "worker-profile.txt" if (config.profile and r == 0) else None
        for name, value in throughput_run(settings, config, model_dir, pipeline_items, 1, profile_to).items():
            result.add(f"e2e1_{name}", value)
        if config.recommender_off_too:
            step(f"repeat {r + 1}/{config.repeats}: end to end, 1 worker, recommendation encoder off")
            for name, value in throughput_run(settings, config, model_dir, pipeline_items, 1, recommender=False).items():
                result.add(f"e2e1s_{name}", value)
        if config.shared_recommender is not None:
            step(f"repeat {r + 1}/{config.repeats}: end to end, 1 worker, one shared encoder pass")
            for name, value in throughput_run(settings, config, model_dir, pipeline_items, 1,
                                              shared=config.shared_recommender).items():
                result.add(f"e2e1x_{name}", value)
        if config.two_workers:
            step(f"repeat {r + 1}/{config.repeats}: end to end, 2 workers")
            for name, value in throughput_run(settings, config, model_dir, pipeline_items, 2).items():
                result.add(f"e2e2_{name}", value)
    max_rate = result.median("e2e1_docs_per_s") or 1.0
    source = articles(data, 10**7, source="bench-latency")
    for r in range(config.repeats):
        step(f"repeat {r + 1}/{config.repeats}: latency at {', '.join(f'{x:.0%}' for x in config.load_levels)} of {max_rate:.0f}/s")
        for level, row in latency_run(settings, config, model_dir, source, max_rate).items():
            for name, value in row.items():
                result.add(f"lat{level}_{name}", value)
    result.meta["load_avg_after"] = os.getloadavg()
    return result
