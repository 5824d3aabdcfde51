import base64
import json

import pytest

from finpulse.contracts.codecs import Err, Ok, dead_letter, decode, encode_checked
from finpulse.contracts.exceptions import SerializationBug
from finpulse.contracts.ids import article_id
from finpulse.contracts.records import DeadLetter, NewsArticle


def _article(**over: object) -> dict[str, object]:
    base = {"id": article_id("https://example.com/a"), "url": "https://example.com/a", "source": "test",
            "title": "Apple shares fall", "tickers": ["aapl"]}
    base.update(over)
    return base


def test_decode_valid_article_normalises_tickers() -> None:
    result = decode(json.dumps(_article()).encode(), NewsArticle, 10_000)
    assert isinstance(result, Ok)
    assert result.value.tickers == ["AAPL"]


@pytest.mark.parametrize(
    ("payload", "error_type"),
    [
        (None, "empty"),
        (b"\xff\xfe not utf8", "invalid_utf8"),
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"a string"', "not_an_object"),
        (b'{"title": "\\ud800 a lone surrogate"}', "invalid_json"),  # no string the sinks could not encode
        (b"[" * 100 + b"]" * 100, "too_deep"),
        (json.dumps(_article(title=123)).encode(), "invalid_record"),
        (json.dumps({"id": "abc"}).encode(), "invalid_record"),
        (json.dumps(_article(tickers=["$$$"])).encode(), "invalid_record"),
        (json.dumps(_article(extra="field")).encode(), "invalid_record"),
        (b"x" * 20_000, "too_large"),
    ],
)
def test_decode_bad_input_is_an_error_with_a_reason(payload: bytes | None, error_type: str) -> None:
    result = decode(payload, NewsArticle, 10_000)
    assert isinstance(result, Err)
    assert result.error_type == error_type
    assert result.reason


def test_missing_field_reason_names_the_field() -> None:
    bad = _article()
    del bad["title"]
    result = decode(json.dumps(bad).encode(), NewsArticle, 10_000)
    assert isinstance(result, Err) and "title" in result.reason


def test_dead_letter_keeps_raw_bytes() -> None:
    raw = b"\xff\x00garbage"
    letter = dead_letter(topic="news.raw", partition=2, offset=41, key=b"k", value=raw, err=Err("invalid_utf8", "x"))
    assert base64.b64decode(letter.value_b64) == raw
    assert base64.b64decode(letter.key_b64 or "") == b"k"
    assert DeadLetter.model_validate_json(encode_checked(letter)) == letter


def test_encode_checked_raises_on_our_own_bug() -> None:
    article = NewsArticle.model_validate(_article())
    broken = article.model_copy(update={"id": "NOT-HEX"})  # model_copy skips validation: a bug in our code
    with pytest.raises(SerializationBug):
        encode_checked(broken)


def test_oversized_dead_letter_keeps_a_prefix_size_and_hash() -> None:
    import hashlib

    from finpulse.contracts.codecs import DLQ_MAX_VALUE_BYTES

    raw = b"x" * (DLQ_MAX_VALUE_BYTES * 4)
    letter = dead_letter(topic="news.raw", partition=0, offset=1, key=None, value=raw, err=Err("too_large", "big"))
    assert letter.value_truncated and letter.value_size == len(raw)
    assert letter.value_sha256 == hashlib.sha256(raw).hexdigest()
    assert base64.b64decode(letter.value_b64) == raw[:DLQ_MAX_VALUE_BYTES]
    assert len(encode_checked(letter)) < 2 * DLQ_MAX_VALUE_BYTES


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


def test_json_depth_ok_counts_nesting_not_brackets() -> None:
    from finpulse.contracts.codecs import json_depth_ok

    assert json_depth_ok("[" * 4 + "]" * 4, limit=4)
    assert not json_depth_ok("[" * 5 + "]" * 5, limit=4)
    assert json_depth_ok("[" + ",".join("[1]" for _ in range(50)) + "]", limit=4)  # many brackets, depth 2
    assert json_depth_ok(json.dumps({"title": "[[[[[[{{{{{{", "v": [0.1] * 384}), limit=4)  # brackets in strings
    assert not json_depth_ok(json.dumps({"t": "\\\"[[", "a": [[[[[1]]]]]}), limit=4)


def test_json_depth_ok_agrees_with_the_true_depth() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from finpulse.contracts.codecs import json_depth_ok

    leaves = st.none() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6)
    values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                          max_leaves=40)

    @settings(max_examples=300, deadline=None)
    @given(values, st.integers(min_value=1, max_value=6))
    def check(value: object, limit: int) -> None:
        assert json_depth_ok(json.dumps(value), limit) == (_depth(value) <= limit)

    check()
