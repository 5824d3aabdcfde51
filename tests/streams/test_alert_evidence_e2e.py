"""On the real embedded servers: a closed spike alert keeps the evidence of its raise, and a window with fewer than
``min_count`` articles neither raises nor resolves (only a window with enough articles, or the quiet timeout).

An alerts-only worker reads observations produced here straight to ``sentiment.observations`` (no model needed) and
delivers to Alerta; the windows are 10 s of wall-clock time so that "the next, empty window" really passes.
"""

from __future__ import annotations

import hashlib
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from finpulse.contracts.records import SentimentObservation, SpikeAlert
from finpulse.contracts.topics import ALERTS, SENTIMENT_OBSERVATIONS, topic_name
from finpulse.settings import Settings

from ..conftest import StackHandle, with_overrides
from .harness import WorkerProcess, alerts, consume_all, free_port, json_if, produce, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WINDOW_S = 10.0
MIN_COUNT = 10
QUIET_S = 40.0
BURST = 22


@pytest.fixture
def alerts_settings(stack: StackHandle, unique_name: str, tmp_path: Path) -> Settings:
    return with_overrides(
        stack.settings,
        kafka={"topic_prefix": f"{unique_name}.", "consumer_group": unique_name},
        elasticsearch={"index_prefix": unique_name},
        stream={"web_port": free_port(), "metrics_port": free_port(), "batch_wait_s": 0.05, "index_wait_s": 0.1,
                "roles": ["alerts"], "data_dir": tmp_path / "faust"},
        spike={"window_s": WINDOW_S, "min_count": MIN_COUNT, "cooldown_s": 0.0, "alpha": 0.001, "prior_share": 0.1,
               "quiet_resolve_s": QUIET_S},
        alerts={"sinks": ["alerta", "log"]},
    )


def _obs(key: str, i: int, ts: float, negative: bool) -> SentimentObservation:
    return SentimentObservation(
        key=key, article_id=hashlib.sha256(f"{key}/{i}".encode()).hexdigest()[:32], event_time=datetime.fromtimestamp(ts, UTC),
        negative=negative, negative_score=0.9 + (i % 10) / 100 if negative else 0.05,
        title=f"{key} plunges {i}" if negative else f"{key} schedules call {i}", url=f"https://news.example/{key}/{i}",
    )


def _send(settings: Settings, items: list[SentimentObservation]) -> None:
    produce(settings, topic_name(settings.kafka, SENTIMENT_OBSERVATIONS), [(o.key.encode(), o.to_bytes()) for o in items])


def _alert_records(settings: Settings, key: str, expect: int) -> list[SpikeAlert]:
    records = consume_all(settings, topic_name(settings.kafka, ALERTS), expect=10**9, timeout_s=8)
    out = [SpikeAlert.model_validate_json(r.value) for r in records if r.key == key.encode()]
    assert len(out) >= expect, out
    return out


def _open(settings: Settings, key: str) -> list[dict[str, Any]]:
    return [a for a in alerts(settings, key) if a["status"] == "open"]


def _closed(settings: Settings, key: str) -> list[dict[str, Any]]:
    return [a for a in alerts(settings, key) if a["status"] == "closed"]


def test_resolve_keeps_the_raise_evidence_and_thin_windows_neither_raise_nor_resolve(
    alerts_settings: Settings, tmp_path: Path
) -> None:
    settings = alerts_settings
    suffix = settings.kafka.consumer_group[-5:].upper()
    quiet, calm, warm = f"Q{suffix}", f"C{suffix}", f"W{suffix}"
    spikes = f"http://127.0.0.1:{settings.stream.web_port}/spikes"
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        _send(settings, [_obs(warm, 0, time.time(), False)])
        wait_for(lambda: json_if(f"{spikes}/{warm}/", lambda s: s["n"] == 1), 180, "the worker to count", worker)
        now = time.time()
        if now % WINDOW_S > WINDOW_S - 3:  # keep the burst inside one window
            time.sleep(WINDOW_S - now % WINDOW_S + 0.2)
            now = time.time()
        w0 = math.floor(now / WINDOW_S) * WINDOW_S
        # calm: a burst three windows ago, then a thin calm window (4 < MIN_COUNT articles), then a full calm one.
        history = [_obs(calm, i, w0 - 3 * WINDOW_S + 1 + i * 0.1, True) for i in range(BURST)]
        history += [_obs(calm, 100 + i, w0 - 2 * WINDOW_S + 1 + i, False) for i in range(4)]
        history += [_obs(calm, 200 + i, w0 - WINDOW_S + 1 + i * 0.5, False) for i in range(12)]
        # quiet: a burst now, then nothing at all.
        _send(settings, [_obs(quiet, i, now, True) for i in range(BURST)] + history)

        raised = wait_for(lambda: _open(settings, quiet), 60, f"the open alert of {quiet}", worker)
        assert len(raised) == 1 and raised[0]["severity"] == "critical", raised
        evidence = raised[0]["attributes"]
        assert evidence["n"] >= MIN_COUNT and evidence["k"] == evidence["n"] and evidence["headlines"], evidence
        raise_text = raised[0]["text"]

        # calm: resolved by its full calm window, not by the thin one; the closed alert keeps the raise's evidence.
        closed = wait_for(lambda: _closed(settings, calm), 60, f"the alert of {calm} to close", worker)
        records = _alert_records(settings, calm, expect=2)
        assert [r.status for r in records] == ["raise", "resolve"], records
        raise_record, resolve_record = records
        assert resolve_record.window_start.timestamp() == w0 - WINDOW_S, "a thin window must not resolve"
        assert resolve_record.n >= MIN_COUNT and resolve_record.resolved_by == "share"
        assert resolve_record.raised is not None and resolve_record.raised.n == raise_record.n
        attributes = closed[0]["attributes"]
        assert (attributes["n"], attributes["k"]) == (raise_record.n, raise_record.k), attributes
        assert [h["id"] for h in attributes["headlines"]] == [h.id for h in raise_record.headlines] != []
        assert attributes["resolveN"] == resolve_record.n and attributes["resolvedBy"] == "share", attributes
        assert f"{raise_record.k} of {raise_record.n} articles about {calm}" in closed[0]["text"]

        # quiet: the empty windows after the burst do not close it ...
        wait_for(lambda: time.time() >= w0 + 3 * WINDOW_S + 3, 60, "two empty windows to pass")
        assert _open(settings, quiet), f"an empty window closed the alert of {quiet}: {alerts(settings, quiet)}"
        # ... the quiet timeout does, and says so; the raise's evidence stays.
        closed = wait_for(lambda: _closed(settings, quiet), QUIET_S + 60, f"the quiet timeout of {quiet}", worker)
        attributes = closed[0]["attributes"]
        assert (attributes["n"], attributes["k"]) == (evidence["n"], evidence["k"]), attributes
        assert attributes["headlines"] == evidence["headlines"]
        assert attributes["resolvedBy"] == "quiet" and attributes["quietTimeoutS"] == QUIET_S, attributes
        assert raise_text.splitlines()[0] in closed[0]["text"] and "40 s" in closed[0]["text"], closed[0]["text"]
        assert len(alerts(settings, quiet)) == 1, "the raise and the resolve are one Alerta alert"
        assert worker.alive
    finally:
        worker.stop()
