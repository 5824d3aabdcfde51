"""The click path's per-user maps stay bounded: the last-emit times and the feeds held back by the debounce."""

from __future__ import annotations

from finpulse.settings import Settings
from finpulse.streams.agents.recommend import RecommendService


def _service(debounce_s: float, max_profiles: int) -> RecommendService:
    settings = Settings.model_validate({"recommend": {"debounce_s": debounce_s, "max_profiles": max_profiles}})
    return RecommendService(settings, model_factory=lambda: None)  # type: ignore[arg-type,return-value]


def test_emit_times_past_the_debounce_go_and_the_count_is_capped() -> None:
    service = _service(debounce_s=1.0, max_profiles=100)
    for i in range(10):
        service.note_emit(f"u{i}", now=float(i))
    assert list(service.last_emit) == ["u9"], "older entries hold nothing back"
    service = _service(debounce_s=1e9, max_profiles=100)
    for i in range(1000):
        service.note_emit(f"u{i}", now=float(i))
    service.note_emit("u950", now=2000.0)
    assert len(service.last_emit) == 100 and next(iter(service.last_emit)) == "u900"
    assert list(service.last_emit)[-1] == "u950", "a repeat emit moves the user to the newest end"


def test_a_full_pending_map_sends_the_feed_at_once_instead_of_growing() -> None:
    service = _service(debounce_s=60.0, max_profiles=10)
    assert all(service.defer(f"u{i}", float(i)) for i in range(10))
    assert not service.defer("u10", 10.0)
    assert service.defer("u3", 1.0) and service.pending["u3"] == 1.0, "a waiting user's earliest trigger is kept"
    assert len(service.pending) == 10
