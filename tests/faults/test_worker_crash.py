"""kill -9 of the worker while 10,000 articles flow: nothing lost, nothing duplicated, spike state and alert intact."""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from finpulse.settings import Settings

from ..streams.harness import WorkerProcess, wait_for
from .support import alerts, article, count, env_int, indexed_ids, isolated, json_if, send, window_start

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

logger = logging.getLogger(__name__)

ARTICLES = env_int("CRASH_ARTICLES", 10_000)
SEED = env_int("SEED", 20261128)
WINDOW_S = 60.0
MARKET_WINDOWS = 10  # filler spread over this many spike windows (about ARTICLES / 10 per window)
BURST = 12  # negatives about X inside one window: the one alert
CALM = 40  # neutral articles about Z in the last window: its spike state must count each once


def _stream(settings: Settings, suffix: str) -> tuple[list[Any], str, str]:
    """ARTICLES articles in publish order: market filler (10% negative, no tickers), X's burst, Z's calm."""
    x, z = f"X{suffix}", f"Z{suffix}"
    t0 = window_start(WINDOW_S)
    filler_n = ARTICLES - BURST - CALM
    per_window = max(1, filler_n // MARKET_WINDOWS)
    out = []
    for i in range(filler_n):
        w = min(MARKET_WINDOWS - 1, i // per_window)
        when = t0 + timedelta(seconds=w * WINDOW_S + (i % per_window) * (WINDOW_S - 2) / per_window + 1)
        out.append(article("fill", i, when, negative=i % 10 == 0))
    last = t0 + timedelta(seconds=(MARKET_WINDOWS - 1) * WINDOW_S + 1)
    burst = [article(x.lower(), i, last + timedelta(seconds=i), True, [x]) for i in range(BURST)]
    calm = [article(z.lower(), i, last + timedelta(seconds=i), False, [z]) for i in range(CALM)]
    # X's burst and Z's calm go out in the last tenth of the stream, interleaved with the filler.
    at = int(len(out) * 0.9)
    tail = out[at:]
    extra = burst + calm
    step = max(1, len(tail) // len(extra))
    mixed: list[Any] = []
    for j, a in enumerate(tail):
        mixed.append(a)
        if j % step == 0 and extra:
            mixed.append(extra.pop(0))
    return out[:at] + mixed + extra, x, z


def test_kill_9_mid_stream_loses_and_duplicates_nothing(
    pipeline_settings: Settings, es_client: Any, tmp_path: Path
) -> None:
    settings = isolated(pipeline_settings, tmp_path, spike={"window_s": WINDOW_S})
    suffix = settings.kafka.consumer_group[-5:].upper()
    articles, x, z = _stream(settings, suffix)
    assert len(articles) == ARTICLES and len({a.id for a in articles}) == ARTICLES
    rng = random.Random(SEED)
    kill_at = rng.randint(ARTICLES // 10, ARTICLES * 7 // 10)
    logger.info("seed %d: kill -9 once %d of %d documents are indexed", SEED, kill_at, ARTICLES)

    worker = WorkerProcess(settings, tmp_path / "worker-1.log").start()
    producer = threading.Thread(target=lambda: [send(settings, articles[i : i + 500]) for i in range(0, ARTICLES, 500)],
                                name="crash-producer")
    started = time.monotonic()
    producer.start()
    try:
        wait_for(lambda: count(es_client, settings) >= kill_at, 600, f"{kill_at} documents before the crash", worker)
        before = count(es_client, settings)
        worker.kill()
        logger.info("killed the worker with %d documents indexed, %.0f s in", before, time.monotonic() - started)
        producer.join(300)
        assert not producer.is_alive()
        worker = WorkerProcess(settings, tmp_path / "worker-2.log").start()
        wait_for(lambda: count(es_client, settings) >= ARTICLES, 900, f"all {ARTICLES} documents", worker)
        time.sleep(3)  # anything re-delivered late would show now
        final = count(es_client, settings)
        ids = indexed_ids(es_client, settings)
        assert final == ARTICLES, f"{final} documents for {ARTICLES} articles"
        assert sorted(ids) == sorted(a.id for a in articles), "exactly the published articles, each once"
        spikes = f"http://127.0.0.1:{settings.stream.web_port}/spikes"
        z_state = wait_for(lambda: json_if(f"{spikes}/{z}/", lambda s: s["n"] >= CALM), 120, f"{z}'s spike state", worker)
        # X raised once; once X is quiet for a window a spike tick resolves it by the quiet timeout (its burst lies two
        # hours back in event time, past spike.quiet_resolve_s): the same Alerta alert, closed.
        x_state = wait_for(lambda: json_if(f"{spikes}/{x}/", lambda s: s["n"] >= BURST or s["windows_closed"] >= 1), 120,
                           f"{x}'s spike state", worker)
        raised = wait_for(lambda: alerts(settings, x), 120, f"the Alerta alert of {x}", worker)
        assert count(es_client, settings) == ARTICLES
        assert z_state["n"] == CALM and z_state["counted_ids"] == CALM, z_state
        if x_state["windows_closed"] == 0:  # still the burst's window: each article counted once
            assert x_state["n"] == BURST and x_state["k"] == BURST and x_state["counted_ids"] == BURST, x_state
        else:  # resolved by a tick (quiet timeout): the burst's window closed, nothing counted after it
            assert x_state["n"] == 0 and not x_state["raised"], x_state
        raised = alerts(settings, x)
        assert len(raised) == 1, raised
        logger.info("alert of %s: status %s, duplicateCount %s; killed at %d; total %.0f s", x, raised[0]["status"],
                    raised[0].get("duplicateCount"), before, time.monotonic() - started)
        print(f"\nkill -9 at {before}/{ARTICLES} documents (seed {SEED}); alert duplicateCount "
              f"{raised[0].get('duplicateCount')}; {time.monotonic() - started:.0f} s")
        assert worker.alive
    finally:
        worker.stop()
        producer.join(60)
