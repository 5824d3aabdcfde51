"""Decoding of topic payloads into records: bad input is data, not an exception.

``decode`` returns :class:`Ok` or :class:`Err`; an ``Err`` becomes a :class:`DeadLetter` with the raw
bytes and the reason. Encoding our own records never fails silently: if a record we built cannot be
read back, :class:`SerializationBug` is raised (see :func:`encode_checked`).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from finpulse.contracts.exceptions import SerializationBug
from finpulse.contracts.records import DeadLetter

R = TypeVar("R", bound=BaseModel)

MAX_JSON_DEPTH = 32
DLQ_MAX_VALUE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Ok(Generic[R]):
    value: R


@dataclass(frozen=True, slots=True)
class Err:
    error_type: str
    reason: str


def json_depth_ok(raw: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Reject pathologically nested JSON before the parser recurses into it."""
    if raw.count("[") + raw.count("{") <= limit:
        return True  # the depth never exceeds the number of brackets that open (C-speed counts, no Python loop)
    depth = 0
    in_string = escaped = False
    for ch in raw:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def decode(payload: bytes | None, model: type[R], max_bytes: int) -> Ok[R] | Err:
    """Decode UTF-8 JSON ``payload`` into ``model``; every failure is an :class:`Err` with a reason."""
    if payload is None:
        return Err("empty", "record has no value (tombstone)")
    if len(payload) > max_bytes:
        return Err("too_large", f"record is {len(payload)} bytes, limit {max_bytes}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Err("invalid_utf8", f"not UTF-8 at byte {exc.start}: {exc.reason}")
    if not json_depth_ok(text):
        return Err("too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH}")
    try:
        # pydantic-core parses and validates in one pass: a scored article with its 384-float embedding decodes in
        # 58 µs instead of the 164 µs of json.loads + model_validate (this 2-core host).
        return Ok(model.model_validate_json(text))
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0] if errors else None
        if first is not None and not first["loc"]:
            if first["type"] == "json_invalid":
                return Err("invalid_json", str(first["msg"]))
            if first["type"] == "model_type":
                return Err("not_an_object", f"expected a JSON object: {first['msg']}")
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in errors[:10]
        )
        return Err("invalid_record", problems)


def encode_checked(record: R) -> bytes:
    """Serialise one of our own records and prove it reads back; a failure is a bug, so it raises."""
    payload = record.to_bytes()  # type: ignore[attr-defined]
    try:
        type(record).model_validate_json(payload)
    except ValidationError as exc:
        raise SerializationBug(f"{type(record).__name__} does not round-trip: {exc}") from exc
    return payload


def dead_letter(
    *, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, err: Err
) -> DeadLetter:
    """The dead-letter record of a failed input, carrying its raw bytes.

    Values over :data:`DLQ_MAX_VALUE_BYTES` keep their first bytes, their size and sha256: a whole
    oversized record would not fit in a Kafka message once base64-encoded, and it stays readable at
    ``source_topic``/``partition``/``offset`` for the topic's retention.
    """
    raw = value or b""
    kept = raw[:DLQ_MAX_VALUE_BYTES]
    return DeadLetter(
        source_topic=topic,
        partition=partition,
        offset=offset,
        key_b64=base64.b64encode(key[:DLQ_MAX_VALUE_BYTES]).decode("ascii") if key is not None else None,
        value_b64=base64.b64encode(kept).decode("ascii"),
        value_size=len(raw),
        value_sha256=hashlib.sha256(raw).hexdigest(),
        value_truncated=len(kept) < len(raw),
        error_type=err.error_type,
        error=err.reason[:4000],
    )
