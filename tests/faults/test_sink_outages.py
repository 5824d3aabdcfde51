"""Elasticsearch and Alerta cut for 20 s behind a fault-injecting proxy: nothing lost or duplicated, offsets held
back until the sink acknowledged, the alert delivered exactly once, the worker never down, the retries counted."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from finpulse.contracts.topics import ALERTS, NEWS_SCORED
from finpulse.settings import Settings

from ..streams.harness import WorkerProcess, wait_for
from .proxy import FaultProxy
from .support import alerts, article, committed_total, count, env_int, indexed_ids, isolated, metric, send, window_start

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

OUTAGE_S = env_int("OUTAGE_S", 20)
ARTICLES = env_int("OUTAGE_ARTICLES", 600)
WINDOW_S = 60.0


def _proxy_for(url: str) -> FaultProxy:
    parts = urlsplit(url)
    assert parts.hostname and parts.port, url
    return FaultProxy(parts.hostname, parts.port).start()


def _proxied(url: str, proxy: FaultProxy) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()


@pytest.mark.parametrize("mode", ["blackhole", "refuse"])
def test_elasticsearch_outage_loses_nothing_and_holds_offsets(
    pipeline_settings: Settings, es_client: Any, tmp_path: Path, mode: str
) -> None:
    proxy = _proxy_for(pipeline_settings.elasticsearch.url)
    settings = isolated(
        pipeline_settings, tmp_path,
        elasticsearch={"url": _proxied(pipeline_settings.elasticsearch.url, proxy), "request_timeout_s": 3.0,
                       "retry_backoff_s": 0.2},
    )
    when = window_start(WINDOW_S)
    articles = [article("esout", i, when + timedelta(milliseconds=i), negative=False) for i in range(ARTICLES)]
    half = ARTICLES // 2
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        send(settings, articles[:half])
        wait_for(lambda: count(es_client, settings) >= half, 180, "the first half indexed", worker)
        proxy.set_mode(mode)  # type: ignore[arg-type]
        cut_at = time.monotonic()
        send(settings, articles[half:])  # scored while Elasticsearch is unreachable
        checks = []
        while time.monotonic() - cut_at < OUTAGE_S:
            committed = committed_total(settings, NEWS_SCORED)
            acknowledged = count(es_client, settings)  # read after the offsets: it can only have grown since
            checks.append((committed, acknowledged))
            assert committed <= acknowledged, f"news.scored committed {committed} > {acknowledged} documents in ES"
            assert worker.alive, worker.log()[-3000:]
            time.sleep(2)
        during = count(es_client, settings)
        proxy.set_mode("pass")
        wait_for(lambda: count(es_client, settings) >= ARTICLES, 180, "every document after the outage", worker)
        time.sleep(3)
        assert count(es_client, settings) == ARTICLES
        assert sorted(indexed_ids(es_client, settings)) == sorted(a.id for a in articles)
        assert during <= half + 0, f"{during} documents were written through a cut proxy"
        retries = metric(settings, "finpulse_sink_retries_total", {"sink": "elasticsearch"})
        assert retries > 0, "the metrics endpoint shows no Elasticsearch retries"
        wait_for(lambda: committed_total(settings, NEWS_SCORED) >= ARTICLES, 60, "offsets to catch up", worker)
        assert worker.alive
        print(f"\nES {mode} {OUTAGE_S}s: offsets/acks during the cut {checks[:3]}...{checks[-1:]}, "
              f"{retries:.0f} retries")
    finally:
        worker.stop()
        proxy.stop()


def test_alerta_outage_delivers_the_alert_exactly_once(
    pipeline_settings: Settings, es_client: Any, tmp_path: Path
) -> None:
    proxy = _proxy_for(pipeline_settings.alerta.endpoint)
    settings = isolated(pipeline_settings, tmp_path, alerta={"endpoint": _proxied(pipeline_settings.alerta.endpoint, proxy),
                                                         "timeout_s": 3.0})
    x = f"X{settings.kafka.consumer_group[-5:].upper()}"
    when = window_start(WINDOW_S)
    calm = [article("calm", i, when + timedelta(seconds=i % 50), negative=False) for i in range(50)]
    burst = [article(x.lower(), i, when + timedelta(seconds=1 + i), True, [x]) for i in range(12)]
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        send(settings, calm)
        wait_for(lambda: count(es_client, settings) >= len(calm), 180, "calm documents", worker)
        proxy.set_mode("refuse")
        cut_at = time.monotonic()
        send(settings, burst)
        wait_for(lambda: metric(settings, "finpulse_alerts_total", {"status": "raise"}) >= 1, 60, "the spike to raise", worker)
        while time.monotonic() - cut_at < OUTAGE_S:
            assert committed_total(settings, ALERTS) == 0, "the alert's offset was committed while Alerta was down"
            assert alerts(pipeline_settings, x) == [], "an alert got through a cut proxy"
            assert worker.alive, worker.log()[-3000:]
            time.sleep(2)
        retries = metric(settings, "finpulse_sink_retries_total", {"sink": "alerta"})
        proxy.set_mode("pass")
        delivered = wait_for(lambda: alerts(pipeline_settings, x), 90, f"the alert of {x} after Alerta returned", worker)
        wait_for(lambda: committed_total(settings, ALERTS) >= 1, 60, "the alert's offset to be committed", worker)
        time.sleep(5)
        delivered = alerts(pipeline_settings, x)  # Alerta itself, not through the proxy
        assert len(delivered) == 1, delivered
        assert delivered[0]["duplicateCount"] == 0, "sent to Alerta more than once"
        assert metric(settings, "finpulse_alert_deliveries_total", {"sink": "alerta"}) == 1
        assert retries > 0, "the metrics endpoint shows no Alerta retries"
        assert count(es_client, settings) == len(calm) + len(burst)
        assert worker.alive
        print(f"\nAlerta refused {OUTAGE_S}s: {retries:.0f} retries, delivered once after")
    finally:
        worker.stop()
        proxy.stop()
