"""End to end on the real embedded servers: scored articles + clicks → worker → feed on the topic, over HTTP
and in Elasticsearch (pseudonymised); a restarted worker keeps the profiles."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from kafka import KafkaConsumer

from finpulse.contracts.events import ClickEvent, RecommendationList
from finpulse.contracts.ids import article_id
from finpulse.contracts.records import ScoredArticle
from finpulse.contracts.topics import CLICKS, NEWS_SCORED, RECOMMENDATIONS, topic_name
from finpulse.pseudonym import pseudonymise
from finpulse.settings import Settings
from tests.streams.harness import WorkerProcess, free_port, produce, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DIM = 384
SECTORS = {"banks": ["JPM", "BAC"], "energy": ["XOM", "CVX"], "tech": ["NVDA", "AMD"]}
USER = "alice-raw-id-7"
VIEW_TOKEN = "feed-e2e-view-token"


def settings_for(stack: Any, name: str, sentiment_dir: Path, tmp_path: Path) -> Settings:
    data = stack.settings.model_dump()
    data["kafka"].update(topic_prefix=f"{name}.", consumer_group=name)
    data["elasticsearch"].update(index_prefix=name)
    data["model"].update(sentiment_dir=sentiment_dir, sentiment_variant="fp32", intra_op_threads=1)
    data["stream"].update(web_port=free_port(), metrics_port=free_port(), batch_wait_s=0.05, index_wait_s=0.1)
    # Two passes: these articles arrive embedded (384-d, clustered by sector), or the recommender's own encoder embeds them.
    data["recommend"].update(debounce_s=0.2, top_k=5, model_dir=tmp_path / "no-recommend-model", mmr_lambda=0.9,
                             shared_encoder=False, view_token=VIEW_TOKEN)
    return Settings.model_validate(data)


def sector_articles(now: datetime, per_sector: int = 10) -> dict[str, list[ScoredArticle]]:
    """Articles whose embeddings cluster by sector (as a shared encoder pass would give them)."""
    rng = np.random.default_rng(0)
    centres = {name: rng.normal(size=DIM) for name in SECTORS}
    out: dict[str, list[ScoredArticle]] = {}
    for name, tickers in SECTORS.items():
        out[name] = []
        for i in range(per_sector):
            url = f"https://news.example/{name}/{i}"
            vector = centres[name] + 0.5 * rng.normal(size=DIM)
            vector = (vector / np.linalg.norm(vector)).round(5).tolist()
            out[name].append(ScoredArticle(
                id=article_id(url), url=url, source="e2e", title=f"{tickers[i % 2]} {name} story {i}",
                published_at=now - timedelta(minutes=i), tickers=[tickers[i % 2]], label="neutral",
                probabilities={"negative": 0.1, "neutral": 0.8, "positive": 0.1}, negative_score=0.1,
                model_version="e2e", embedding=vector,
            ))
    return out


def metric(settings: Settings, name: str, agent: str) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{settings.stream.metrics_port}/metrics", timeout=5).text
    except httpx.TransportError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(f'{name}{{agent="{agent}"}}'):
            return float(line.split()[-1])
    return 0.0


def feeds(settings: Settings, user: str) -> list[RecommendationList]:
    consumer = KafkaConsumer(topic_name(settings.kafka, RECOMMENDATIONS), bootstrap_servers=settings.kafka.broker_list(),
                             auto_offset_reset="earliest", enable_auto_commit=False, group_id=None)
    out = []
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                out += [RecommendationList.model_validate_json(r.value) for r in batch if r.key == user.encode()]
    finally:
        consumer.close()
    return out


def view(settings: Settings, user: str) -> dict[str, Any] | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{settings.stream.web_port}/v1/users/{user}/recommendations", timeout=5,
                             headers={"Authorization": f"Bearer {VIEW_TOKEN}"})
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def test_feed_favours_the_users_sector_excludes_clicks_is_pseudonymised_and_survives_restart(
    stack: Any, unique_name: str, tiny_onnx_dir: Path, tmp_path: Path, es_client: Any
) -> None:
    settings = settings_for(stack, unique_name, tiny_onnx_dir, tmp_path)
    now = datetime.now(UTC)
    articles = sector_articles(now)
    banks = {a.id for a in articles["banks"]}
    everything = [a for group in articles.values() for a in group]
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        produce(settings, topic_name(settings.kafka, NEWS_SCORED), [(a.id.encode(), a.to_bytes()) for a in everything])
        wait_for(lambda: metric(settings, "finpulse_events_out_total", "recommend.candidates") >= len(everything), 120,
                 "candidates in the pool", worker)
        clicked = [a.id for a in articles["banks"][:4]]
        clicks = [
            ClickEvent(user_id=USER, article_id=aid, event_type=kind, timestamp=now, position=p, session_id="s1")
            for p, aid in enumerate(clicked) for kind in ("impression", "click")
        ]
        produce(settings, topic_name(settings.kafka, CLICKS), [(USER.encode(), c.to_bytes()) for c in clicks])

        def settled() -> list[RecommendationList]:
            lists = [f for f in feeds(settings, USER) if f.clicks_seen == len(clicked)]
            return lists

        lists = wait_for(settled, 60, "a feed after every click", worker)
        feed = lists[-1]
        ids = [item.article_id for item in feed.items]
        assert len(ids) == 5
        assert not set(ids) & set(clicked), "clicked articles are excluded"
        assert sum(aid in banks for aid in ids) >= 4, f"feed should favour banks: {[i.title for i in feed.items]}"
        assert feed.trigger_received_at is None or feed.trigger_received_at <= feed.generated_at

        served = wait_for(lambda: view(settings, USER), 30, "the HTTP view", worker)
        served_ids = [item["article_id"] for item in served["items"]]
        assert not set(served_ids) & set(clicked)
        assert sum(aid in banks for aid in served_ids) >= 4
        assert served["clicks_seen"] == len(clicked)

        pseudonym = pseudonymise(USER, settings.pseudonym_key)
        index = f"{settings.elasticsearch.index_prefix}-recommendations"

        def indexed() -> list[dict[str, Any]]:
            es_client.indices.refresh(index=f"{index}-*", ignore_unavailable=True, allow_no_indices=True)
            if not es_client.indices.exists(index=index):
                return []
            return [h["_source"] for h in es_client.search(index=index, size=100)["hits"]["hits"]]

        docs = wait_for(indexed, 60, "recommendations in Elasticsearch", worker)
        assert {d["user_id"] for d in docs} == {pseudonym}
        assert all(USER not in json.dumps(d) for d in docs)
        assert {d["rank"] for d in docs} >= {1, 2, 3, 4, 5}

        assert worker.stop() == 0
        worker = WorkerProcess(settings, tmp_path / "worker2.log").start()
        again = wait_for(lambda: (v := view(settings, USER)) and v["candidates"] == len(everything) and v,
                         120, "the view after a restart, candidates recovered", worker)
        assert again["clicks_seen"] == len(clicked), "the profile survived the restart"
        assert {i["article_id"] for i in again["items"]} & set(clicked) == set()
        assert sum(i["article_id"] in banks for i in again["items"]) >= 4
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def tiny_recommend_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random two-tower model, trained a few steps and exported (news encoder ONNX + numpy user tower)."""
    from finpulse.export.recommend import export_recommend
    from finpulse.export.testing import build_tiny_bert
    from finpulse.models.simulate import ClickSimulator, SimArticle, SimConfig, default_start, write_mind_logs
    from finpulse.models.train_recommend import RecTrainConfig, train_recommend

    root = tmp_path_factory.mktemp("tiny-recommend")
    start = default_start()
    articles = [SimArticle(f"{i:032x}", f"bank loan story {i}" if i % 2 else f"oil price story {i}", (),
                           "financials" if i % 2 else "energy", "markets", 0, start - 86_400 + i * 1800.0) for i in range(120)]
    write_mind_logs(ClickSimulator(articles, SimConfig(users=30, days=3), seed=1), root / "mind", start)
    config = RecTrainConfig(base=str(build_tiny_bert(root / "bert")), epochs=1.0, time_budget_s=60, attention_dim=8,
                            history=10, batch_size=16, threads=1)
    train_recommend(config, root / "mind", root / "train")
    return export_recommend(root / "train", root / "onnx", ["bank loan", "oil price"])


def test_articles_without_embeddings_are_embedded_by_the_worker_and_the_vector_is_stored(
    stack: Any, unique_name: str, tiny_onnx_dir: Path, tiny_recommend_dir: Path, tmp_path: Path, es_client: Any
) -> None:
    settings = settings_for(stack, unique_name, tiny_onnx_dir, tmp_path)
    settings = settings.model_copy(update={"recommend": settings.recommend.model_copy(update={"model_dir": tiny_recommend_dir})})
    now = datetime.now(UTC)
    articles = [a.model_copy(update={"embedding": None}) for group in sector_articles(now, 4).values() for a in group]
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        produce(settings, topic_name(settings.kafka, NEWS_SCORED), [(a.id.encode(), a.to_bytes()) for a in articles])
        wait_for(lambda: metric(settings, "finpulse_events_out_total", "recommend.candidates") >= len(articles), 120,
                 "candidates embedded by the worker", worker)
        index = f"{settings.elasticsearch.index_prefix}-news"

        def with_vectors() -> bool:
            es_client.indices.refresh(index=f"{index}-*", ignore_unavailable=True, allow_no_indices=True)
            if not es_client.indices.exists(index=index):
                return 0
            hits = es_client.search(index=index, size=100)["hits"]["hits"]
            return sum(1 for h in hits if len(h["_source"].get("embedding") or []) == 32) == len(articles)

        wait_for(with_vectors, 60, "every news document with its embedding", worker)
        click = ClickEvent(user_id=USER, article_id=articles[0].id, event_type="click", timestamp=now, position=0, session_id="s")
        produce(settings, topic_name(settings.kafka, CLICKS), [(USER.encode(), click.to_bytes())])
        served = wait_for(lambda: (v := view(settings, USER)) and v["items"] and v, 60, "a feed from the encoder's vectors", worker)
        assert served["model_version"].startswith("two-tower")
        assert articles[0].id not in {i["article_id"] for i in served["items"]}
    finally:
        worker.stop()
