"""Agent ``finpulse.recommend.clicks``: clicks update user profiles and trigger the users' feeds.

Clicks keyed by user id update the user's profile in the ``recommend-profiles`` table (recent clicked ids, bounded;
the user vector of the user tower). A user's top-K goes to ``recommendations`` at most once per debounce interval
(the first click at once, later ones when the interval has passed): one matrix product over the pool,
``argpartition``, freshness decay, clicked articles excluded, MMR. Undecodable click records go to ``clicks.dlq``.
The view ``GET /v1/users/{user_id}/recommendations`` is answered by the partition owner of the user's profile.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from finpulse.contracts.codecs import Err, dead_letter, decode, encode_checked
from finpulse.contracts.events import ClickEvent, RecommendationList
from finpulse.streams.agents.profiles import Profile, update_profile
from finpulse.streams.agents.recommend import RecommendParts
from finpulse.streams.channels import batches, in_event

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
                per_user = await self._per_user(events)
                await self._update(per_user, time.time())

    async def _per_user(self, events: list[Any]) -> PerUser:
        """The batch's clicks grouped by user; undecodable records go to the dead-letter topic."""
        per_user: PerUser = {}
        for event in events:
            message = event.message
            result = decode(event.value, ClickEvent, MAX_CLICK_RECORD_BYTES)
            if isinstance(result, Err):
                letter = dead_letter(topic=message.topic, partition=message.partition, offset=message.offset,
                                     key=event.key, value=event.value, err=result)
                await self.parts.clicks_dlq.send(key=event.key, value=encode_checked(letter))
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

    async def _update(self, per_user: PerUser, now: float) -> None:
        parts, rec, service = self.parts, self.parts.settings.recommend, self.parts.service
        for user_id, (event, clicked, shown, trigger) in per_user.items():
            profile = Profile.load(user_id, parts.profiles.get(user_id.encode()))
            updated = update_profile(profile, clicked, shown, service.candidates, service.model.tower,
                                     rec.profile_length, now)
            with in_event(event):
                parts.profiles[user_id.encode()] = updated.dump()
            if not clicked:
                continue
            if now - service.last_emit.get(user_id, 0.0) >= rec.debounce_s:
                await self.emit(user_id, now, trigger)
            else:
                service.pending[user_id] = min(service.pending.get(user_id, trigger or now), trigger or now)

    async def emit(self, user_id: str, now: float, trigger: float | None) -> None:
        parts, service = self.parts, self.parts.service
        parts.ensure_pool()
        profile = Profile.load(user_id, parts.profiles.get(user_id.encode()))
        record = RecommendationList(
            user_id=user_id, items=service.recommend(profile, now), model_version=service.model.version,
            clicks_seen=profile.clicks, trigger_received_at=datetime.fromtimestamp(trigger, UTC) if trigger else None,
        )
        await parts.recommendations.send(key=user_id.encode(), value=encode_checked(record))
        service.last_emit[user_id] = now
        parts.metrics.events_out.labels("recommend.clicks").inc()

    async def flush_debounced(self) -> None:
        service, debounce = self.parts.service, self.parts.settings.recommend.debounce_s
        now = time.time()
        due = [u for u in service.pending if now - service.last_emit.get(u, 0.0) >= debounce]
        for user_id in due:
            trigger = service.pending.pop(user_id)
            await self.emit(user_id, now, trigger)


def _register_view(parts: RecommendParts) -> None:
    from faust import web

    app, profiles, service = parts.app, parts.profiles, parts.service

    @app.page("/v1/users/{user_id}/recommendations")
    class UserRecommendations(web.View):
        """``GET /v1/users/<id>/recommendations``: the user's current top-K, from the owner of the profile."""

        @app.table_route(table=profiles, match_info="user_id")
        async def get(self, request: web.Request, user_id: str) -> web.Response:
            value = profiles.get(user_id.encode())
            if value is None:
                return self.json({"user_id": user_id, "error": "no clicks seen for this user"}, status=404)
            profile = Profile.load(user_id, value)
            service.ensure_pool()
            items = service.recommend(profile, time.time())
            return self.json({
                "user_id": user_id, "model_version": service.model.version, "clicks_seen": profile.clicks,
                "candidates": len(service.candidates),
                "items": [item.model_dump(mode="json") for item in items],
            })
