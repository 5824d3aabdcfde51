"""Agent ``finpulse.recommend.clicks``: clicks update user profiles and trigger the users' feeds.

Clicks keyed by user id update the user's profile in the ``recommend-profiles`` table (recent clicked ids, bounded;
the user vector of the user tower). A user's top-K goes to ``recommendations`` at most once per debounce interval
(the first click at once, later ones when the interval has passed): one matrix product over the pool,
``argpartition``, freshness decay, clicked articles excluded, MMR. Undecodable click records go to ``clicks.dlq``.
Kafka acknowledges a batch's dead letters and the lists it emits before the batch is acknowledged: a produce that
fails fails the batch (re-delivered at the next start) instead of being lost behind a committed offset.
The view ``GET /v1/users/{user_id}/recommendations`` (bearer token ``recommend.view_token``) is answered by the partition
owner of the user's profile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from finpulse.contracts.codecs import Err, dead_letter, decode, encode_checked
from finpulse.contracts.events import ClickEvent, RecommendationList
from finpulse.streams.agents.profiles import Profile, update_profile
from finpulse.streams.agents.recommend import RecommendParts
from finpulse.streams.channels import batches, in_event

logger = logging.getLogger(__name__)

MAX_CLICK_RECORD_BYTES = 64 * 1024

#: user id → (last event of the user in the batch, clicked ids, impressions shown, earliest click received at)
PerUser = dict[str, tuple[Any, list[str], int, float | None]]


def register(parts: RecommendParts) -> None:
    """Add the click agent, the debounce timer and (with a web port) the user view."""
    agent = ClickAgent(parts)
    parts.app.agent(parts.clicks, name="finpulse.recommend.clicks")(agent.run)
    rec = parts.settings.recommend

    @parts.app.timer(interval=max(0.05, rec.debounce_s / 4) if rec.debounce_s > 0 else 1.0)
    async def flush_debounced() -> None:
        await agent.flush_debounced()

    @parts.app.timer(interval=parts.settings.stream.sweep_interval_s)
    async def expire_profiles() -> None:
        parts.profile_bounds.expire(time.time())

    if parts.settings.stream.web_port:
        _register_view(parts)


class ClickAgent:
    def __init__(self, parts: RecommendParts) -> None:
        self.parts = parts

    async def run(self, stream: Any) -> None:
        _ = self.parts.service.model
        async with batches(stream, 500, 0.02) as taken:
            async for events in taken:
                self.parts.metrics.events_in.labels("recommend.clicks").inc(len(events))
                deliveries: list[Awaitable[Any]] = []
                per_user = await self._per_user(events, deliveries)
                await self._update(per_user, time.time(), deliveries)
                await asyncio.gather(*deliveries)  # before the batch is acknowledged

    async def _per_user(self, events: list[Any], deliveries: list[Awaitable[Any]]) -> PerUser:
        """The batch's clicks grouped by user; undecodable records go to the dead-letter topic (their produce added to
        ``deliveries``)."""
        per_user: PerUser = {}
        for event in events:
            message = event.message
            result = decode(event.value, ClickEvent, MAX_CLICK_RECORD_BYTES)
            if isinstance(result, Err):
                letter = dead_letter(topic=message.topic, partition=message.partition, offset=message.offset,
                                     key=event.key, value=event.value, err=result)
                deliveries.append(await self.parts.clicks_dlq.send(key=event.key, value=encode_checked(letter)))
                self.parts.metrics.dlq.labels(message.topic, result.error_type).inc()
                continue
            click = result.value
            _, clicked, shown, trigger = per_user.get(click.user_id, (event, [], 0, None))
            if click.event_type == "click":
                clicked.append(click.article_id)
                received = (click.received_at or click.timestamp).timestamp()
                trigger = received if trigger is None else min(trigger, received)
            else:
                shown += 1
            per_user[click.user_id] = (event, clicked, shown, trigger)
        return per_user

    async def _update(self, per_user: PerUser, now: float, deliveries: list[Awaitable[Any]]) -> None:
        parts, rec, service = self.parts, self.parts.settings.recommend, self.parts.service
        for user_id, (event, clicked, shown, trigger) in per_user.items():
            stored = parts.profiles.get(user_id.encode())
            profile = Profile.load(user_id, stored)
            updated = update_profile(profile, clicked, shown, service.candidates, service.model.tower,
                                     rec.profile_length, now)
            with in_event(event):
                parts.profiles[user_id.encode()] = updated.dump(event.message.partition)
            if stored is None:
                parts.profile_bounds.added(now)
            if not clicked:
                continue
            if now - service.last_emit.get(user_id, 0.0) >= rec.debounce_s or not service.defer(user_id, trigger or now):
                deliveries.append(await self.emit(user_id, now, trigger))

    async def emit(self, user_id: str, now: float, trigger: float | None) -> Awaitable[Any]:
        """Produce the user's list; returns its delivery, to await before the input that caused it is acknowledged."""
        parts, service = self.parts, self.parts.service
        parts.ensure_pool()
        profile = Profile.load(user_id, parts.profiles.get(user_id.encode()))
        record = RecommendationList(
            user_id=user_id, items=service.recommend(profile, now), model_version=service.model.version,
            clicks_seen=profile.clicks, trigger_received_at=datetime.fromtimestamp(trigger, UTC) if trigger else None,
        )
        delivery: Awaitable[Any] = await parts.recommendations.send(key=user_id.encode(), value=encode_checked(record))
        service.note_emit(user_id, now)
        parts.metrics.events_out.labels("recommend.clicks").inc()
        return delivery

    async def flush_debounced(self) -> None:
        service, debounce = self.parts.service, self.parts.settings.recommend.debounce_s
        now = time.time()
        due = [u for u in service.pending if now - service.last_emit.get(u, 0.0) >= debounce]
        deliveries = []
        for user_id in due:
            trigger = service.pending.pop(user_id)
            deliveries.append(await self.emit(user_id, now, trigger))
        await asyncio.gather(*deliveries)


def _register_view(parts: RecommendParts) -> None:
    """``GET /v1/users/<id>/recommendations``: the user's current top-K from the owner of the profile, for clients
    with the view's bearer token (401 otherwise, before any routing); a user never seen gets the same answer shape
    as any other (no clicks, no items), so the view does not tell who exists."""
    from faust import web

    from finpulse.streams.sources.clicks_api import UNAUTHORIZED, bearer_matches

    app, profiles, service = parts.app, parts.profiles, parts.service
    configured = parts.settings.recommend.view_token
    token = configured.get_secret_value().encode() if configured is not None else b""
    if not token:
        logger.warning("FINPULSE_RECOMMEND__VIEW_TOKEN is not set: GET /v1/users/{id}/recommendations refuses every request")

    async def answer(view: web.View, request: web.Request, user_id: str) -> web.Response:
        profile = Profile.load(user_id, profiles.get(user_id.encode()))
        service.ensure_pool()
        items = service.recommend(profile, time.time())
        return view.json({
            "user_id": user_id, "model_version": service.model.version, "clicks_seen": profile.clicks,
            "candidates": len(service.candidates), "items": [item.model_dump(mode="json") for item in items],
        })

    routed = app.table_route(table=profiles, match_info="user_id")(answer)

    @app.page("/v1/users/{user_id}/recommendations")
    class UserRecommendations(web.View):
        async def get(self, request: web.Request, user_id: str) -> web.Response:
            if not token or not bearer_matches(request.headers.get("Authorization", ""), token):
                return self.json({"error": "missing or wrong bearer token"}, status=401, headers=dict(UNAUTHORIZED))
            return await routed(self, request, user_id=user_id)
