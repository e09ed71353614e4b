"""The package's one JSON loader/dumper: hostile lines give one-line errors, never tracebacks,
and the same result at any stack depth."""

from __future__ import annotations

import json
import time

import pytest

from metric_cards.jsonutil import (
    MAX_JSON_DEPTH,
    JsonLineError,
    dumps,
    dumps_line,
    is_unicode,
    json_type_name,
    loads,
    nesting_depth,
)


def deep(levels: int, inner: str = "1") -> bytes:
    return ("[" * levels + inner + "]" * levels).encode()


def at_stack_depth(frames: int, call):  # type: ignore[no-untyped-def]
    """Run `call()` under `frames` extra Python frames."""
    if frames:
        return at_stack_depth(frames - 1, call)
    return call()


def outcome(data: bytes) -> object:
    try:
        value = loads(data)
    except JsonLineError as error:
        return ("error", str(error))
    levels = 0  # walked iteratively: repr or json.dumps would recurse themselves
    while isinstance(value, list):
        value, levels = value[0], levels + 1
    return ("ok", levels, repr(value))


@pytest.mark.parametrize(
    "data",
    [
        deep(MAX_JSON_DEPTH),  # the deepest accepted, via orjson
        deep(MAX_JSON_DEPTH, "NaN"),  # the deepest accepted, via the stdlib fallback
        deep(MAX_JSON_DEPTH + 1),
        deep(100_000),
        deep(100_000, "NaN"),
    ],
    ids=["max", "max-fallback", "max+1", "1e5", "1e5-fallback"],
)
def test_same_result_at_any_stack_depth(data: bytes) -> None:
    top = outcome(data)
    for frames in (100, 600, 900):
        assert at_stack_depth(frames, lambda: outcome(data)) == top
    if data.count(b"[") > MAX_JSON_DEPTH:
        assert top == ("error", f"nested deeper than {MAX_JSON_DEPTH} levels")
    else:
        assert top[0] == "ok"


def test_depth_counts_only_structure_outside_strings() -> None:
    text = json.dumps({"completion": "[" * 5000 + '\\"{' * 100, "x": [[[1]]]}).encode()
    assert nesting_depth(text) == 4
    assert loads(text)["x"] == [[[1]]]


def test_deep_line_is_rejected_in_linear_time() -> None:
    start = time.perf_counter()
    with pytest.raises(JsonLineError):
        loads(deep(2_000_000))
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b'{"a": ', "the line ends early"),
        (b'{"a" 1}', "invalid JSON at character"),
    ],
)
def test_bad_lines_raise_one_line_messages(data: bytes, message: str) -> None:
    with pytest.raises(JsonLineError) as caught:
        loads(data)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_what_json_accepts_still_loads() -> None:
    assert loads(b'{"a": "\\ud83d\\ude00"}') == {"a": "😀"}  # a valid surrogate pair
    big = loads(b'{"s": 1' + b"0" * 400 + b"}")["s"]
    assert big == 10**400  # a number too big for a double: loaded, the reader rejects it as a score
    assert loads(b'{"x": NaN}')["x"] != loads(b'{"x": NaN}')["x"]  # NaN, as Python writes it
    assert loads('{"é": 1}') == {"é": 1}
    # Lone surrogate escapes are valid JSON, kept as the env wrote them (and is_unicode says so).
    assert loads(b'{"a": "x\\ud800", "n": NaN}')["a"] == "x\ud800"
    assert loads(b'["\\udfff"]') == ["\udfff"]
    assert not is_unicode("x\ud800") and is_unicode("é😀")


def test_dumps_never_fails_and_round_trips() -> None:
    for value in [{"a": "é"}, {"big": 10**400}, {"s": "\ud800x"}, [1.5, None, True]]:
        raw = dumps(value)
        raw.decode("utf-8")  # valid UTF-8 whatever the value
        assert json.loads(raw) == value
    assert dumps({"a": "é"}) == '{"a":"é"}'.encode()
    assert dumps_line([1]) == b"[1]\n"


def test_json_type_name() -> None:
    names = [json_type_name(v) for v in (None, True, 1, 1.5, "s", [1], {"a": 1})]
    assert names == ["null", "a boolean", "a number", "a number", "a string", "a list", "an object"]
    assert json_type_name({}, article=False) == "object"
    assert json_type_name([], article=False) == "list"


def test_dumps_of_a_deep_value_is_the_same_at_any_stack_depth() -> None:
    shallow: object = 1
    for _ in range(600):  # beyond orjson's 255 levels: the stdlib fallback writes it
        shallow = [shallow]
    too_deep: object = 1
    for _ in range(5000):
        too_deep = [too_deep]

    def attempt(value: object) -> str:
        try:
            return dumps(value).decode()[:3]
        except ValueError as error:
            return str(error)

    for frames in (0, 900):
        assert at_stack_depth(frames, lambda: attempt(shallow)) == "[[["
        assert at_stack_depth(frames, lambda: attempt(too_deep)) == (
            "a value nested too deep to write as JSON"
        )
