"""``finpulse recommend bench roundtrip``: click → recommendation latency through Kafka on a running stack.

A worker of its own (own topic prefix, group and index prefix) is started; 2,000 candidate articles are
published to its ``news.scored``; clicks are then sent at a fixed rate (open loop), straight to Kafka or
through a clicks API of its own, and the feeds are read back from ``recommendations``. Latency = when the
feed was read − when the click was accepted (``received_at``).

The load generator shares the machine with what it measures, so it is kept light: one asyncio loop with an
aiokafka producer and consumer (C record codecs), and feeds read by two fields instead of a full model
validation. Each process's CPU over the click phase is printed per click, so the reader sees where the
cores went (the worker, the broker, the search server indexing the feeds, the load generator itself).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from finpulse.bench.rank import percentiles
from finpulse.contracts.events import ClickEvent
from finpulse.settings import Settings, child_process_env

logger = logging.getLogger(__name__)

N_CANDIDATES = 2000
CANDIDATE_WAIT_S = 180.0
DRAIN_WAIT_S = 30.0
TARGET_P99_MS = 1000.0  # the target: click -> recommendation p99 at 200 clicks/s


@dataclass
class FeedTimes:
    """Per feed read back: click accepted → feed read, and click accepted → feed generated in the worker."""

    latencies: list[float] = field(default_factory=list)
    to_emit: list[float] = field(default_factory=list)

    def add(self, value: bytes, read_at: float) -> None:
        """Record one ``recommendations`` record read at ``read_at`` (epoch s); lists without a trigger are skipped."""
        import orjson

        data = orjson.loads(value)
        trigger = data.get("trigger_received_at")
        if trigger is None:
            return
        received = datetime.fromisoformat(trigger).timestamp()
        self.latencies.append(read_at - received)
        self.to_emit.append(datetime.fromisoformat(data["generated_at"]).timestamp() - received)


@dataclass(frozen=True)
class CpuPerClick:
    """CPU milliseconds per click of each process over the click phase, and what the machine had."""

    per_process_ms: dict[str, float]
    clicks: int
    elapsed_s: float
    cores: int

    @classmethod
    def between(cls, before: dict[str, float], after: dict[str, float], clicks: int, elapsed_s: float,
                cores: int) -> CpuPerClick:
        per = {name: (after[name] - before[name]) / max(1, clicks) * 1000.0 for name in after if name in before}
        return cls(per, clicks, elapsed_s, cores)

    def line(self) -> str:
        total = sum(self.per_process_ms.values())
        busy = total * self.clicks / 1000.0 / max(1e-9, self.elapsed_s * self.cores)
        parts = ", ".join(f"{name} {ms:.2f}" for name, ms in self.per_process_ms.items())
        return (f"  CPU ms per click over the click phase: {parts}; together {total:.2f} "
                f"(= {100 * busy:.0f}% of {self.cores} cores)")


@dataclass(frozen=True)
class RoundTrip:
    """One run: what was sent, what came back and how fast, and what it cost each process."""

    roles: list[str]
    rate: float  # clicks per second asked for
    sent: int
    send_s: float
    via: str
    refused: int
    users: int
    candidates: int
    latency_ms: dict[str, float]  # click accepted -> feed read back: n, p50_ms, p99_ms, max_ms
    to_emit_ms: dict[str, float]  # click accepted -> feed generated in the worker
    elapsed_s: float
    cpu: CpuPerClick

    @property
    def label(self) -> str:
        return f"{self.rate:g}/s, {'+'.join(self.roles)}"

    def lines(self) -> list[str]:
        r, w = self.latency_ms, self.to_emit_ms
        return [
            f"worker roles: {', '.join(self.roles)}",
            f"click -> recommendation round trip, {self.sent} clicks in {self.send_s:.1f} s "
            f"({self.sent / self.send_s:.0f}/s, {self.via}; {self.refused} refused), {self.users} users, "
            f"{self.candidates} candidates, embedded stack: {r['n']:.0f} feeds back in {self.elapsed_s:.1f} s, "
            f"p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms (target p99 <= {TARGET_P99_MS:.0f} ms)",
            f"  of which click accepted -> feed generated in the worker: p50 {w['p50_ms']:.0f} ms, p99 {w['p99_ms']:.0f} ms",
            self.cpu.line(),
        ]


def bench_roundtrip(settings: Settings, rate: float, duration_s: float, via_api: bool = False,
                    candidates: int = N_CANDIDATES, roles: list[str] | None = None) -> RoundTrip:
    """Click → recommendation latency through Kafka with a worker of its own on the configured stack; ``roles``: what
    that worker runs (default: ``stream.roles``); it needs ``recommend``."""
    bench_settings, tmp = _bench_settings(settings, roles)
    env = child_process_env(bench_settings)
    log = (tmp / "worker.log").open("wb")
    # cwd: Faust writes a <group>-data dir into it
    worker = subprocess.Popen([sys.executable, "-m", "finpulse", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True, cwd=tmp)
    api = None
    if via_api:
        api = subprocess.Popen([sys.executable, "-m", "finpulse", "clicks-api"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp)
    try:
        ids = _publish_candidates(bench_settings, candidates)
        _wait_candidates(bench_settings, worker, tmp, candidates)
        pids = {"worker": worker.pid, **({"clicks API": api.pid} if api is not None else {})}
        return asyncio.run(_drive(bench_settings, ids, rate, duration_s, via_api, pids, tmp))
    finally:
        for process in (api, worker):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, 15)
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, 9)
        log.close()


def _bench_settings(settings: Settings, roles: list[str] | None) -> tuple[Settings, Path]:
    """The benchmark's own topic prefix, group, index prefix, ports and API token; the sentiment model as
    configured, else a tiny exported one (the round trip does not score news)."""
    from finpulse.infra.stack.process import free_port

    name = f"bench-{uuid.uuid4().hex[:8]}"
    data = settings.model_dump()
    data["kafka"].update(topic_prefix=f"{name}.", consumer_group=name, session_timeout_s=6.0, heartbeat_interval_s=1.0)
    data["elasticsearch"].update(index_prefix=name)
    data["stream"].update(web_port=0, metrics_port=free_port(), roles=roles or settings.stream.roles)
    data["recommend"].update(model_dir=str(Path(tempfile.gettempdir()) / "finpulse-no-recommend-model"),
                             api_host="127.0.0.1", api_port=free_port(), api_token="bench-" + uuid.uuid4().hex)
    tmp = Path(tempfile.mkdtemp(prefix="finpulse-bench-"))
    sentiment_dir = settings.model.sentiment_path().resolve()
    if not (sentiment_dir / "card.json").is_file():
        from finpulse.export.testing import export_tiny

        sentiment_dir = export_tiny(tmp / "sentiment")
        data["model"].update(sentiment_variant="fp32")
    data["model"].update(sentiment_dir=str(sentiment_dir), intra_op_threads=1)
    bench = Settings.model_validate(data)
    if "recommend" not in bench.stream.roles:
        raise ValueError(f"the round trip needs a worker with the recommend role, not {bench.stream.roles}")
    return bench, tmp


def candidate_dim(settings: Settings) -> int:
    """The embedding size the worker's recommender takes: the sentiment model's embedding with a shared encoder
    (its card says), else the news encoder's (all-MiniLM-L6-v2: 384)."""
    from finpulse.export.runtime.card import ModelCard

    if not settings.recommend.shared_encoder:
        return 384
    return int(ModelCard.read(settings.model.sentiment_path()).data.get("embedding_dim") or 384)


def _publish_candidates(settings: Settings, n: int) -> list[str]:
    """``n`` scored articles with random unit embeddings on the benchmark's ``news.scored``."""
    from finpulse.contracts.records import ScoredArticle
    from finpulse.contracts.topics import NEWS_SCORED, topic_name
    from finpulse.streams.sources.producer import make_producer

    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    ids = [f"{i:032x}" for i in range(n)]
    vectors = rng.normal(size=(n, candidate_dim(settings)))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    topic = topic_name(settings.kafka, NEWS_SCORED)
    producer = make_producer(settings.kafka, linger_ms=0)
    try:
        for i, aid in enumerate(ids):
            article = ScoredArticle(id=aid, source="bench", title=f"bench article {i}", published_at=now - timedelta(seconds=i),
                                    label="neutral", probabilities={"negative": 0.1, "neutral": 0.8, "positive": 0.1},
                                    negative_score=0.1, model_version="bench", embedding=vectors[i].round(5).tolist())
            producer.send(topic, key=aid.encode(), value=article.to_bytes())
        producer.flush(60)
    finally:
        producer.close()
    return ids


def _wait_candidates(settings: Settings, worker: subprocess.Popen[bytes], tmp: Path, n: int) -> None:
    """Until the worker's candidate agent counted every published article (its metrics endpoint)."""
    import httpx

    url = f"http://127.0.0.1:{settings.stream.metrics_port}/metrics"
    prefix = 'finpulse_events_out_total{agent="recommend.candidates"}'
    deadline = time.monotonic() + CANDIDATE_WAIT_S
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the bench worker exited: see {tmp / 'worker.log'}")
        try:
            text = httpx.get(url, timeout=2).text
        except httpx.TransportError:
            text = ""
        done = [ln for ln in text.splitlines() if ln.startswith(prefix)]
        if done and float(done[0].split()[-1]) >= n:
            return
        time.sleep(1)
    raise RuntimeError(f"the bench worker did not take the {n} candidates in {CANDIDATE_WAIT_S:.0f} s")


async def _drive(settings: Settings, ids: list[str], rate: float, duration_s: float, via_api: bool,
                 pids: dict[str, int], tmp: Path) -> RoundTrip:
    """Send the clicks at ``rate`` for ``duration_s`` and read the feeds back, in one event loop."""
    from finpulse.bench.workers import ServerCpu

    load = _ClickLoad(settings, via_api)
    await load.producer.start()
    await load.consumer.start()
    try:
        await load.consumer.getmany(timeout_ms=1000)
        if load.client is not None:
            await _wait_healthy(load.client)
        reader = asyncio.create_task(load.read_feeds())
        n_users = max(1, int(rate * 10))  # each user clicks about every 10 s: the debounce does not hold feeds back
        cpu = ServerCpu.of_stack(settings.stack.state_dir)
        for name, pid in pids.items():
            cpu.watch(name, pid)
        before = cpu.sample()
        started = time.monotonic()
        sent = await load.send_clicks(ids, rate, int(rate * duration_s), n_users, started)
        send_s = time.monotonic() - started
        await load.settle(sent)
        elapsed = time.monotonic() - started
        after = cpu.sample()
        load.stop.set()
        await reader
    finally:
        await load.close()
    if not load.times.latencies:
        raise RuntimeError(f"no recommendations came back; see {tmp / 'worker.log'}")
    names = {"kafka": "broker", "elasticsearch": "search server", "bench": "this load generator"}
    share = CpuPerClick.between({names.get(k, k): v for k, v in before.items()},
                                {names.get(k, k): v for k, v in after.items()}, sent, elapsed, os.cpu_count() or 1)
    via = f"through the clicks API at {load.api_url}" if load.api_url else "produced straight to Kafka"
    return RoundTrip(list(settings.stream.roles), rate, sent, send_s, via, load.refused, n_users, len(ids),
                     percentiles(load.times.latencies), percentiles(load.times.to_emit), elapsed, share)


class _ClickLoad:
    """The load generator's clients (an aiokafka producer of clicks, a consumer of the feeds, and an HTTP client
    when the clicks go through the clicks API) and what they saw: the feed times and the refused posts."""

    def __init__(self, settings: Settings, via_api: bool) -> None:
        import httpx
        from aiokafka import AIOKafkaConsumer

        from finpulse.contracts.topics import CLICKS, RECOMMENDATIONS, topic_name
        from finpulse.infra.kafka_clients import connection_config
        from finpulse.streams.sources.producer import make_async_producer

        kafka = settings.kafka
        self.producer = make_async_producer(kafka, client_id="finpulse-bench-clicks", linger_ms=0)
        self.consumer = AIOKafkaConsumer(topic_name(kafka, RECOMMENDATIONS),
                                         **connection_config(kafka, "finpulse-bench-feeds", for_aiokafka=True),
                                         auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
                                         fetch_max_wait_ms=20)
        self.clicks_topic = topic_name(kafka, CLICKS)
        self.api_url = f"http://127.0.0.1:{settings.recommend.api_port}" if via_api else None
        assert settings.recommend.api_token is not None
        headers = {"Authorization": f"Bearer {settings.recommend.api_token.get_secret_value()}"}
        self.client = httpx.AsyncClient(base_url=self.api_url, timeout=10, headers=headers) if self.api_url else None
        self.times = FeedTimes()
        self.stop = asyncio.Event()
        self.refused = 0
        self._rng = np.random.default_rng(0)  # which candidate each click is on
        self._posts: set[asyncio.Task[None]] = set()
        self._posting = asyncio.Semaphore(16)
        self._deliveries: list[Any] = []

    async def read_feeds(self) -> None:
        """Until ``stop``: every feed read back, timed as it arrives."""
        while not self.stop.is_set():
            for records in (await self.consumer.getmany(timeout_ms=50)).values():
                read_at = time.time()
                for record in records:
                    self.times.add(record.value, read_at)

    async def send_clicks(self, ids: list[str], rate: float, total: int, n_users: int, started: float) -> int:
        """``total`` clicks on random ``ids`` at ``rate`` from ``started`` (open loop, users in turn), each one posted
        to the clicks API or produced to Kafka (:meth:`settle` waits for the answers); returns how many were sent."""
        sent = 0
        while sent < total:
            target = min(total, int((time.monotonic() - started) * rate) + 1)
            while sent < target:
                user = f"user-{sent % n_users}"
                now = datetime.now(UTC)
                event = ClickEvent(user_id=user, article_id=ids[int(self._rng.integers(0, len(ids)))], event_type="click",
                                   timestamp=now, position=0, session_id="bench", received_at=now)
                if self.client is not None:
                    task = asyncio.create_task(self._post(event.model_dump(mode="json", exclude={"received_at", "schema_version"})))
                    self._posts.add(task)
                    task.add_done_callback(self._posts.discard)
                else:
                    self._deliveries.append(await self.producer.send(self.clicks_topic, key=user.encode(), value=event.to_bytes()))
                sent += 1
            await asyncio.sleep(0.002)
        return sent

    async def _post(self, body: dict[str, Any]) -> None:
        assert self.client is not None
        async with self._posting:
            if (await self.client.post("/v1/events", json=[body])).status_code != 202:
                self.refused += 1

    async def settle(self, sent: int) -> None:
        """Until every click is answered or acknowledged, then until a feed came back for 99% of the ``sent`` clicks
        or :data:`DRAIN_WAIT_S` passed."""
        await asyncio.gather(*self._posts, *self._deliveries)
        deadline = time.monotonic() + DRAIN_WAIT_S
        while len(self.times.latencies) < sent * 0.99 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        await self.consumer.stop()
        await self.producer.stop()
        if self.client is not None:
            await self.client.aclose()


async def _wait_healthy(client: Any, timeout_s: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            healthy = (await client.get("/healthz")).status_code == 200
        except httpx.TransportError:
            healthy = False  # not listening yet
        if healthy:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the bench clicks API did not answer /healthz in {timeout_s:.0f} s")
