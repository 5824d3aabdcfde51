"""Faust events over real Faust messages, so the refcount logic under test is Faust's own."""

from __future__ import annotations

from dataclasses import dataclass

from faust.types.tuples import Message


@dataclass
class FakeEvent:
    message: Message

    def ack(self) -> bool:  # faust.Event.ack: one reference fewer, final ack at zero
        return self.message.ack(None)  # type: ignore[arg-type]


def make_event(offset: int) -> FakeEvent:
    message = Message("news.raw", 0, offset, 0.0, 0, None, b"k", b"v", None)
    message.incref()  # one subscribing stream, as Faust's conductor does on delivery
    return FakeEvent(message)
