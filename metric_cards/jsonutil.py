"""JSON in and out for the package's readers and writers: one loader, one dumper, one type name.

* `loads` parses one JSON document (a JSONL line) and raises `JsonLineError`, a ValueError with a
  one-line message, for anything unusable: invalid UTF-8, invalid JSON, or nesting deeper than
  `MAX_JSON_DEPTH`. A lone surrogate escape (``"\\ud800"``) is valid JSON and is kept: the env
  scores such a completion and writes it escaped, so every reader gives it the same text (use
  `is_unicode` where a text must be encodable, e.g. training data). The result never depends on
  the caller's stack depth: orjson parses without Python recursion, and the stdlib fallback (for
  NaN/Infinity, integers beyond a double and lone surrogates, which orjson refuses) runs in a
  worker thread of its own on input already checked to be shallow.
* `dumps` writes compact UTF-8 JSON (orjson when installed); it never fails on big integers or
  lone surrogates (those are written as ``\\uXXXX`` escapes). A value nested too deep to write
  (about 990 levels) raises ValueError, whatever the caller's stack: the stdlib fallback runs in
  the same worker thread as the loader's.
* `json_type_name` names a parsed value's JSON type for messages ("an object", "a list", ...).

orjson is optional (it is several times faster than json on these files); the results are the
same without it. This module is the one place it is imported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - exercised only where orjson is not installed
    orjson = None  # type: ignore[assignment]

__all__ = [
    "MAX_JSON_DEPTH",
    "JsonLineError",
    "dumps",
    "dumps_line",
    "is_unicode",
    "json_type_name",
    "loads",
    "nesting_depth",
    "orjson",
]

# Deeper documents are rejected. orjson's own limit is 1024; this one is lower so that the stdlib
# fallback (one Python frame per level, recursion limit 1000) can always parse what is accepted.
MAX_JSON_DEPTH = 512

UTF8_BOM = b"\xef\xbb\xbf"


class JsonLineError(ValueError):
    """A line that cannot be used as JSON; the message is one line and says why."""


def json_type_name(value: Any, *, article: bool = True) -> str:
    """The JSON type of a parsed value: "an object", "a list", "a string", "a number", ...

    ``article=False`` gives the bare name ("object", "list", ...).
    """
    if value is None:
        name = "null"
    elif isinstance(value, bool):
        name = "boolean"
    elif isinstance(value, (int, float)):
        name = "number"
    elif isinstance(value, str):
        name = "string"
    elif isinstance(value, (list, tuple)):
        name = "list"
    elif isinstance(value, dict):
        name = "object"
    else:
        name = type(value).__name__
    if not article or name == "null":
        return name
    return ("an " if name[0] in "aeiou" else "a ") + name


# --- loading -----------------------------------------------------------------------------------

_STRUCTURAL = re.compile(rb'[\[\]{}"\\]')
_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def nesting_depth(data: bytes, stop_above: int = MAX_JSON_DEPTH) -> int:
    """Deepest [ / { nesting of a JSON text, outside strings; stops counting above `stop_above`.

    One linear pass over the structural characters (no recursion, no backtracking).
    """
    depth = deepest = 0
    in_string = False
    skip = -1  # position of a character escaped by a backslash
    for match in _STRUCTURAL.finditer(data):
        at = match.start()
        if at == skip:
            continue
        char = data[at]
        if in_string:
            if char == _BACKSLASH:
                skip = at + 1
            elif char == _QUOTE:
                in_string = False
        elif char == _QUOTE:
            in_string = True
        elif char in _OPENERS:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_above:
                    break
        elif char in _CLOSERS:
            depth -= 1
    return deepest


def _check_depth(data: bytes) -> None:
    # Counting brackets is a C-speed scan; only a line with many of them needs the exact pass.
    many = data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH
    if many and nesting_depth(data) > MAX_JSON_DEPTH:
        raise JsonLineError(f"nested deeper than {MAX_JSON_DEPTH} levels")


_fallback_pool: ThreadPoolExecutor | None = None


def _in_worker(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # The json module recurses once per nesting level against the thread's recursion limit: in a
    # worker thread that starts from an empty stack the outcome is the same for every caller.
    global _fallback_pool
    if _fallback_pool is None:
        _fallback_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="json-fallback")
    return _fallback_pool.submit(function, *args, **kwargs).result()


def _stdlib_loads(data: bytes) -> Any:
    return _in_worker(json.loads, data)


def is_unicode(text: str) -> bool:
    """Whether `text` is valid Unicode (no lone surrogate), i.e. can be written as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _describe(error: ValueError, data: bytes) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "not valid UTF-8"
    message = getattr(error, "msg", None) or str(error)
    if "utf-8" in message.lower():
        return "not valid UTF-8"
    position = getattr(error, "pos", None)
    if not isinstance(position, int):
        return f"invalid JSON: {message}"
    if position >= len(data.rstrip()):  # the usual sign of a file cut off mid-write
        return f"invalid JSON: the line ends early, cut off? ({message})"
    return f"invalid JSON at character {position + 1}: {message}"


def loads(data: bytes | str) -> Any:
    """Parse one JSON document; raise JsonLineError with a one-line reason if it is unusable."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")  # json.loads on bytes decodes them back
    _check_depth(data)
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as error:
            first_error: ValueError = error
    else:  # pragma: no cover
        first_error = JsonLineError("invalid JSON")
    # orjson refuses NaN/Infinity (Python's json.dumps writes them), integers too big for a double
    # and lone surrogate escapes; json accepts all three.
    try:
        return _stdlib_loads(data)
    except RecursionError:  # pragma: no cover - ruled out by _check_depth
        raise JsonLineError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as error:
        reason = _describe(first_error if orjson is not None else error, data)
        raise JsonLineError(reason) from None


# --- dumping -----------------------------------------------------------------------------------


def _stdlib_dumps(value: Any, **options: Any) -> str:
    try:
        return str(_in_worker(json.dumps, value, separators=(",", ":"), **options))
    except RecursionError:
        raise ValueError("a value nested too deep to write as JSON") from None


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes, non-ASCII kept as is (except lone surrogates, escaped)."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:  # an int beyond 64 bits, a lone surrogate, > 255 levels: json's turn
            pass
    text = _stdlib_dumps(value, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _stdlib_dumps(value, ensure_ascii=True).encode("ascii")


def dumps_line(value: Any) -> bytes:
    """One JSONL row: `dumps(value)` and a newline."""
    return dumps(value) + b"\n"


def dumps_sorted(value: Any) -> bytes:
    """`dumps` with object keys sorted: a canonical form for comparing values."""
    if orjson is not None:
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            pass
    return _stdlib_dumps(value, ensure_ascii=True, sort_keys=True).encode("ascii")
