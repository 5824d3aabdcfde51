"""``finpulse demo``: the main job on the embedded stack, shown live on the terminal.

Starts the embedded stack, builds the sentiment and recommendation models when none are cached, starts a
worker process and the clicks API, replays real headlines (twitter-financial-news-sentiment, MIT) with a burst
of real bearish headlines about one ticker in the middle, and shows throughput, the latest scores and the raised
alerts; then simulated readers click through the API and their live feeds are shown (:mod:`finpulse.demo.readers`).
"""

from __future__ import annotations

import csv
import logging
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from finpulse.contracts.ids import article_id
from finpulse.contracts.records import NewsArticle, utcnow
from finpulse.demo.exceptions import DemoError
from finpulse.settings import Settings, child_process_env, load_settings

if TYPE_CHECKING:
    from finpulse.infra.stack.manager import Stack

logger = logging.getLogger(__name__)

BURST_TICKER = "ACME"
BURST_SIZE = 30
HEADLINES = Path("twitter-financial-news-sentiment") / "sent_valid.csv"


@dataclass
class DemoState:
    produced: int = 0
    burst_sent: bool = False
    done: bool = False
    error: str | None = None
    started: float = field(default_factory=time.monotonic)


def burst_articles(data_file: Path, ticker: str, size: int) -> list[NewsArticle]:
    """Real bearish headlines of the data set, all tagged with one ticker: the negative burst."""
    with data_file.open(newline="", encoding="utf-8") as handle:
        bearish = [row["text"] for row in csv.DictReader(handle) if row["label"] == "0"]
    return [
        NewsArticle(
            id=article_id(None, "demo-burst", text), source="demo-burst", title=" ".join(text.split())[:2000],
            published_at=utcnow(), tickers=[ticker],
        )
        for text in bearish[:size]
    ]


def _replay(settings: Settings, data_file: Path, limit: int, rate: float, state: DemoState) -> None:
    from finpulse.contracts.topics import NEWS_RAW, topic_name
    from finpulse.streams.sources.producer import make_producer
    from finpulse.streams.sources.replay import Pacer, iter_articles, publish_articles

    producer = make_producer(settings.kafka, client_id="finpulse-demo")
    topic = topic_name(settings.kafka, NEWS_RAW)
    try:
        articles = list(iter_articles(data_file, limit=limit))
        half = len(articles) // 2
        for part in (articles[:half], burst_articles(data_file, BURST_TICKER, BURST_SIZE), articles[half:]):
            stats = publish_articles(producer, topic, part, pacer=Pacer(rate=rate), retime=True)
            state.produced += stats.delivered
            state.burst_sent = state.burst_sent or part[0].source == "demo-burst"
    except Exception as exc:  # shown on the screen and re-raised by run_demo
        state.error = f"{type(exc).__name__}: {exc}"
        logger.exception("replay failed")
    finally:
        producer.close(timeout=10)
        state.done = True


def _build(settings: Settings, console: Console, name: str) -> None:
    console.print(f"[yellow]no {name} model built yet:[/] training and exporting one (cached for later runs)")
    env = child_process_env(settings)
    done = subprocess.run([sys.executable, "-m", "finpulse", "model", "build", name], env=env, check=False)
    if done.returncode != 0:
        raise DemoError(f"building the {name} model failed (exit {done.returncode})")


def _ensure_models(settings: Settings, console: Console) -> None:
    from finpulse.export.runtime.recommend import rebuild_reason

    card = settings.model.sentiment_path() / "card.json"
    if card.is_file():
        console.print(f"[green]✓[/] sentiment model cached at {card.parent}")
    else:
        _build(settings, console, "sentiment")
    if rebuild_reason(settings) is None:
        console.print(f"[green]✓[/] recommendation model cached at {settings.recommend_model_path()}")
    else:
        _build(settings, console, "recommend")


def _start(settings: Settings, log_file: Path, *command: str) -> subprocess.Popen[bytes]:
    """``finpulse <command>`` as a process of its own, with the demo's settings."""
    env = child_process_env(settings)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "finpulse", *command], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


class _Observer:
    """Reads what the pipeline produced: Elasticsearch counts and latest scores, Alerta's open alerts."""

    def __init__(self, settings: Settings) -> None:
        from finpulse.streams.sinks.elasticsearch import make_es_client

        self.settings = settings
        self.es = make_es_client(settings.elasticsearch)
        self.index = f"{settings.elasticsearch.index_prefix}-news"
        key = settings.alerta.api_key.get_secret_value() if settings.alerta.api_key else ""
        self.alerta = httpx.Client(base_url=settings.alerta.endpoint, headers={"Authorization": f"Key {key}"}, timeout=5)

    def indexed(self) -> int:
        if not self._exists():
            return 0
        self.es.indices.refresh(index=self.index)
        return int(self.es.count(index=self.index)["count"])

    def _exists(self) -> bool:
        return bool(self.es.indices.exists(index=self.index))

    def latest(self, size: int = 8) -> list[dict[str, Any]]:
        if not self._exists():
            return []
        hits = self.es.search(index=self.index, size=size, sort=[{"scored_at": "desc"}])["hits"]["hits"]
        return [h["_source"] for h in hits]

    def alerts(self) -> list[dict[str, Any]]:
        response = self.alerta.get("/alerts", params={"event": "NegativeSentimentSpike", "status": "open"})
        response.raise_for_status()
        return list(response.json().get("alerts", []))

    def close(self) -> None:
        self.es.close()
        self.alerta.close()


def _screen(state: DemoState, indexed: int, latest: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> Group:
    elapsed = time.monotonic() - state.started
    head = Table.grid(padding=(0, 3))
    head.add_row(f"elapsed [b]{elapsed:5.1f} s[/]", f"produced [b]{state.produced}[/]", f"indexed [b]{indexed}[/]",
                 f"throughput [b]{indexed / max(elapsed, 1e-9):6.1f}[/] docs/s",
                 "burst: [red]sent[/]" if state.burst_sent else "burst: pending")
    scores = Table("label", "neg", "tickers", "headline", expand=True, title="latest scored headlines")
    colours = {"negative": "red", "neutral": "white", "positive": "green"}
    for doc in latest:
        label = doc["label"]
        scores.add_row(f"[{colours.get(label, 'white')}]{label}[/]", f"{doc['negative_score']:.2f}",
                       ",".join(doc.get("tickers", [])), doc["title"][:110])
    raised = Table("resource", "severity", "value", "text", expand=True, title="open alerts (Alerta)")
    for alert in alerts:
        raised.add_row(alert["resource"], alert["severity"], str(alert.get("value")), alert["text"].splitlines()[0][:110])
    return Group(Panel(head, title="finpulse demo"), scores, raised)


def _with_clicks_api(settings: Settings) -> tuple[Settings, str]:
    """The demo's settings with a free port for the clicks API and its bearer token: the configured one
    (FINPULSE_RECOMMEND__API_TOKEN), else one made for this run and never stored."""
    from finpulse.infra.stack.process import free_port

    configured = settings.recommend.api_token
    token = configured.get_secret_value() if configured is not None else secrets.token_urlsafe(24)
    data = settings.model_dump()
    data["recommend"].update(api_token=token, api_port=free_port(settings.recommend.api_host))
    if settings.recommend.view_token is None:  # the readers ask the worker's view for their feeds
        data["recommend"]["view_token"] = secrets.token_urlsafe(24)
    return Settings.model_validate(data), token


def _show_readers(settings: Settings, console: Console, token: str, seconds: float) -> None:
    from finpulse.demo.readers import feed_table, run_readers, sector_match

    with console.status(f"simulated readers clicking through the clicks API for {seconds:.0f} s"):
        feeds, articles = run_readers(settings, token, seconds, rate=10.0)
    console.print(feed_table(feeds))
    matched, base = sector_match(feeds, articles)
    console.print(f"[b]{matched:.0%}[/] of the recommended articles are in their reader's favourite sectors "
                  f"({base:.0%} of the candidate articles are; {len(feeds)} readers).")


def run_demo(settings: Settings, *, limit: int, rate: float, keep_running: bool, dashboard_port: int = 8050,
             readers_seconds: float = 20.0) -> None:
    console = Console()
    stack, settings = _stack_up(settings, console)
    data_file = settings.model.data_dir / HEADLINES
    if not data_file.is_file():
        raise DemoError(f"demo headlines not found at {data_file} (set FINPULSE_MODEL__DATA_DIR)")
    _ensure_models(settings, console)
    configured_token = settings.recommend.api_token
    settings, token = _with_clicks_api(settings)
    from finpulse.streams.worker import prepare

    prepare(settings)
    processes = _Processes.start(settings, stack.state_dir / "logs", dashboard_port, console)
    observer = _Observer(settings)
    state = DemoState()
    replay = threading.Thread(target=_replay, args=(settings, data_file, limit, rate, state), daemon=True)
    replay.start()
    try:
        _watch(console, processes, observer, state)
        console.print(f"\n[b]Indexed {observer.indexed()} articles; {len(observer.alerts())} open alert(s).[/]")
        if readers_seconds > 0:
            _show_readers(settings, console, token, readers_seconds)
        console.print(f"Elasticsearch: {settings.elasticsearch.url}/{observer.index}/_search")
        console.print(f"Alerta:        {settings.alerta.endpoint}/alerts?status=open (header 'Authorization: Key …' "
                      f"from {stack.env_file})")
        if keep_running:
            console.print(f"Worker, live page and clicks API keep running (pids {processes.worker.pid}, "
                          f"{processes.dashboard.pid}, {processes.clicks_api.pid}).")
            if configured_token is None:
                console.print(f"Clicks API bearer token of this run: {token} (set FINPULSE_RECOMMEND__API_TOKEN "
                              "to choose your own)")
        console.print("Stop the stack with: finpulse stack down")
    finally:
        observer.close()
        if not keep_running:
            processes.stop()


def _stack_up(settings: Settings, console: Console) -> tuple[Stack, Settings]:
    """The embedded stack started (or found running), and the settings it wrote for its servers."""
    from finpulse.infra.stack.manager import Stack

    stack = Stack(settings.stack)
    with console.status("starting the embedded stack"):
        statuses = stack.up()
    for status in statuses:
        console.print(f"[green]✓[/] {status.name:<13} {status.host}:{status.port} ({status.action})")
    return stack, load_settings(stack.env_file)


@dataclass
class _Processes:
    """The demo's own processes: the worker (and its log), the live page and the clicks API."""

    worker: subprocess.Popen[bytes]
    worker_log: Path
    dashboard: subprocess.Popen[bytes]
    clicks_api: subprocess.Popen[bytes]

    @classmethod
    def start(cls, settings: Settings, log_dir: Path, dashboard_port: int, console: Console) -> _Processes:
        from finpulse.demo.readers import api_url

        worker_log = log_dir / "worker.log"
        worker = _start(settings, worker_log, "worker")
        console.print(f"[green]✓[/] worker started (pid {worker.pid}, log {worker_log})")
        dashboard = _start(settings, log_dir / "dashboard.log", "dashboard", "--port", str(dashboard_port))
        console.print(f"[green]✓[/] live page: http://{settings.stack.host}:{dashboard_port}/ (pid {dashboard.pid})")
        clicks_api = _start(settings, log_dir / "clicks-api.log", "clicks-api")
        console.print(f"[green]✓[/] clicks API: {api_url(settings)}/v1/events (pid {clicks_api.pid})")
        return cls(worker, worker_log, dashboard, clicks_api)

    def stop(self) -> None:
        for process in (self.clicks_api, self.dashboard, self.worker):
            if process.poll() is None:
                process.terminate()
                process.wait(60)


def _watch(console: Console, processes: _Processes, observer: _Observer, state: DemoState) -> None:
    """The live screen, until the replay is indexed and an alert is open (or 20 s passed without one); 10 min at most."""
    settled_at: float | None = None
    deadline = time.monotonic() + 600
    with Live(console=console, refresh_per_second=2) as live:
        while time.monotonic() < deadline:
            if processes.worker.poll() is not None:
                raise DemoError(f"the worker exited with {processes.worker.returncode}; see {processes.worker_log}")
            indexed = observer.indexed()
            alerts = observer.alerts()
            live.update(_screen(state, indexed, observer.latest(), alerts))
            if state.error:
                raise DemoError(f"replay failed: {state.error}")
            if state.done and indexed >= state.produced:
                settled_at = settled_at or time.monotonic()
                if alerts or time.monotonic() - settled_at > 20:
                    break
            time.sleep(1.0)
