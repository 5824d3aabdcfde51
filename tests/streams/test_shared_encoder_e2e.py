"""One encoder pass on the real embedded servers: with ``FINPULSE_RECOMMEND__SHARED_ENCODER`` on, the pass that
scores an article also embeds it, and the document in Elasticsearch carries that embedding; a worker whose
recommendation model was trained over another encoder refuses to start."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from finpulse.contracts.events import ClickEvent
from finpulse.contracts.ids import article_id
from finpulse.contracts.records import NewsArticle, ScoredArticle
from finpulse.contracts.topics import CLICKS, NEWS_RAW, NEWS_SCORED, topic_name
from finpulse.settings import Settings

from ..conftest import with_overrides
from .harness import WorkerProcess, consume_all, produce, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _documents(es: Any, settings: Settings, n: int) -> list[dict[str, Any]]:
    index = f"{settings.elasticsearch.index_prefix}-news-*"
    es.indices.refresh(index=index, ignore_unavailable=True, allow_no_indices=True)
    hits = es.search(index=index, size=n + 10, ignore_unavailable=True, allow_no_indices=True)["hits"]["hits"]
    return [h["_source"] for h in hits]


def _served(settings: Settings, user: str) -> list[dict[str, Any]]:
    try:
        token = settings.recommend.view_token.get_secret_value() if settings.recommend.view_token else ""
        response = httpx.get(f"http://127.0.0.1:{settings.stream.web_port}/v1/users/{user}/recommendations", timeout=5,
                             headers={"Authorization": f"Bearer {token}"})
    except httpx.TransportError:
        return []
    return list(response.json().get("items", [])) if response.status_code == 200 else []


def test_the_scoring_pass_embeds_each_article(pipeline_settings: Settings, es_client: Any, tmp_path: Path) -> None:
    settings = with_overrides(pipeline_settings, recommend={"shared_encoder": True, "model_dir": tmp_path / "none"})
    card = json.loads((settings.model.sentiment_path() / "card.json").read_text())
    now = datetime.now(UTC)
    articles = [NewsArticle(id=article_id(f"https://news.example/shared/{i}"), url=f"https://news.example/shared/{i}",
                            source="e2e", title=title, published_at=now, tickers=["GLBX"])
                for i, title in enumerate(["Globex plunges", "Globex schedules call", "Acme misses estimates"] * 4)]
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        produce(settings, topic_name(settings.kafka, NEWS_RAW), [(a.id.encode(), a.to_bytes()) for a in articles])
        wait_for(lambda: len(_documents(es_client, settings, len(articles))) >= len(articles), 120, "documents", worker)
        docs = _documents(es_client, settings, len(articles))
        vectors = np.array([d["embedding"] for d in docs], dtype=np.float64)
        assert vectors.shape == (len(articles), card["embedding_dim"])
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
        by_title: dict[str, list[np.ndarray]] = {}
        for doc, vector in zip(docs, vectors, strict=True):
            by_title.setdefault(doc["title"], []).append(vector)
        for same in by_title.values():  # one text, one embedding, whatever batch it was scored in
            assert max(float(np.abs(v - same[0]).max()) for v in same) < 1e-3
        scored = consume_all(settings, topic_name(settings.kafka, NEWS_SCORED), expect=len(articles), timeout_s=30)
        assert all(ScoredArticle.model_validate_json(r.value).embedding for r in scored)
        # No recommendation model and no encoder of its own: only articles carrying the sentiment pass's embedding
        # can become candidates, so a feed proves the recommender ranks by them.
        clicked = articles[0].id
        click = ClickEvent(user_id="reader-1", article_id=clicked, event_type="click", timestamp=now, position=0,
                           session_id="s1")
        produce(settings, topic_name(settings.kafka, CLICKS), [(b"reader-1", click.to_bytes())])
        served = wait_for(lambda: _served(settings, "reader-1"), 60, "a feed for the reader", worker)
        ids = [item["article_id"] for item in served]
        assert ids and clicked not in ids and set(ids) <= {a.id for a in articles}
        assert worker.alive
    finally:
        worker.stop()


def test_a_recommender_trained_over_another_encoder_is_refused(pipeline_settings: Settings, tmp_path: Path) -> None:
    own = tmp_path / "own-encoder"
    own.mkdir()
    (own / "card.json").write_text(json.dumps({"model_version": "two-tower-own", "dim": 32, "max_length": 24,
                                               "files": {}}), encoding="utf-8")
    settings = with_overrides(pipeline_settings, recommend={"shared_encoder": True, "model_dir": own})
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        wait_for(lambda: not worker.alive, 60, "the worker to refuse to start")
        assert worker.proc is not None and worker.proc.returncode != 0
        log = worker.log()
        assert "SHARED_ENCODER is on" in log and "two-tower-own" in log and "--shared-encoder" in log, log[-2000:]
    finally:
        worker.stop()
