"""Benchmarks of the recommendation path (figures printed by ``finpulse recommend bench``, not timed tests).

* ``rank``: top-K over N candidates (one matrix product, argpartition, freshness, exclusion, MMR) on ONE
  core: a child process pinned to one CPU with single-threaded BLAS.
* ``encoder``: one shared encoder pass yielding sentiment logits and the embedding (a two-output ONNX graph)
  against two separate passes (logits-only graph + embedding-only graph), same base encoder, same headlines.
* ``roundtrip``: click → recommendation through Kafka on a running stack: a worker of its own (own topic prefix
  and group), candidates published, clicks sent at a fixed rate (to Kafka, or through the clicks API), latency
  = when the feed was read back − when the click was accepted.
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

from finpulse.runtime.sessions import worker_session_options
from finpulse.settings import Settings

logger = logging.getLogger(__name__)


def percentiles(samples_s: list[float]) -> dict[str, float]:
    a = np.asarray(samples_s) * 1000.0
    return {"n": len(a), "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max())}


def _rank_child(n: int, repeats: int, top_k: int, dim: int = 384) -> dict[str, Any]:
    from finpulse.recommend.ranking import CandidatePool, RankConfig, l2_normalise
    from finpulse.recommend.ranking import top_k as rank

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


def bench_rank(n: int, repeats: int = 2000, top_k: int = 10) -> list[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = (f"import os, json; os.sched_setaffinity(0, {{sorted(os.sched_getaffinity(0))[0]}}); "
            f"from finpulse.recommend.bench import _rank_child; print(json.dumps(_rank_child({n}, {repeats}, {top_k})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return [f"top-{top_k} over {n} candidates (384-d), one core, {r['n']} users: p50 {r['p50_ms']:.2f} ms, "
            f"p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.2f} ms (target p99 <= 25 ms)"]


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


def bench_encoder(settings: Settings, n_texts: int = 256, batch: int = 32, max_length: int = 64) -> list[str]:
    """ms per article of sentiment-only, embedding-only and one shared two-output pass (onnxruntime, CPU)."""
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from finpulse.models.train_sentiment import resolve_base
    from finpulse.recommend.cli import DEFAULT_CSV

    path = resolve_base(settings.model.base_model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3, attn_implementation="eager").eval()
    csv_text = (settings.model.data_dir / DEFAULT_CSV).read_text(encoding="utf-8")
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
    two = cost["logits"] + cost["embedding"]
    return [
        f"encoder cost per article ({Path(path).name}, {len(texts)} headlines, batch {batch}, onnxruntime CPU, "
        f"{settings.model.intra_op_threads or 'default'} threads, the worker's session options):",
        f"  sentiment logits only      {cost['logits']:.3f} ms",
        f"  embedding only             {cost['embedding']:.3f} ms",
        f"  two separate passes        {two:.3f} ms",
        f"  one shared pass (2 outputs) {cost['both']:.3f} ms  -> saves {100 * (1 - cost['both'] / two):.0f}% "
        f"(sentiment pays {cost['both'] - cost['logits']:+.3f} ms for the embedding, the embedding "
        f"{cost['both'] - cost['embedding']:+.3f} ms for the logits)",
    ]


def bench_roundtrip(settings: Settings, rate: float, duration_s: float, via_api: bool = False) -> list[str]:
    """Click → recommendation latency through Kafka with a worker of its own on the configured stack."""
    import uuid
    from datetime import UTC, datetime, timedelta

    import httpx
    from kafka import KafkaConsumer

    from finpulse.infra.topics import CLICKS, NEWS_SCORED, RECOMMENDATIONS, topic_name
    from finpulse.recommend.events import ClickEvent, RecommendationList
    from finpulse.sources.producer import make_producer
    from finpulse.streams.records import ScoredArticle

    name = f"bench-{uuid.uuid4().hex[:8]}"
    data = settings.model_dump()
    data["kafka"].update(topic_prefix=f"{name}.", consumer_group=name, session_timeout_s=6.0, heartbeat_interval_s=1.0)
    data["elasticsearch"].update(index_prefix=name)
    data["stream"].update(web_port=0, metrics_port=_free_port())
    data["recommend"].update(model_dir=str(Path(tempfile.gettempdir()) / "finpulse-no-recommend-model"),
                             api_host="127.0.0.1", api_port=_free_port(), api_token="bench-" + uuid.uuid4().hex)
    tmp = Path(tempfile.mkdtemp(prefix="finpulse-bench-"))
    sentiment_dir = settings.model.sentiment_path().resolve()
    if not (sentiment_dir / "card.json").is_file():
        from finpulse.models.testing import export_tiny

        sentiment_dir = export_tiny(tmp / "sentiment")
        data["model"].update(sentiment_variant="fp32")
    data["model"].update(sentiment_dir=str(sentiment_dir), intra_op_threads=1)
    bench_settings = Settings.model_validate(data)
    from finpulse.settings import settings_to_env

    env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
    env.update(settings_to_env(bench_settings))
    log = (tmp / "worker.log").open("wb")
    # cwd: Faust writes a <group>-data dir into it
    worker = subprocess.Popen([sys.executable, "-m", "finpulse", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True, cwd=tmp)
    producer = make_producer(bench_settings.kafka, linger_ms=0)
    api = None
    api_url = f"http://127.0.0.1:{bench_settings.recommend.api_port}" if via_api else None
    if via_api:
        api = subprocess.Popen([sys.executable, "-m", "finpulse", "clicks-api"], env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True, cwd=tmp)
    lines: list[str] = []
    try:
        rng = np.random.default_rng(0)
        now = datetime.now(UTC)
        n_articles = 2000
        ids = [f"{i:032x}" for i in range(n_articles)]
        vectors = rng.normal(size=(n_articles, 384))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        scored_topic = topic_name(bench_settings.kafka, NEWS_SCORED)
        for i, aid in enumerate(ids):
            article = ScoredArticle(id=aid, source="bench", title=f"bench article {i}", published_at=now - timedelta(seconds=i),
                                    label="neutral", probabilities={"negative": 0.1, "neutral": 0.8, "positive": 0.1},
                                    negative_score=0.1, model_version="bench", embedding=vectors[i].round(5).tolist())
            producer.send(scored_topic, key=aid.encode(), value=article.to_bytes())
        producer.flush(60)
        metrics_url = f"http://127.0.0.1:{bench_settings.stream.metrics_port}/metrics"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"the bench worker exited: see {tmp / 'worker.log'}")
            try:
                text = httpx.get(metrics_url, timeout=2).text
            except httpx.TransportError:
                text = ""
            done = [ln for ln in text.splitlines() if ln.startswith('finpulse_events_out_total{agent="recommend.candidates"}')]
            if done and float(done[0].split()[-1]) >= n_articles:
                break
            time.sleep(1)
        import threading
        from concurrent.futures import ThreadPoolExecutor

        consumer = KafkaConsumer(topic_name(bench_settings.kafka, RECOMMENDATIONS), bootstrap_servers=bench_settings.kafka.broker_list(),
                                 auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
                                 fetch_max_wait_ms=20)
        consumer.poll(timeout_ms=1000)
        clicks_topic = topic_name(bench_settings.kafka, CLICKS)
        n_users = max(1, int(rate * 10))  # each user clicks about every 10 s: the debounce does not hold feeds back
        total = int(rate * duration_s)
        latencies: list[float] = []
        to_emit: list[float] = []  # click accepted -> feed generated by the worker
        stop = threading.Event()

        def read_feeds() -> None:  # its own thread, so sending never delays the reading (and the clock)
            while not stop.is_set():
                for batch in consumer.poll(timeout_ms=50).values():
                    got = time.time()
                    for record in batch:
                        rec = RecommendationList.model_validate_json(record.value)
                        if rec.trigger_received_at is not None:
                            latencies.append(got - rec.trigger_received_at.timestamp())
                            to_emit.append(rec.generated_at.timestamp() - rec.trigger_received_at.timestamp())

        reader = threading.Thread(target=read_feeds, name="bench-feeds", daemon=True)
        reader.start()
        assert bench_settings.recommend.api_token is not None
        token = bench_settings.recommend.api_token.get_secret_value()
        client = httpx.Client(base_url=api_url, timeout=10, headers={"Authorization": f"Bearer {token}"}) if api_url else None
        pool = ThreadPoolExecutor(max_workers=16) if client is not None else None
        if client is not None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.5)
        refused = 0

        def post(body: dict[str, Any]) -> None:
            nonlocal refused
            assert client is not None
            if client.post("/v1/events", json=[body]).status_code != 202:
                refused += 1

        started = time.monotonic()
        sent = 0
        while sent < total:
            target = min(total, int((time.monotonic() - started) * rate) + 1)
            while sent < target:
                user = f"user-{sent % n_users}"
                event = ClickEvent(user_id=user, article_id=ids[int(rng.integers(0, n_articles))], event_type="click",
                                   timestamp=datetime.now(UTC), position=0, session_id="bench", received_at=datetime.now(UTC))
                if pool is not None:
                    pool.submit(post, event.model_dump(mode="json", exclude={"received_at", "schema_version"}))
                else:
                    producer.send(clicks_topic, key=user.encode(), value=event.to_bytes())
                sent += 1
            time.sleep(0.002)
        send_s = time.monotonic() - started
        if pool is not None:
            pool.shutdown(wait=True)
        deadline = time.monotonic() + 30
        while len(latencies) < sent * 0.99 and time.monotonic() < deadline:
            time.sleep(0.2)
        stop.set()
        reader.join(5)
        consumer.close()
        if client is not None:
            client.close()
        elapsed = time.monotonic() - started
        if not latencies:
            raise RuntimeError(f"no recommendations came back; see {tmp / 'worker.log'}")
        r = percentiles(latencies)
        via = f"through the clicks API at {api_url}" if api_url else "produced straight to Kafka"
        lines.append(f"click -> recommendation round trip, {sent} clicks in {send_s:.1f} s ({sent / send_s:.0f}/s, {via}; "
                     f"{refused} refused), {n_users} users, "
                     f"{n_articles} candidates, embedded stack: {r['n']} feeds back in {elapsed:.1f} s, p50 {r['p50_ms']:.0f} ms, "
                     f"p99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms (target p99 <= 1000 ms)")
        w = percentiles(to_emit)
        lines.append(f"  of which click accepted -> feed generated in the worker: p50 {w['p50_ms']:.0f} ms, p99 {w['p99_ms']:.0f} ms")
    finally:
        producer.close()
        for process in (api, worker):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, 15)
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, 9)
        log.close()
    return lines


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
