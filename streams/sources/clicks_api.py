"""``finpulse clicks-api``: ``POST /v1/events`` takes batches of impression/click events into Kafka.

Requests need ``Authorization: Bearer <FINPULSE_RECOMMEND__API_TOKEN>``: without it they get 401 before they
spend anything. The rate limits are kept per bearer token, not per address (behind a proxy every client has the
proxy's): requests per second, then events per second whatever the batch sizes; over either, 429 with
``Retry-After`` and nothing of the batch is taken. A body larger than the limit gets 413 (checked on
``Content-Length`` and while reading), and a batch with bad events gets 422 naming each bad event's index and
why; a good batch is produced to the ``clicks`` topic keyed by user id (aiokafka, acks=all, not idempotent: the embedded
Tansu broker refuses idempotent producers) and answered 202 only once Kafka acknowledged every event.
``/healthz`` and ``/metrics`` (Prometheus) need no token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import ValidationError

from finpulse.contracts.codecs import MAX_JSON_DEPTH, json_depth_ok
from finpulse.contracts.events import ClickEvent
from finpulse.settings import RecommendSettings, Settings, check_pseudonym_key
from finpulse.streams.sources.exceptions import ClicksApiConfigError

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

logger = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 50
#: Headers of a 401: the client must send ``Authorization: Bearer <token>``.
UNAUTHORIZED = (("WWW-Authenticate", 'Bearer realm="finpulse"'),)


def bearer_matches(authorization: str, token: bytes) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (compared in constant time)."""
    scheme, _, given = authorization.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)


class EventSink(Protocol):
    async def start(self) -> None: ...

    async def send(self, events: Sequence[ClickEvent]) -> None:
        """Return only when every event is acknowledged (raise otherwise)."""

    async def stop(self) -> None: ...


class KafkaEventSink:
    """Produces events to the clicks topic keyed by user id and waits for every acknowledgement."""

    def __init__(self, settings: Settings) -> None:
        from finpulse.contracts.topics import CLICKS, topic_name

        self._settings = settings
        self.topic = topic_name(settings.kafka, CLICKS)
        self._producer: Any = None

    async def start(self) -> None:
        from finpulse.streams.sources.producer import make_async_producer

        self._producer = make_async_producer(self._settings.kafka, client_id="finpulse-clicks-api", linger_ms=2)
        await self._producer.start()

    async def send(self, events: Sequence[ClickEvent]) -> None:
        futures = [
            await self._producer.send(self.topic, key=e.user_id.encode(), value=e.to_bytes()) for e in events
        ]
        await asyncio.gather(*futures)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()


class TokenBucket:
    """Per-client token buckets: ``rate`` tokens a second, ``burst`` at most; a take costs one token or more."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic, max_clients: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str, cost: float = 1.0) -> float:
        """0 when ``cost`` tokens were there (and are taken), else the seconds until they are (nothing taken)."""
        now = self._clock()
        tokens, last = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= cost:
            self._remember(client, tokens - cost, now)
            return 0.0
        self._remember(client, tokens, now)
        return (cost - tokens) / self.rate

    def _remember(self, client: str, tokens: float, now: float) -> None:
        if client not in self._buckets and len(self._buckets) >= self._max_clients:
            # Forget the full buckets first (they are the default state), then the oldest.
            full = [c for c, (t, _) in self._buckets.items() if t >= self.burst]
            for c in full or list(self._buckets)[: self._max_clients // 10]:
                del self._buckets[c]
        self._buckets[client] = (tokens, now)


@dataclass
class ApiMetrics:
    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter("finpulse_clicks_api_requests", "HTTP requests by outcome", ["status"], registry=r)
        self.events = Counter("finpulse_clicks_api_events", "Events accepted into Kafka", ["event_type"], registry=r)
        self.produce_seconds = Histogram(
            "finpulse_clicks_api_produce_seconds", "Time from request to Kafka acknowledgement",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0), registry=r,
        )


class BodyTooLarge(Exception):
    pass


def validate_events(payload: Any, max_events: int, now: datetime) -> tuple[list[ClickEvent], list[dict[str, Any]]]:
    """The events of a request body (``{"events": [...]}`` or a bare list) and one error per bad event."""
    if isinstance(payload, dict) and set(payload) == {"events"}:
        payload = payload["events"]
    if not isinstance(payload, list):
        return [], [{"index": None, "error": 'body must be {"events": [...]} or a JSON list of events'}]
    if not payload:
        return [], [{"index": None, "error": "no events in the batch"}]
    if len(payload) > max_events:
        return [], [{"index": None, "error": f"{len(payload)} events in one batch, at most {max_events}"}]
    events: list[ClickEvent] = []
    errors: list[dict[str, Any]] = []
    for i, raw in enumerate(payload):
        if not isinstance(raw, dict):
            errors.append({"index": i, "error": f"event must be a JSON object, got {type(raw).__name__}"})
            continue
        if "received_at" in raw:
            errors.append({"index": i, "field": "received_at", "error": "set by the server, not by clients"})
            continue
        try:
            event = ClickEvent.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors()[:5]:
                field = ".".join(str(p) for p in err["loc"]) or None
                errors.append({"index": i, "field": field, "error": err["msg"]})
            continue
        skew = event.check_clock(now)
        if skew:
            errors.append({"index": i, "field": "timestamp", "error": skew})
            continue
        events.append(event.model_copy(update={"received_at": now}))
    return events, errors


class _Refused(Exception):
    """A request the API answers with ``status`` and ``body`` instead of taking its events."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers


class ClicksApi:
    """The routes of the clicks API and what they share: the token, the sink, the metrics and the rate limit."""

    def __init__(self, settings: RecommendSettings, sink: EventSink, registry: CollectorRegistry | None = None) -> None:
        if settings.api_token is None or not settings.api_token.get_secret_value():
            raise ClicksApiConfigError("FINPULSE_RECOMMEND__API_TOKEN is not set: the clicks API refuses to run without a bearer token")
        if settings.rate_events_burst < settings.max_batch_events:
            raise ClicksApiConfigError(
                f"FINPULSE_RECOMMEND__RATE_EVENTS_BURST ({settings.rate_events_burst}) is smaller than "
                f"FINPULSE_RECOMMEND__MAX_BATCH_EVENTS ({settings.max_batch_events}): a full batch could never pass")
        self.settings = settings
        self.sink = sink
        self.token = settings.api_token.get_secret_value().encode()
        # The buckets' key: who holds the token (a digest, so the token itself is kept in one place only).
        self.holder = hashlib.sha256(self.token).hexdigest()[:16]
        self.metrics = ApiMetrics(registry or CollectorRegistry())
        self.requests = TokenBucket(settings.rate_per_s, settings.rate_burst)
        self.events = TokenBucket(settings.rate_events_per_s, settings.rate_events_burst)
        self.limit = settings.max_body_bytes

    def answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
        from starlette.responses import JSONResponse

        self.metrics.requests.labels(str(status)).inc()
        return JSONResponse(body, status_code=status, headers=headers)

    async def post_events(self, request: Request) -> Response:
        """``POST /v1/events``: 202 once Kafka acknowledged every event of the batch, else why not (module docstring)."""
        started = time.perf_counter()
        try:
            self._admit(request)
            events = self._events(await self._payload(request))
            self._limit(self.events, len(events), "events")
            await self._send(events)
        except _Refused as refused:
            return self.answer(refused.status, refused.body, refused.headers)
        self.metrics.produce_seconds.observe(time.perf_counter() - started)
        for event in events:
            self.metrics.events.labels(event.event_type).inc()
        return self.answer(202, {"accepted": len(events)})

    def _admit(self, request: Request) -> None:
        """The bearer token (401, before any bucket is spent), then the token's request rate (429)."""
        if not bearer_matches(request.headers.get("authorization", ""), self.token):
            raise _Refused(401, {"error": "missing or wrong bearer token"}, dict(UNAUTHORIZED))
        self._limit(self.requests, 1, "requests")

    def _limit(self, bucket: TokenBucket, cost: int, what: str) -> None:
        """429 with ``Retry-After`` (whole seconds, rounded up) unless the token's ``bucket`` holds ``cost``."""
        wait = bucket.take(self.holder, cost)
        if wait > 0:
            raise _Refused(429, {"error": f"too many {what} for this token"}, {"Retry-After": str(math.ceil(wait))})

    async def _payload(self, request: Request) -> Any:
        """The body as JSON: 413 over the size limit, 400 unless it is UTF-8 JSON of a bounded depth."""
        try:
            body = await self._read_body(request)
        except BodyTooLarge:
            raise _Refused(413, {"error": f"body larger than {self.limit} bytes"}) from None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Refused(400, {"error": f"body is not UTF-8: {exc}"}) from None
        if not json_depth_ok(text):
            raise _Refused(400, {"error": f"body is nested deeper than {MAX_JSON_DEPTH} levels"})
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise _Refused(400, {"error": f"body is not valid JSON: {exc}"}) from None

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            raise BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.limit:
                raise BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _events(self, payload: Any) -> list[ClickEvent]:
        """The batch's events, stamped ``received_at``; 422 naming every bad one (then nothing is taken)."""
        events, errors = validate_events(payload, self.settings.max_batch_events, datetime.now(UTC))
        if errors:
            raise _Refused(422, {"error": "invalid events; nothing was accepted", "errors": errors[:MAX_REPORTED_ERRORS],
                                 "error_count": len(errors)})
        return events

    async def _send(self, events: list[ClickEvent]) -> None:
        from aiokafka.errors import KafkaError

        try:
            await self.sink.send(events)
        except (KafkaError, OSError, TimeoutError) as exc:  # the client must retry the whole batch
            logger.warning("producing %d events failed: %r", len(events), exc)
            raise _Refused(503, {"error": "events were not acknowledged by Kafka; retry the batch"}, {"Retry-After": "1"}) from None

    async def healthz(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        return JSONResponse({"status": "ok"})

    async def prometheus(self, request: Request) -> Response:
        from starlette.responses import Response

        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.sink.start()
        try:
            yield
        finally:
            await self.sink.stop()


def create_api(settings: RecommendSettings, sink: EventSink, registry: CollectorRegistry | None = None) -> Starlette:
    """The Starlette app of the clicks API (``sink`` started and stopped with it)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    api = ClicksApi(settings, sink, registry)
    return Starlette(
        routes=[
            Route("/v1/events", api.post_events, methods=["POST"]),
            Route("/healthz", api.healthz, methods=["GET"]),
            Route("/metrics", api.prometheus, methods=["GET"]),
        ],
        lifespan=api.lifespan,
    )


def run_api(settings: Settings) -> None:
    """Serve the clicks API with uvicorn until SIGTERM/SIGINT (refused first with a guessable pseudonym key)."""
    import uvicorn

    check_pseudonym_key(settings.pseudonym_key)
    app = create_api(settings.recommend, KafkaEventSink(settings))
    rec = settings.recommend
    logger.info("clicks API on %s:%d → Kafka %s", rec.api_host, rec.api_port, settings.kafka.bootstrap_servers)
    uvicorn.run(app, host=rec.api_host, port=rec.api_port, log_level=settings.log_level.lower(), access_log=False,
                log_config=None)
