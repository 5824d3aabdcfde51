"""The live page in a real headless Chromium, against the real embedded servers.

``test_live_page_with_a_real_worker``: a real ``finpulse worker`` scores articles published to Kafka,
including a negative burst for one ticker and a headline carrying script/HTML; the page shows charts
with data points, the alert the burst raised (with its evidence) and the hostile headline as plain
text, and nothing in it runs. ``test_live_page_with_seeded_data``: the same page over documents and an
alert written straight into the real Elasticsearch (osmem) and Alerta with finpulse's own sinks, plus
the recommendations panel before and after a ``<prefix>-recommendations`` index exists.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from finpulse.contracts.ids import article_id
from finpulse.contracts.records import Headline, NewsArticle, ScoredArticle, SpikeAlert
from finpulse.dashboard.app import CSP, DashboardHandle, serve_dashboard
from finpulse.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# Wording the tiny trained model of tests/conftest.py labels on purpose: its training names and keywords
# (a ticker-like token or a "#n" suffix in the title throws it off; the articles' tickers field tags them).
HOSTILE = '<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> Acme slumps and misses estimates {t}'
NEGATIVES = ("Acme plunges", "Globex misses estimates", "Initech cuts outlook", "Hooli slumps", "Vandelay downgraded",
             "Umbrella Corp loss widens")
NEUTRALS = ("Acme schedules call", "Globex to present at conference", "Initech announces date", "Hooli holds annual meeting")
NEGATIVE, NEUTRAL = NEGATIVES[0], NEUTRALS[0]
WINDOW_S = 60.0


def _with(settings: Settings, **groups: dict[str, Any]) -> Settings:
    data = settings.model_dump()
    for group, values in groups.items():
        data[group].update(values)
    return Settings.model_validate(data)


@pytest.fixture
def dashboard_for() -> Iterator[Any]:
    handles: list[DashboardHandle] = []

    def start(settings: Settings) -> DashboardHandle:
        handle = serve_dashboard(settings, port=0)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


class PageWatch:
    """A page with its console errors, CSP violations and uncaught exceptions recorded."""

    def __init__(self, browser: Any, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1500})
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.response = self.page.goto(url, wait_until="load")

    def wait(self, script: str, what: str, timeout_s: float = 60.0) -> Any:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            # A function, not an expression string: Playwright evals strings in the page, which the CSP forbids.
            return self.page.wait_for_function(f"() => ({script})", timeout=timeout_s * 1000, polling=250).json_value()
        except PlaywrightTimeout:
            status = self.page.locator("#status").text_content()
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (page status: {status}; {self.problems})") from None

    def close(self) -> None:
        self.context.close()


def assert_hostile_text_is_inert(watch: PageWatch, title: str) -> None:
    page = watch.page
    cells = page.locator("#headlines td.title").all_text_contents()
    assert title in cells, f"the hostile headline is not shown as text: {cells[:5]}"
    assert page.evaluate("typeof window.__pwned") == "undefined", "markup from a headline ran"
    assert page.locator("#headlines script, #headlines img, #alerts script, #alerts img").count() == 0
    assert page.locator("img").count() == 0


def assert_page_is_locked_down(watch: PageWatch) -> None:
    assert watch.response is not None
    headers = watch.response.headers
    assert headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP.split("script-src")[1].split(";")[0]
    assert headers["x-content-type-options"] == "nosniff"
    origin = watch.page.evaluate("location.origin")
    sources = watch.page.evaluate(
        "() => [...document.querySelectorAll('script, link[rel=stylesheet]')].map(e => e.src || e.href || 'inline')"
    )
    assert sources and all(src.startswith(origin + "/") for src in sources), f"script or style not from the page's server: {sources}"
    assert f"{origin}/vendor/plotly.min.js" in sources  # served from the plotly Python package, no CDN
    violations = [p for p in watch.problems if "Content Security Policy" in p or "Refused" in p]
    assert violations == [], violations


def chart_points(watch: PageWatch, chart: str) -> int:
    script = "(id) => (document.getElementById(id).data || []).reduce((n, t) => n + (t.x || []).length, 0)"
    return int(watch.page.evaluate(script, chart))


def screenshot(watch: PageWatch, output_dir: Path, name: str) -> Path:
    path = output_dir / name
    watch.page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


# --------------------------------------------------------------------------------------------------------------------
# With a real worker


def _article(ticker: str, i: int, when: datetime, negative: bool) -> NewsArticle:
    title = NEGATIVES[i % len(NEGATIVES)] if negative else NEUTRALS[i % len(NEUTRALS)]
    url = f"https://news.example/{ticker.lower()}/{i}"
    return NewsArticle(id=article_id(url), url=url, source="browser-e2e", title=title, published_at=when, tickers=[ticker])


def _window(ticker: str, start: int, window: datetime, n: int, negatives: int) -> list[NewsArticle]:
    return [_article(ticker, start + j, window + timedelta(seconds=1 + j), j < negatives) for j in range(n)]


def _alerta_open(settings: Settings, resource: str) -> list[dict[str, Any]]:
    key = settings.alerta.api_key.get_secret_value() if settings.alerta.api_key else ""
    response = httpx.get(f"{settings.alerta.endpoint}/alerts", headers={"Authorization": f"Key {key}"}, timeout=10,
                         params={"resource": resource, "event": "NegativeSentimentSpike", "status": "open"})
    response.raise_for_status()
    return list(response.json()["alerts"])


def _indexed(es: Any, settings: Settings) -> int:
    index = f"{settings.elasticsearch.index_prefix}-news-*"
    es.indices.refresh(index=index, ignore_unavailable=True, allow_no_indices=True)
    return int(es.count(index=index, ignore_unavailable=True, allow_no_indices=True)["count"])


def _diagnose(es: Any, settings: Settings, ticker: str) -> str:
    """Labels the model gave the ticker's articles, and the worker's spike state of the ticker."""
    index = f"{settings.elasticsearch.index_prefix}-news-*"
    aggs = es.search(index=index, size=0, query={"term": {"tickers": ticker}},
                     aggs={"labels": {"terms": {"field": "label"}}})["aggregations"]["labels"]["buckets"]
    try:
        spikes = httpx.get(f"http://127.0.0.1:{settings.stream.web_port}/spikes/{ticker}/", timeout=5).text[:1500]
    except httpx.HTTPError as exc:
        spikes = repr(exc)
    return f"labels of {ticker}: {aggs}; spike state: {spikes}"


def _caught_up(es: Any, settings: Settings, n: int) -> bool:
    return _indexed(es, settings) >= n


def test_live_page_with_a_real_worker(
    pipeline_settings: Settings, es_client: Any, browser: Any, dashboard_for: Any, output_dir: Path, tmp_path: Path,
) -> None:
    from finpulse.contracts.topics import NEWS_RAW, topic_name
    from tests.streams.harness import WorkerProcess, produce, wait_for

    settings = pipeline_settings
    suffix = settings.kafka.consumer_group[-5:].upper()
    burst_ticker, calm_ticker = f"B{suffix}", f"C{suffix}"
    now = datetime.now(UTC)
    t0 = datetime.fromtimestamp(math.floor(now.timestamp() / WINDOW_S) * WINDOW_S, UTC) - timedelta(minutes=30)
    topic = topic_name(settings.kafka, NEWS_RAW)

    def send(articles: list[NewsArticle]) -> None:
        produce(settings, topic, [(a.id.encode(), a.to_bytes()) for a in articles])

    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        sent = 0
        for w in range(6):  # history: 10% negative for both tickers
            window = t0 + timedelta(seconds=w * WINDOW_S)
            batch = _window(burst_ticker, w * 100, window, 10, 1) + _window(calm_ticker, w * 100, window, 10, 1)
            send(batch)
            sent += len(batch)
            wait_for(partial(_caught_up, es_client, settings, sent), 120, f"{sent} documents", worker)
        burst_window = t0 + timedelta(seconds=6 * WINDOW_S)
        hostile_title = HOSTILE.format(t=burst_ticker)
        hostile_url = "https://news.example/hostile"
        hostile = NewsArticle(id=article_id(hostile_url), url=hostile_url, source="browser-e2e", title=hostile_title,
                              published_at=burst_window + timedelta(seconds=30), tickers=[burst_ticker])
        send(_window(burst_ticker, 1000, burst_window, 12, 12) + _window(calm_ticker, 1000, burst_window, 10, 1))
        sent += 22
        try:
            wait_for(lambda: _alerta_open(settings, burst_ticker), 120, f"an open alert for {burst_ticker}", worker)
        except AssertionError as exc:
            raise AssertionError(f"{_diagnose(es_client, settings, burst_ticker)}\n{exc}") from None
        wait_for(partial(_caught_up, es_client, settings, sent), 120, f"{sent} documents", worker)
        # Sent last and alone, so it is the most recently scored headline and certainly among the page's latest 20
        # (a batch of 23 spread over the topic's partitions is scored in no fixed order).
        send([hostile])
        sent += 1
        wait_for(partial(_caught_up, es_client, settings, sent), 120, f"{sent} documents", worker)

        handle = dashboard_for(settings)
        watch = PageWatch(browser, handle.url)
        try:
            watch.page.fill("#tickers", f"{burst_ticker},{calm_ticker}")
            watch.page.dispatch_event("#tickers", "change")
            watch.wait(f"document.querySelector('#alerts li[data-resource=\"{burst_ticker}\"]')", "the burst's alert")
            watch.wait("Number(document.getElementById('chart-share').dataset.points) > 0", "chart points")
            cells = "[...document.querySelectorAll('#headlines td.title')]"
            watch.wait(f"{cells}.some(td => td.textContent.includes('slumps and misses estimates {burst_ticker}'))", "the hostile headline")
            alert_text = watch.page.locator(f'#alerts li[data-resource="{burst_ticker}"]').text_content() or ""
            assert "k=" in alert_text and "n=" in alert_text and "baseline" in alert_text and "p=" in alert_text, alert_text
            assert any(title in alert_text for title in NEGATIVES), "the alert shows its evidence headlines"
            names = watch.page.evaluate("document.getElementById('chart-share').data.map(t => t.name)")
            assert {"market", burst_ticker, calm_ticker} <= set(names)
            assert chart_points(watch, "chart-share") > 0 and chart_points(watch, "chart-volume") > 0
            assert_hostile_text_is_inert(watch, hostile_title)
            assert_page_is_locked_down(watch)
            shot = screenshot(watch, output_dir, "dashboard-live-worker.png")
            assert shot.is_file()
        finally:
            watch.close()
        assert worker.alive
    finally:
        worker.stop()


# --------------------------------------------------------------------------------------------------------------------
# Over data written straight into the real servers (no worker): the page itself and the recommendations panel


def _scored(ticker: str, i: int, when: datetime, negative: bool, title: str | None = None) -> dict[str, Any]:
    title = title or f"{NEGATIVE if negative else NEUTRAL} #{i} ({ticker})"
    url = f"https://news.example/seeded/{ticker.lower()}/{i}"
    neg = 0.93 if negative else 0.04
    article = ScoredArticle(
        id=article_id(url), url=url, source="seeded" if i % 2 else "wire", title=title, published_at=when, tickers=[ticker],
        label="negative" if negative else "neutral", probabilities={"negative": neg, "neutral": 1 - neg - 0.01, "positive": 0.01},
        negative_score=neg, model_version="test", scored_at=when + timedelta(seconds=1),
    )
    return article.model_dump(mode="json", exclude={"schema_version", "embedding"})


def test_live_page_with_seeded_data(
    stack: Any, unique_name: str, es_client: Any, browser: Any, dashboard_for: Any, output_dir: Path,
) -> None:
    from finpulse.dashboard.recommendations import recommendations_index
    from finpulse.streams.sinks.alerta_sink import AlertaSink
    from finpulse.streams.sinks.templates import install_templates

    settings = _with(stack.settings, elasticsearch={"index_prefix": unique_name})
    install_templates(es_client, settings.elasticsearch)
    ticker = "S" + unique_name[-5:].upper()
    now = datetime.now(UTC).replace(microsecond=0)
    docs = []
    for m in range(40):  # 40 minutes of history, then a negative burst
        when = now - timedelta(minutes=45 - m)
        docs += [_scored(ticker, m * 10 + j, when + timedelta(seconds=j), negative=(j == 0 or m >= 36)) for j in range(4)]
    hostile_title = HOSTILE.format(t=ticker)
    docs.append(_scored(ticker, 9999, now - timedelta(seconds=5), True, title=hostile_title))
    operations: list[dict[str, Any]] = []
    for doc in docs:
        operations += [{"index": {"_index": f"{unique_name}-news-{now:%Y.%m}", "_id": doc["id"]}}, doc]
    assert not es_client.bulk(operations=operations, refresh=True)["errors"]

    window_start = now - timedelta(minutes=9)
    headlines = [Headline(id=d["id"], title=d["title"], url=d["url"], negative_score=d["negative_score"],
                          published_at=datetime.fromisoformat(d["published_at"])) for d in docs[-4:]]
    alert = SpikeAlert(key=ticker, status="raise", window_start=window_start, window_end=now, n=16, k=13, share=13 / 16,
                       baseline=0.25, p_value=2.1e-6, severity="major", headlines=headlines)

    async def deliver() -> None:
        sink = AlertaSink(settings.alerta)
        try:
            await sink.deliver(alert)
        finally:
            await sink.close()

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
        pool.submit(asyncio.run, deliver()).result(60)

    handle = dashboard_for(settings)
    watch = PageWatch(browser, handle.url)
    try:
        watch.wait(f"document.querySelector('#alerts li[data-resource=\"{ticker}\"]')", "the seeded alert")
        watch.wait("Number(document.getElementById('chart-share').dataset.points) > 0", "chart points")
        watch.wait("document.querySelectorAll('#headlines tr').length > 0", "headlines")
        alert_text = watch.page.locator(f'#alerts li[data-resource="{ticker}"]').text_content() or ""
        for part in ("k=13 of n=16", "share 81%", "baseline 25%", "p=2.10e-6"):
            assert part in alert_text, (part, alert_text)
        assert alert_text.count(ticker) >= 4  # the evidence headlines are listed
        assert hostile_title in alert_text, "a hostile evidence headline is shown as text too"
        names = watch.page.evaluate("document.getElementById('chart-share').data.map(t => t.name)")
        assert names[0] == "market" and ticker in names
        assert chart_points(watch, "chart-share") >= 2 * 8
        assert_hostile_text_is_inert(watch, hostile_title)
        first_row = watch.page.locator("#headlines tr").first.text_content() or ""
        assert "negative" in first_row and "0.93" in first_row
        link = watch.page.locator("#headlines td.title a").first
        assert (link.get_attribute("href") or "").startswith("https://news.example/")
        assert link.get_attribute("rel") == "noopener noreferrer nofollow"
        assert watch.page.locator("#recs-empty").is_visible()
        assert (watch.page.locator("#recs-empty").text_content() or "").strip() == "no recommendations yet"
        assert_page_is_locked_down(watch)
        shot = screenshot(watch, output_dir, "dashboard-seeded.png")

        # The recommendations feed appears (documents as the recommend agent indexes them: one per (list, rank), every
        # list kept): the page offers the pseudonymised users and shows a user's latest list in rank order.
        from finpulse.pseudonym import pseudonymise

        raw_user = f"alice-{unique_name}@example.com"
        user = pseudonymise(raw_user, settings.pseudonym_key)
        index = f"{unique_name}-recommendations-{now:%Y.%m}"
        ops: list[dict[str, Any]] = []
        for listed_at, picks in ((now - timedelta(minutes=3), (1, 2, 3)), (now, (5, 9, len(docs) - 1))):
            for rank, i in enumerate(picks, start=1):
                item = {"user_id": user, "article_id": docs[i]["id"], "title": docs[i]["title"], "url": docs[i]["url"],
                        "score": 0.9 - rank / 10, "rank": rank, "recommended_at": listed_at.isoformat(), "tickers": [ticker]}
                ops += [{"index": {"_index": index, "_id": f"{user}:{int(listed_at.timestamp() * 1000)}:{rank}"}}, item]
        assert not es_client.bulk(operations=ops, refresh=True)["errors"]
        assert es_client.indices.exists_alias(name=recommendations_index(unique_name))
        watch.wait(f"[...document.querySelectorAll('#user option')].some(o => o.value === '{user}')", "the user in the list")
        watch.page.select_option("#user", user)
        watch.wait("document.querySelectorAll('#recommendations li').length === 3", "the user's recommendations")
        rec_texts = watch.page.locator("#recommendations li").all_text_contents()
        assert rec_texts[0].startswith(docs[5]["title"]) and rec_texts[2].startswith(hostile_title)
        assert not watch.page.locator("#recs-empty").is_visible()
        assert watch.page.evaluate("typeof window.__pwned") == "undefined"
        screenshot(watch, output_dir, "dashboard-seeded-recommendations.png")
        # A raw user id typed in is pseudonymised by the server and finds the same list.
        watch.page.select_option("#user", "")
        watch.wait("document.querySelectorAll('#recommendations li').length === 0", "the list to clear")
        watch.page.fill("#raw-user", raw_user)
        watch.page.dispatch_event("#raw-user", "change")
        watch.wait("document.querySelectorAll('#recommendations li').length === 3", "the raw user's recommendations")
        assert watch.page.locator("#recommendations li").all_text_contents() == rec_texts
    finally:
        watch.close()
    assert shot.is_file()
