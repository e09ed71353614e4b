"""Find the card (a JSON object) in a model's completion.

This is the one place in the project where code fences, `<think>` blocks and surrounding prose are
stripped: the reward, the data scripts and the viewer all call `extract_json`.

Model output is adversarial, so every pass over it is linear in its length, and the length itself
is capped: only the first `MAX_COMPLETION_CHARS` characters are looked at (`capped=True` says the
completion was longer; the reward penalises that).

What counts (docs/hostile-inputs.md has the full rules and the reasons):

- Strict JSON is what JavaScript's `JSON.parse` accepts, because the front end reads the card with
  it. NaN, Infinity, comments, trailing commas, single quotes, Python or JS literals (True, None,
  undefined), unquoted keys and hex numbers are not strict: such text may be repaired
  (method "repaired") but never counts as "bare", "fenced", "after_think" or "in_prose".
- Reasoning is the text of `<think>...</think>` blocks (an unclosed `<think>` runs to the end).
  Only the text after the last block is the answer: a card inside a block, or before it, is not.
  Everything else outside the blocks, including text before a bare `</think>` that no `<think>`
  opened, is prose.
- The card is the first strict JSON object with a `componentType` or `props` key (else the largest
  strict object). Everything in the answer that is not the card is prose (`prose_chars` counts its
  non-whitespace characters): other objects, a second card, extra or empty code fences. Only the
  one fence that wraps the card (an opening fence line right before it, a closing fence right
  after it) is not prose.
- JSON nested deeper than `MAX_JSON_DEPTH` is not a card (method "none"). The depth is measured by
  a linear scan before anything is parsed, so the result never depends on how deep the caller's
  stack is.
- An object that was never closed and had to be closed by repair is `truncated`, whatever the
  server's finish_reason says.
- Numbers are read as `JSON.parse` reads them, without Python's limits: an integer of more than
  308 digits becomes a float (inf beyond the double range), and 1e400 is inf. Every number in
  `value` therefore converts to float without OverflowError; non-finite ones are left for the
  schema to reject.
- Strings are returned as parsed: a `\\ud800` escape (which `JSON.parse` accepts) gives a lone
  surrogate in `value`. Such a string cannot be encoded as UTF-8; the schema layer rejects it, and
  anything that writes values out must use `ensure_ascii` JSON (the default) or
  errors="surrogatepass".

Methods, in the order they are tried:

1. the whole answer is one strict JSON value, bare or in one fenced block  -> "bare" / "fenced"
2. the same, after one or more reasoning blocks                           -> "after_think"
3. a strict JSON object with prose around it                              -> "in_prose"
4. lenient recovery of a broken object: trailing commas, single quotes,
   Python/JS literals, comments, unquoted keys, hex numbers, NaN/Infinity
   (read as null), a cut-off object missing its closing quotes/brackets   -> "repaired"
5. nothing                                                                -> "none"
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from typing import Any, Literal, NamedTuple

__all__ = [
    "MAX_COMPLETION_CHARS",
    "MAX_JSON_DEPTH",
    "Extraction",
    "Method",
    "extract_json",
    "loads_strict",
    "repair_json",
]

MAX_COMPLETION_CHARS = 32_768  # a card is a few hundred characters; see docs/hostile-inputs.md
MAX_JSON_DEPTH = 64  # a card nests 3 deep (card, props, trend)

Method = Literal["bare", "fenced", "after_think", "in_prose", "repaired", "none"]


class Extraction(NamedTuple):
    """What extract_json found (immutable; a NamedTuple because one is built per completion)."""

    value: Any | None  # the parsed JSON value (a dict for a card) or None when nothing was found
    text: str | None  # the JSON source text as found (fences, <think> blocks and prose stripped)
    method: Method
    prose_chars: int  # non-whitespace characters of the answer outside the JSON and its fence
    repaired: bool  # lenient recovery was needed: not strict JSON
    truncated: bool = False  # the object was never closed; repair closed it
    capped: bool = False  # longer than MAX_COMPLETION_CHARS: only the first part was read


NOTHING = Extraction(value=None, text=None, method="none", prose_chars=0, repaired=False)
NOTHING_CAPPED = Extraction(None, None, "none", 0, False, capped=True)


# --- strict JSON ---------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_int(digits: str) -> int | float:
    # JSON.parse reads every number as a double. Python ints are exact, but past 4300 digits
    # int() refuses them and past ~308 they no longer convert to float: read those as floats.
    return int(digits) if len(digits) <= 308 else float(digits)


_STRICT = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_parse_int)
_raw_decode = _STRICT.raw_decode


def loads_strict(text: str) -> Any:
    """`JSON.parse(text)`: json.loads without NaN/Infinity and without Python's integer limits.

    Raises ValueError for anything JSON.parse would reject (nesting depth is the caller's concern:
    check it against MAX_JSON_DEPTH first)."""
    return _STRICT.decode(text)


_NO_VALUE = object()


def _strict_span(text: str, start: int, end: int) -> Any:
    """The strict JSON value spelled exactly by text[start:end], or _NO_VALUE."""
    try:
        value, stop = _raw_decode(text[start:end])
    except ValueError:
        return _NO_VALUE
    return value if stop == end - start else _NO_VALUE


# --- the entry point -----------------------------------------------------------------------------


def extract_json(text: str) -> Extraction:
    """Find the card in a completion; see the module docstring for what counts."""
    if not isinstance(text, str):
        return NOTHING
    try:
        return _extract(text)
    except RecursionError:
        # Nesting is limited to MAX_JSON_DEPTH before parsing, so this only happens when the caller
        # is itself within a few dozen frames of the recursion limit: parse on a fresh stack so the
        # result is the same as anywhere else.
        return _on_fresh_stack(text)


def _on_fresh_stack(text: str) -> Extraction:
    result: list[Extraction] = []
    worker = threading.Thread(target=lambda: result.append(_extract(text)), daemon=True)
    worker.start()
    worker.join()
    return result[0]


def _extract(text: str) -> Extraction:
    capped = len(text) > MAX_COMPLETION_CHARS
    if capped:
        text = text[:MAX_COMPLETION_CHARS]
    stripped = text.strip()
    # The common case, a bare object: few enough brackets that it cannot nest too deep.
    if (
        stripped[:1] == "{"
        and stripped[-1:] == "}"
        and stripped.count("{") + stripped.count("[") <= MAX_JSON_DEPTH
    ):
        value = _strict_span(stripped, 0, len(stripped))
        if value is not _NO_VALUE:
            return Extraction(value, stripped, "bare", 0, False, False, capped)
    return _extract_from_answer(text, capped)


def _extract_from_answer(text: str, capped: bool) -> Extraction:
    answer_start, outside_prose, had_think = _split_reasoning(text)
    if answer_start is None:  # the completion ends inside a reasoning block: no answer
        return NOTHING_CAPPED if capped else NOTHING
    answer = text[answer_start:]
    whole = _whole_array(answer.strip())
    if whole is not None:
        value, body, kind = whole
        method = "in_prose" if outside_prose else "after_think" if had_think else kind
        return Extraction(value, body, method, outside_prose, False, capped=capped)
    spans = _object_spans(answer)
    strict = _first_card(answer, spans)
    if strict is not None and _is_card_like(strict[2]):
        return _located(answer, strict, outside_prose, had_think, capped)
    # No intact card: a broken one may be recoverable. A strict object that is not a card (the
    # inner trend object of a card written with single quotes, say) is only the fallback.
    repaired = _repair_in(answer)
    if repaired is not None and (strict is None or _is_card_like(repaired[2])):
        start, end, value, truncated = repaired
        prose = outside_prose + _prose_around(answer, start, end)
        source = answer[start:end].strip()
        return Extraction(value, source, "repaired", prose, True, truncated, capped)
    if strict is not None:
        return _located(answer, strict, outside_prose, had_think, capped)
    return NOTHING_CAPPED if capped else NOTHING


def _is_card_like(value: Any) -> bool:
    return isinstance(value, dict) and ("componentType" in value or "props" in value)


def _located(
    answer: str,
    found: tuple[int, int, Any],
    outside_prose: int,
    had_think: bool,
    capped: bool,
) -> Extraction:
    start, end, value = found
    prose = outside_prose + _prose_around(answer, start, end)
    if prose:
        method: Method = "in_prose"
    elif had_think:
        method = "after_think"
    elif _fence_around(answer, start, end) is not None:
        method = "fenced"
    else:
        method = "bare"
    return Extraction(value, answer[start:end], method, prose, False, capped=capped)


# --- reasoning blocks ----------------------------------------------------------------------------

_THINK_TAG = re.compile(r"<(/?)think>", re.IGNORECASE)


def _split_reasoning(text: str) -> tuple[int | None, int, bool]:
    """(where the answer starts, prose characters outside reasoning before it, was there a block).

    The answer is the text after the last `<think>...</think>` block; None when the text ends
    inside an unclosed block. Nested `<think>` tags inside a block are part of it."""
    prose = 0
    outside_from = 0  # start of the current stretch of text outside any block
    answer_start = 0
    block_open = False
    had_block = False
    for tag in _THINK_TAG.finditer(text):
        closing = tag.group(1) == "/"
        if block_open:
            if closing:
                block_open = False
                had_block = True
                answer_start = outside_from = tag.end()
        elif not closing:
            # text between the previous block and this one is prose, not the answer
            prose += _nonspace_len(text[outside_from : tag.start()])
            block_open = True
        # a closing tag outside any block is left in the text: it is prose
    if block_open:
        return None, prose, had_block
    return answer_start, prose, had_block


# --- locating objects ----------------------------------------------------------------------------

# Inside braces: a JSON string (an unclosed one runs to the end of the text) or a bracket. The
# string pattern is the unrolled loop `"[^"\\]*(?:\\.[^"\\]*)*`, which never backtracks.
_INSIDE_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[{}\[\]]', re.DOTALL)


def _object_spans(answer: str) -> list[tuple[int, int]]:
    """The outermost balanced `{...}` spans of the answer, in order, nested at most MAX_JSON_DEPTH.

    One pass: prose (outside any brace) is skipped with str.find; inside braces, strings are
    skipped whole so braces in them do not count. An unmatched `{` (in prose, or an object cut
    off) does not hide the balanced objects after it. The stack is kept as parallel lists of
    str and int, so a text of 30,000 brackets allocates no containers for the garbage collector
    to walk."""
    kinds: list[str] = []  # the open brackets, innermost last
    starts: list[int] = []  # where each opened
    deepest: list[int] = []  # the deepest nesting inside each, itself included
    closed_starts: list[int] = []
    closed_ends: list[int] = []
    closed_depths: list[int] = []
    position = answer.find("{")
    while position != -1:
        kinds.append("{")
        starts.append(position)
        deepest.append(1)
        for token in _INSIDE_TOKEN.finditer(answer, position + 1):
            char = token.group()[0]
            if char == '"':
                continue
            if char == "{" or char == "[":
                kinds.append(char)
                starts.append(token.start())
                deepest.append(1)
                continue
            if char == "]" and kinds[-1] != "[":
                continue  # a stray "]": not JSON, left for the parser to reject
            # "}" closes the innermost "{" (a "[" opened inside it was never closed); "]" its "["
            while True:
                kind, start, depth = kinds.pop(), starts.pop(), deepest.pop()
                if deepest and deepest[-1] <= depth:
                    deepest[-1] = depth + 1
                if char == "]" or kind == "{" or not kinds:
                    break
            if char == "}" and kind == "{":
                closed_starts.append(start)
                closed_ends.append(token.end())
                closed_depths.append(depth)
            if not kinds:  # back in prose
                position = answer.find("{", token.end())
                break
        else:
            break  # the text ends inside an object
    # Keep the outermost spans: a span is inside an earlier-starting one if it ends before it.
    outermost: list[tuple[int, int]] = []
    reach = -1
    for index in sorted(range(len(closed_starts)), key=closed_starts.__getitem__):
        end = closed_ends[index]
        if end <= reach:
            continue
        reach = end  # a span too deep hides everything inside it too
        if closed_depths[index] <= MAX_JSON_DEPTH:
            outermost.append((closed_starts[index], end))
    return outermost


def _first_card(answer: str, spans: list[tuple[int, int]]) -> tuple[int, int, Any] | None:
    """The first span that is a strict JSON card, else the largest strict JSON object."""
    best: tuple[int, int, Any] | None = None
    for start, end in spans:
        value = _strict_span(answer, start, end)
        if value is _NO_VALUE:
            continue
        if _is_card_like(value):
            return start, end, value
        if best is None or end - start > best[1] - best[0]:
            best = (start, end, value)
    return best


def _whole_array(answer: str) -> tuple[Any, str, Method] | None:
    """The whole answer is one strict JSON array, bare or fenced (objects are found as spans)."""
    body, kind = answer, "bare"
    if answer.startswith("```") and answer.endswith("```") and len(answer) > 6:
        inner = answer[3:-3]
        tag = _FENCE_TAG.match(inner)
        body, kind = inner[tag.end() if tag else 0 :].strip(), "fenced"
        if "```" in body:
            return None
    if not (body[:1] == "[" and body[-1:] == "]"):
        return None
    if _max_depth(body) > MAX_JSON_DEPTH:
        return None
    value = _strict_span(body, 0, len(body))
    return None if value is _NO_VALUE else (value, body, kind)  # type: ignore[return-value]


def _max_depth(text: str) -> int:
    """The deepest bracket nesting in text, strings skipped (mismatched brackets not checked)."""
    if text.count("{") + text.count("[") <= MAX_JSON_DEPTH:
        return 0
    depth = deepest = 0
    for token in _INSIDE_TOKEN.finditer(text):
        char = token.group()[0]
        if char == "{" or char == "[":
            depth += 1
            deepest = max(deepest, depth)
        elif char != '"':
            depth = max(0, depth - 1)
    return deepest


# --- prose and fences ----------------------------------------------------------------------------

_FENCE_TAG = re.compile(r"[\w+.-]*")  # the language tag of an opening fence: ```json


def _nonspace_len(text: str) -> int:
    return len("".join(text.split()))


def _fence_around(answer: str, start: int, end: int) -> tuple[int, int] | None:
    """(opening fence start, closing fence end) when answer[start:end] is wrapped by one fence:
    "```lang" then only whitespace before it, only whitespace then "```" after it."""
    before = answer[:start].rstrip()
    if not before.endswith("```"):
        opener = before.rfind("```")
        if opener == -1:
            return None
        tag = before[opener + 3 :].strip()
        if _FENCE_TAG.fullmatch(tag) is None or "\n" in before[opener:].strip():
            return None
    else:
        opener = len(before) - 3
    after = answer[end:]
    closer = len(after) - len(after.lstrip())
    if after.startswith("```", closer):
        return opener, end + closer + 3
    # an opened fence that never closes (a cut-off answer) still only wraps the card
    return None if after.strip() else (opener, len(answer))


def _prose_around(answer: str, start: int, end: int) -> int:
    """Non-whitespace characters of the answer outside text[start:end] and its wrapping fence."""
    fence = _fence_around(answer, start, end)
    if fence is not None:
        start, end = fence
    return _nonspace_len(answer[:start]) + _nonspace_len(answer[end:])


# --- lenient recovery ----------------------------------------------------------------------------

_CARD_KEY = re.compile(r"componentType|props")


def _repair_in(answer: str) -> tuple[int, int, Any, bool] | None:
    """(start, end, value, truncated) of a broken object, repaired; start is the `{` before the
    first card key, else the first `{`."""
    key = _CARD_KEY.search(answer)
    start = answer.rfind("{", 0, key.start()) if key else -1
    if start == -1:
        start = answer.find("{")
        if start == -1:
            return None
    repaired = _repair(answer, start)
    if repaired is None:
        return None
    value, end, truncated = repaired
    return start, end, value, truncated


def repair_json(source: str) -> tuple[Any, int] | None:
    """Parse a JSON-ish object leniently: (value, characters of `source` consumed) or None.

    `source` starts at the object's `{`. Returns None when even the lenient reading fails."""
    repaired = _repair(source, 0)
    return None if repaired is None else (repaired[0], repaired[1])


# One token of JSON-ish text. Every alternative is linear: strings and comments are unrolled loops
# that run to the end of the text when unclosed, numbers have no overlapping repeats.
_REPAIR_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<string>"[^"\\]*(?:\\.?[^"\\]*)*"?|'[^'\\]*(?:\\.?[^'\\]*)*'?)
    | (?P<comment>//[^\n]*|\#[^\n]*|/\*[^*]*(?:\*+[^*/][^*]*)*(?:\*+/)?)
    | (?P<nonfinite>[-+]?(?:Infinity|NaN)(?![\w$]))
    | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]*)?))
    | (?P<word>[A-Za-z_$][\w$]*)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_WORDS = {
    "true": "true", "True": "true", "TRUE": "true",
    "false": "false", "False": "false", "FALSE": "false",
    "null": "null", "None": "null", "none": "null", "NULL": "null", "nil": "null",
    "undefined": "null",
}  # fmt: skip
_CLOSER = {"{": "}", "[": "]"}
_STRING_FIX = re.compile(r'\\(u[0-9a-fA-F]{4}|.)|"|[\x00-\x1f]', re.DOTALL)
_JSON_ESCAPES = frozenset('"\\/bfnrtu')
_NO_COMMA_AFTER = frozenset(",{[")  # a repeated or leading comma is dropped
_MAX_FALLBACKS = 4


def _repair(source: str, start: int) -> tuple[Any, int, bool] | None:
    """(value, end, truncated) for the JSON-ish object at source[start] ("{"), or None.

    Rewrites the tokens as strict JSON (quotes, literals, numbers; comments and trailing commas
    dropped), stops where the object closes, and closes it if the text ends first."""
    out: list[str] = []
    stack: list[str] = []
    # the last few commas, where a cut-off object can be cut if closing it at the end fails
    commas: deque[tuple[int, str]] = deque(maxlen=_MAX_FALLBACKS)
    end = len(source)
    text_end = len(source.rstrip())
    for token in _REPAIR_TOKEN.finditer(source, start):
        kind = token.lastgroup
        piece = token.group()
        if kind == "space" or kind == "comment":
            continue
        if kind == "string":
            out.append(_json_string(piece))
        elif kind == "number":
            out.append(_json_number(piece))
        elif kind == "nonfinite":
            out.append("null")
        elif kind == "word":
            literal = _WORDS.get(piece)
            if literal is None and token.end() == text_end:
                literal = _literal_prefix(piece)  # "tr" cut off at the very end means true
            out.append(literal or f'"{piece}"')  # an unquoted key or word: letters, digits, _ $
        elif piece == "{" or piece == "[":
            stack.append(piece)
            if len(stack) > MAX_JSON_DEPTH:
                return None
            out.append(piece)
        elif piece == "}" or piece == "]":
            if out and out[-1] == ",":
                out.pop()
            if stack:
                out.append(_CLOSER[stack.pop()])
            if not stack:
                end = token.end()
                break
        elif piece == ",":
            if out and out[-1] not in _NO_COMMA_AFTER:
                commas.append((len(out), "".join(stack)))
                out.append(piece)
        else:
            out.append(piece)
    if not stack:
        value = _loads_or_none("".join(out))
        return None if value is _NO_VALUE else (value, end, False)
    # Cut off: close what is open; if that does not parse, back off to earlier commas.
    for cut, open_stack in [(len(out), "".join(stack)), *reversed(commas)]:
        value = _loads_or_none(_close(out[:cut], open_stack))
        if value is not _NO_VALUE:
            return value, end, True
    return None


def _json_string(piece: str) -> str:
    """A quoted string token (either quote, maybe never closed) as a JSON string literal."""
    quote = piece[0]
    if "\\" not in piece:
        if quote == '"' and len(piece) > 1 and piece[-1] == '"' and piece.isprintable():
            return piece  # already a JSON string
        closed = len(piece) > 1 and piece[-1] == quote
        body = piece[1:-1] if closed else piece[1:]
    else:
        closed = (
            len(piece) > 1 and piece[-1] == quote and _trailing_backslashes(piece[:-1]) % 2 == 0
        )
        body = piece[1:-1] if closed else piece[1:]
        if _trailing_backslashes(body) % 2 == 1:
            body = body[:-1]  # an escape cut off at the very end
    return '"' + _STRING_FIX.sub(_fix_string_part, body) + '"'


def _trailing_backslashes(text: str) -> int:
    return len(text) - len(text.rstrip("\\"))


def _fix_string_part(match: re.Match[str]) -> str:
    """One escape, quote or control character of a lenient string, as JSON."""
    escaped = match.group(1)
    if escaped is None:
        char = match.group()
        return '\\"' if char == '"' else f"\\u{ord(char):04x}"
    if escaped[0] in _JSON_ESCAPES and (escaped[0] != "u" or len(escaped) == 5):
        return match.group()
    if escaped == "'":
        return "'"
    # an escape JSON does not have: keep the backslash and the character as written
    first = escaped[0]
    rest = escaped[1:]
    return "\\\\" + (f"\\u{ord(first):04x}" if first < " " else first) + rest


def _json_number(piece: str) -> str:
    """A lenient number token (+5, .5, 5., 0x1F, 007, a cut-off 1e) as a JSON number."""
    sign = "-" if piece[0] == "-" else ""
    digits = piece.lstrip("+-")
    if digits[:2] in ("0x", "0X"):
        return sign + str(int(digits, 16)) if len(digits) <= 258 else sign + "1e400"
    digits = digits.rstrip("eE+-").rstrip(".")
    whole, dot, rest = digits.partition(".")
    whole = whole.lstrip("0") or "0"
    if rest[:1] in ("e", "E") or (dot and not rest):
        dot = ""  # "5.e3" / "5."
    return sign + whole + (dot + rest if dot else rest)


def _literal_prefix(token: str) -> str | None:
    for literal in ("true", "false", "null"):
        if literal.startswith(token.lower()):
            return literal
    return None


def _close(pieces: list[str], open_stack: str) -> str:
    """Close a cut-off object: drop a dangling comma or key, then close the open brackets."""
    pieces = list(pieces)
    if pieces and pieces[-1] == ",":
        pieces.pop()
    if open_stack and open_stack[-1] == "{":
        if pieces and pieces[-1] == ":":  # {"a": 1, "b":
            pieces.pop()
            if pieces:
                pieces.pop()
        elif len(pieces) >= 2 and pieces[-1][0] == '"' and pieces[-2] in (",", "{"):
            pieces.pop()  # {"a": 1, "b"  -- a key without its value
        if pieces and pieces[-1] == ",":
            pieces.pop()
    return "".join(pieces) + "".join(_CLOSER[opener] for opener in reversed(open_stack))


def _loads_or_none(text: str) -> Any:
    try:
        return _STRICT.decode(text)
    except ValueError:
        return _NO_VALUE
