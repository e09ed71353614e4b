"""Find the JSON object in a model's completion.

This is the one place in the project where code fences, `<think>` blocks and surrounding prose are
stripped: the reward, the data scripts and the viewer all call `extract_json`.

Order of attempts, cheapest first (most completions are a bare object or one fenced block, so
they cost one `str.strip` and one `json.loads`):

1. the whole answer is a bare JSON value, or exactly one fenced block      -> "bare" / "fenced"
2. the same, once `<think>...</think>` is removed                           -> "after_think"
3. a fenced block or a balanced `{...}` somewhere inside prose              -> "in_prose"
4. lenient recovery of a broken object: trailing commas, single quotes,
   Python True/False/None, // and # comments, unquoted keys, a cut-off
   object missing its closing quotes/brackets                               -> "repaired"
5. nothing                                                                  -> "none"
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Extraction", "extract_json"]


@dataclass(frozen=True, slots=True)
class Extraction:
    value: Any | None  # parsed JSON value (a dict for a card) or None when nothing was found
    text: str | None  # the JSON source text as found (fences / <think> / prose stripped)
    method: str  # "fenced" | "bare" | "after_think" | "in_prose" | "repaired" | "none"
    prose_chars: int  # non-whitespace chars outside the JSON (outside any <think>…</think> too)
    repaired: bool  # lenient recovery was needed


NOTHING = Extraction(value=None, text=None, method="none", prose_chars=0, repaired=False)

# A frozen dataclass's generated __init__ costs ~0.6 µs (object.__setattr__ per field); the slot
# descriptors set the same fields in half that. Used on the hot path: one per completion.
_new_object = object.__new__
_SET_FIELDS = tuple(
    getattr(Extraction, name).__set__
    for name in ("value", "text", "method", "prose_chars", "repaired")
)


def _extraction(
    value: Any, text: str | None, method: str, prose: int, repaired: bool
) -> Extraction:
    """Extraction(value, text, method, prose, repaired), built without the generated __init__."""
    found = _new_object(Extraction)
    set_value, set_text, set_method, set_prose, set_repaired = _SET_FIELDS
    set_value(found, value)
    set_text(found, text)
    set_method(found, method)
    set_prose(found, prose)
    set_repaired(found, repaired)
    return found


_loads = json.loads
_decoder = json.JSONDecoder()  # the same settings as the one json.loads uses
# json.loads = BOM check + whitespace regexes + this scanner. For text that starts with "{"/"[" and
# ends with "}"/"]" the extras are no-ops, so the bare case calls the scanner directly: the value
# must end exactly at the last character (anything after it would be json.loads' "Extra data").
_scan_once = _decoder.scan_once
# json raises RecursionError, not ValueError, on very deeply nested input ("[[[[...").
_PARSE_ERRORS = (ValueError, RecursionError)
_SCAN_ERRORS = (StopIteration, *_PARSE_ERRORS)  # StopIteration: no JSON value at all

# A whole answer that is one fenced block: ```json\n...\n``` (any or no language tag).
_ONLY_FENCE = re.compile(r"```[\w+.-]*[^\S\n]*\n?(.*?)\n?[^\S\n]*```", re.DOTALL)
_ANY_FENCE = re.compile(r"```[\w+.-]*[^\S\n]*\n?(.*?)```", re.DOTALL)
_FENCE_MARKER = re.compile(r"```[\w+.-]*")
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_CARD_HINT = re.compile(r"""["']?(?:componentType|props)["']?\s*:""")

_MAX_OBJECT_STARTS = 64  # bound the `{` positions tried inside long prose


def _nonspace_len(text: str) -> int:
    return len("".join(text.split()))


def _prose_len(text: str) -> int:
    """Non-whitespace characters of prose; fence markers are allowed wrapping, not prose."""
    if "```" in text:
        text = _FENCE_MARKER.sub("", text)
    return _nonspace_len(text)


def _whole(text: str) -> tuple[Any, str, str] | None:
    """The answer is exactly one JSON value, bare or in one fence: (value, json_text, method)."""
    if not text:
        return None
    first, last = text[0], text[-1]
    if (first == "{" and last == "}") or (first == "[" and last == "]"):
        value = _bare_value(text)
        return None if value is _NO_VALUE else (value, text, "bare")
    if first == "`" and text.startswith("```") and text.endswith("```") and len(text) > 6:
        match = _ONLY_FENCE.fullmatch(text)
        if match is not None:
            body = match.group(1).strip()
            if "```" not in body:
                try:
                    return _loads(body), body, "fenced"
                except _PARSE_ERRORS:
                    return None
    return None


def extract_json(text: str) -> Extraction:
    """Find the JSON object in a completion; see the module docstring for the order of attempts."""
    if not isinstance(text, str):
        return NOTHING
    stripped = text.strip()
    if stripped[:1] == "{" and stripped[-1:] == "}":  # the common case, a bare object
        value = _bare_value(stripped)
        if value is not _NO_VALUE:
            return _extraction(value, stripped, "bare", 0, False)
        return _extract_slow(text)
    found = _whole(stripped)
    if found is not None:
        return _extraction(found[0], found[1], found[2], 0, False)
    return _extract_slow(text)


_NO_VALUE = object()


def _bare_value(text: str) -> Any:
    """json.loads(text) for text that starts with "{"/"[" and ends with "}"/"]"; _NO_VALUE if it
    is not valid JSON."""
    try:
        value, end = _scan_once(text, 0)
    except _SCAN_ERRORS:
        return _NO_VALUE
    return value if end == len(text) else _NO_VALUE


def _visible_answer(text: str) -> tuple[str, bool] | None:
    """The text outside <think> blocks, and whether there was one; None if thinking never ended."""
    if "think>" not in text.lower():
        return text, False
    visible = _THINK_BLOCK.sub(" ", text)
    close = _THINK_CLOSE.search(visible)
    if close is not None:  # the template opened <think> in the prompt: the reply starts inside it
        visible = visible[close.end() :]
    if _THINK_OPEN.search(visible) is not None:  # opened and never closed: no answer was given
        return None
    return visible, True


def _extract_slow(text: str) -> Extraction:
    seen = _visible_answer(text)
    if seen is None:
        return NOTHING
    visible, had_think = seen
    visible = visible.strip()
    if had_think:
        found = _whole(visible)
        if found is not None:
            return Extraction(found[0], found[1], "after_think", 0, False)
    clean_method = "after_think" if had_think else None
    fenced = _from_fences(visible, clean_method)
    if fenced is not None:
        return fenced
    found = _from_objects(visible, clean_method)
    if found is not None and _is_card_like(found.value):
        return found
    # No intact card: a broken one may still be recoverable (a clean fragment such as the inner
    # trend object of a card with single quotes is only the fallback).
    repaired = _from_repair(visible)
    if repaired is not None and (found is None or _is_card_like(repaired.value)):
        return repaired
    return found or repaired or NOTHING


def _located(
    value: Any, visible: str, start: int, end: int, body: str, clean: str | None, kind: str
) -> Extraction:
    prose = _prose_len(visible[:start]) + _prose_len(visible[end:])
    method = "in_prose" if prose else (clean or kind)
    return Extraction(value, body, method, prose, False)


def _is_card_like(value: Any) -> bool:
    return isinstance(value, dict) and ("componentType" in value or "props" in value)


def _from_fences(visible: str, clean: str | None) -> Extraction | None:
    """The first fenced block holding a JSON object (a card-looking one preferred)."""
    if "```" not in visible:
        return None
    best: Extraction | None = None
    for match in _ANY_FENCE.finditer(visible):
        body = match.group(1).strip()
        if not body.startswith(("{", "[")):
            continue
        try:
            value = _loads(body)
        except _PARSE_ERRORS:
            continue
        found = _located(value, visible, match.start(), match.end(), body, clean, "fenced")
        if _is_card_like(value):
            return found
        best = best or found
    return best


def _from_objects(visible: str, clean: str | None) -> Extraction | None:
    """A balanced JSON object inside prose (the first card-looking one, else the largest)."""
    best: tuple[int, int, Any] | None = None
    position = visible.find("{")
    tries = 0
    while position != -1 and tries < _MAX_OBJECT_STARTS:
        tries += 1
        try:
            value, end = _decoder.raw_decode(visible, position)
        except _PARSE_ERRORS:
            position = visible.find("{", position + 1)
            continue
        if isinstance(value, dict):
            if _is_card_like(value):
                best = (position, end, value)
                break
            if best is None or end - position > best[1] - best[0]:
                best = (position, end, value)
        position = visible.find("{", end)
    if best is None:
        return None
    start, end, value = best
    return _located(value, visible, start, end, visible[start:end], clean, "bare")


def _from_repair(visible: str) -> Extraction | None:
    hint = _CARD_HINT.search(visible)
    start = visible.rfind("{", 0, hint.start()) if hint else visible.find("{")
    if start == -1:
        start = visible.find("{")
        if start == -1:
            return None
    repaired = repair_json(visible[start:])
    if repaired is None:
        return None
    value, consumed = repaired
    end = start + consumed
    prose = _prose_len(visible[:start]) + _prose_len(visible[end:])
    return Extraction(value, visible[start:end].strip(), "repaired", prose, True)


# --- lenient recovery -------------------------------------------------------------------------

_LITERALS = {
    "true": "true", "True": "true", "TRUE": "true",
    "false": "false", "False": "false", "FALSE": "false",
    "null": "null", "None": "null", "none": "null", "NULL": "null", "nil": "null",
    "undefined": "null", "NaN": "NaN", "Infinity": "Infinity",
}  # fmt: skip
_CLOSER = {"{": "}", "[": "]"}
_IDENT_START = re.compile(r"[A-Za-z_$]")
_IDENT = re.compile(r"[A-Za-z0-9_$]+")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_DANGLING_KEY = re.compile(r',?\s*"(?:[^"\\]|\\.)*"\s*:?\s*$')
_DANGLING_NUMBER = re.compile(r"(?<=\d)[-+.eE]+$")
_MAX_FALLBACKS = 4


def repair_json(source: str) -> tuple[Any, int] | None:
    """Parse a JSON-ish object leniently: (value, characters of `source` consumed) or None.

    `source` starts at the object's `{`. Returns None when even the lenient reading fails.
    """
    out: list[str] = []
    stack: list[str] = []
    commas: list[tuple[int, tuple[str, ...]]] = []  # fallback cut points for cut-off objects
    quote: str | None = None
    i, n = 0, len(source)
    consumed = n
    while i < n:
        char = source[i]
        if quote is not None:
            if char == "\\":
                following = source[i + 1 : i + 2]
                if quote == "'" and following == "'":
                    out.append("'")
                elif following:
                    out.append(char + following)
                i += 2
                continue
            if char == quote:
                out.append('"')
                quote = None
            elif char == '"':
                out.append('\\"')
            else:
                out.append(_ESCAPES.get(char, char))
            i += 1
            continue
        if char in "\"'":
            quote = char
            out.append('"')
        elif char in "{[":
            stack.append(char)
            out.append(char)
        elif char in "}]":
            _drop_trailing_comma(out)
            if stack:
                out.append(_CLOSER[stack.pop()])
            if not stack:
                consumed = i + 1
                break
        elif char == ",":
            commas.append((len(out), tuple(stack)))
            out.append(char)
        elif (char == "/" and source.startswith("//", i)) or char == "#":
            newline = source.find("\n", i)
            i = n if newline == -1 else newline
            continue
        elif char == "/" and source.startswith("/*", i):
            close = source.find("*/", i + 2)
            i = n if close == -1 else close + 2
            continue
        elif _IDENT_START.match(char):
            word = _IDENT.match(source, i)
            token = word.group(0) if word else char
            out.append(_LITERALS.get(token) or _literal_prefix(token, source, i) or f'"{token}"')
            i += len(token)
            continue
        else:
            out.append(char)
        i += 1
    else:
        if quote is not None:  # cut off inside a string: keep what was written
            out.append('"')
    if not stack:
        return _try_loads("".join(out), consumed)
    # Cut off: close what is open; if that does not parse, back off to earlier commas.
    for cut, open_stack in [(len(out), tuple(stack)), *reversed(commas[-_MAX_FALLBACKS:])]:
        result = _try_loads(_close("".join(out[:cut]), open_stack), consumed)
        if result is not None:
            return result
    return None


def _literal_prefix(token: str, source: str, index: int) -> str | None:
    """A literal cut off by the end of the text ("tru" at the very end means true)."""
    if source[index + len(token) :].strip():
        return None
    for literal in ("true", "false", "null"):
        if literal.startswith(token.lower()):
            return literal
    return None


def _drop_trailing_comma(out: list[str]) -> None:
    index = len(out) - 1
    while index >= 0 and out[index].isspace():
        index -= 1
    if index >= 0 and out[index] == ",":
        del out[index]


def _close(text: str, open_stack: tuple[str, ...]) -> str:
    """Close a cut-off object: drop a dangling key or half number, then the open brackets."""
    text = text.rstrip().rstrip(",").rstrip()
    if open_stack and open_stack[-1] == "{":
        text = _drop_dangling_key(text)
    text = _DANGLING_NUMBER.sub("", text)
    text = text.rstrip().rstrip(",")
    return text + "".join(_CLOSER[opener] for opener in reversed(open_stack))


def _drop_dangling_key(text: str) -> str:
    """`{"a": 1, "b"` or `{"a": 1, "b":` -> `{"a": 1`; a complete `"b": "x"` pair is kept."""
    if text.endswith(":"):
        return _DANGLING_KEY.sub("", text)
    if text.endswith('"'):
        match = _DANGLING_KEY.search(text)
        if match is not None:
            before = text[: match.start()].rstrip()
            # the trailing string is a key (not a value) when it follows "{" or ","
            if before.endswith("{") or match.group(0).lstrip().startswith(","):
                return text[: match.start()]
    return text


def _try_loads(text: str, consumed: int) -> tuple[Any, int] | None:
    try:
        return _loads(text), consumed
    except _PARSE_ERRORS:
        return None
