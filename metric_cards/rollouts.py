"""One streaming reader for rollout files, in our format and the original environment's.

The contract is docs/rollout-format.md. A rollout file has one JSON line per group of K
completions; `RolloutReader` reads it line by line (memory stays flat however big the file is)
and yields one `Rollout` per completion, or one `RolloutGroup` per line with `groups()`.

    reader = RolloutReader("artifacts/metric_rollouts.jsonl")
    for rollout in reader:
        print(rollout.line_number, rollout.score, rollout.completion[:40])
    print(reader.stats.malformed_lines, "malformed lines")

Formats:

* ``metric_card`` (ours): structured role/content messages, per-rollout score/layers/problems/
  finish_reason in ``metric_card.rollouts[i]`` and the catalog request in ``metric_card.request``.
  Scores are taken from the file, never recomputed.
* ``legacy`` (the original environment): each rollout's ``messages`` is one decoded string with
  Llama-3 headers (or a one-element list of a user dict holding that string); it is split into
  system/user/assistant, and the request is parsed back from the prompt. Its scores are random,
  so ``rescore=True`` recomputes them with `metric_cards.reward.score_completion`.
* ``plain``: structured messages without our ``metric_card`` key (another atroposlib env);
  scores come from ``scores``, layers are unknown.

Malformed lines (bad JSON, wrong shapes) never raise: each becomes an `Issue` with its line
number, is counted in `ReadStats`, and is passed to the ``on_issue`` callback.

Speed: ``tokens`` and ``masks`` are most of a line's bytes (about 80% for the env's files) and
the reader has no use for them, so `_drop_bulky_arrays` cuts those arrays out of the raw bytes
before parsing (a validated byte scan, falling back to a full parse if anything looks odd), and
the rest is parsed with `metric_cards.jsonutil.loads` (orjson when installed).

Hostile files: every line is parsed by the same stack-independent loader (nesting deeper than
`MAX_JSON_DEPTH`, lone surrogate escapes and invalid UTF-8 make the line malformed); a score must
be a finite number in [0, 1] (our format) or in [-1, 1] (legacy/plain files, whose scores are
not ours: the original environment's are random in [-0.5, 0.5]), else the rollout is malformed;
layer values outside [0, 1] are dropped with a warning. A UTF-8 byte order mark before the first
line is ignored. Splitting a legacy conversation is one linear pass, whatever the text.
"""

from __future__ import annotations

import bisect
import contextlib
import gzip
import math
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from metric_cards.catalog import Request, parse_request
from metric_cards.jsonutil import UTF8_BOM, json_type_name, loads

__all__ = [
    "FORMAT_LEGACY",
    "FORMAT_METRIC_CARD",
    "FORMAT_PLAIN",
    "LARGE_FILE_BYTES",
    "Issue",
    "ReadStats",
    "Rollout",
    "RolloutFileError",
    "RolloutGroup",
    "RolloutReader",
    "SCORE_RANGE",
    "SCORE_RANGE_FOREIGN",
    "check_input_file",
    "read_rollouts",
    "split_llama3",
]

FORMAT_METRIC_CARD = "metric_card"
FORMAT_LEGACY = "legacy"
FORMAT_PLAIN = "plain"

_GZIP_MAGIC = b"\x1f\x8b"

# What a score may be: ours are the reward's, in [0, 1]; scores from files we did not score
# (legacy: random in [-0.5, 0.5]; another env's) only need to be in [-1, 1].
SCORE_RANGE = (0.0, 1.0)
SCORE_RANGE_FOREIGN = (-1.0, 1.0)

# Files at least this big get a progress bar even when stderr is not a terminal.
LARGE_FILE_BYTES = 256 * 1024 * 1024


class RolloutFileError(Exception):
    """The input cannot be read at all (missing, a directory, empty): a user mistake."""


@dataclass(frozen=True, slots=True)
class Issue:
    """Something wrong with one line (``rollout_index`` None) or one rollout of it."""

    line_number: int
    message: str
    rollout_index: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line_number}"
        if self.rollout_index is not None:
            where += f", rollout {self.rollout_index}"
        return f"{where}: {self.message}"


@dataclass(slots=True)
class Rollout:
    """One completion of one group, whatever the file's format."""

    group_index: int  # 0-based, counting the well-formed groups of the file
    rollout_index: int  # position within the group (0..K-1)
    line_number: int  # 1-based line of the file
    prompt: str  # the (last) user message
    completion: str  # the (last) assistant message, raw: fences, think blocks and all
    system: str | None  # the system message, if there was one
    score: float | None  # the reward (our format: metric_card.rollouts[i].score)
    layers: dict[str, float] | None  # validity/schema/semantic/formatting; None if unknown
    problems: list[str]
    finish_reason: str | None  # "stop", "length" or None (unknown)
    request: Request | None  # what the prompt asked for; None for a non-catalog prompt
    messages: list[dict[str, str]]  # the whole conversation as role/content dicts
    format: str  # FORMAT_METRIC_CARD, FORMAT_LEGACY or FORMAT_PLAIN
    base_score: float | None = None  # scorer's score before reward adjustments (our format)
    completion_tokens: int | None = None
    adjustments: dict[str, float] = field(default_factory=dict)
    rescored: bool = False  # score/layers/problems were recomputed by the reader
    canaries: list[str] = field(default_factory=list)  # hacking canaries raised (reward.CANARIES)

    @property
    def source(self) -> str:
        """A stable reference to this rollout: ``LINE:INDEX``."""
        return f"{self.line_number}:{self.rollout_index}"


@dataclass(slots=True)
class RolloutGroup:
    """The rollouts of one line (one prompt). Rollouts that were malformed are left out."""

    group_index: int
    line_number: int
    format: str
    request: Request | None
    rollouts: list[Rollout]
    size: int  # K as written in the file, malformed rollouts included


@dataclass(slots=True)
class ReadStats:
    """Running counts of one read; final once the iteration is exhausted."""

    path: str
    bytes_total: int
    bytes_read: int = 0
    lines: int = 0
    blank_lines: int = 0
    groups: int = 0
    rollouts: int = 0
    malformed_lines: int = 0
    malformed_rollouts: int = 0
    warnings: int = 0  # oddities that did not cost a rollout (e.g. a malformed request)
    rescored: int = 0
    issue_count: int = 0
    issues: list[Issue] = field(default_factory=list)  # the first `max_issues` only
    formats: Counter[str] = field(default_factory=Counter)  # groups per format

    @property
    def first_issue(self) -> Issue | None:
        return self.issues[0] if self.issues else None


def check_input_file(path: str | os.PathLike[str]) -> Path:
    """Raise RolloutFileError with a readable message unless `path` is a non-empty file."""
    p = Path(path)
    if not p.exists():
        raise RolloutFileError(f"input file not found: {p}")
    if p.is_dir():
        raise RolloutFileError(f"input is a directory, not a rollout file: {p}")
    if not os.access(p, os.R_OK):
        raise RolloutFileError(f"input file is not readable: {p}")
    if p.stat().st_size == 0:
        raise RolloutFileError(f"input file is empty: {p}")
    return p


# --- fast path: cut the token arrays out before parsing -------------------------------------

# Top-level keys whose values are big arrays of numbers the reader never looks at.
_BULKY_KEYS = (b'"tokens"', b'"masks"', b'"advantages"', b'"ref_logprobs"', b'"inference_logprobs"')
_WS = frozenset(b" \t\r\n")
_OPEN_BRACE, _COMMA, _COLON, _OPEN_BRACKET = ord("{"), ord(","), ord(":"), ord("[")


def _bulky_value_span(line: bytes, key_at: int, key_len: int) -> tuple[int, int] | None:
    """(start, end) of the value of the key found at `key_at`, if it is a skippable list of lists.

    Only a match preceded by "{" or "," and followed by ":" is an object key (the text of a
    message cannot contain `"tokens"` unescaped). The value must start with "[" and run to the
    first "]]" with no quote in between, i.e. nested lists of numbers: the first "]]" of a list
    of lists of numbers is its end. Anything else returns None and the line is parsed whole.
    """
    i = key_at - 1
    while i >= 0 and line[i] in _WS:
        i -= 1
    if i < 0 or line[i] not in (_OPEN_BRACE, _COMMA):
        return None
    n = len(line)
    j = key_at + key_len
    while j < n and line[j] in _WS:
        j += 1
    if j >= n or line[j] != _COLON:
        return None
    j += 1
    while j < n and line[j] in _WS:
        j += 1
    if j >= n or line[j] != _OPEN_BRACKET:
        return None  # null or something unexpected: leave it to the parser
    end = line.find(b"]]", j)
    if end < 0 or line.find(b'"', j, end) >= 0:
        return None
    return j, end + 2


def _drop_bulky_arrays(line: bytes) -> bytes:
    """The line with the token/mask (and logprob) arrays replaced by null, when that is safe."""
    spans: list[tuple[int, int]] = []  # sorted, non-overlapping
    for key in _BULKY_KEYS:
        span = _find_bulky_value(line, key, spans)
        if span is not None:
            bisect.insort(spans, span)
    if not spans:
        return line
    parts: list[bytes] = []
    pos = 0
    for start, end in spans:
        parts.append(line[pos:start])
        parts.append(b"null")
        pos = end
    parts.append(line[pos:])
    return b"".join(parts)


def _find_bulky_value(
    line: bytes, key: bytes, spans: list[tuple[int, int]]
) -> tuple[int, int] | None:
    # Search only between the arrays already found: rescanning them for every key would read
    # each line several times over (they are ~80% of its bytes).
    start = 0
    for gap_end, next_start in [*spans, (len(line), len(line))]:
        at = line.find(key, start, gap_end)
        while at >= 0:
            span = _bulky_value_span(line, at, len(key))
            if span is not None:
                return span
            at = line.find(key, at + 1, gap_end)
        start = next_start
    return None


def _parse_line(line: bytes) -> Any:
    """Parse one line, skipping the bulky arrays when possible. Raises JsonLineError if invalid."""
    trimmed = _drop_bulky_arrays(line)
    if trimmed is not line:
        try:
            return loads(trimmed)
        except ValueError:
            pass  # the cut went wrong somehow (or the line is bad): parse the original line
    return loads(line)


# --- legacy conversations ---------------------------------------------------------------------

_HEADER_START = "<|start_header_id|>"
_HEADER_END = "<|end_header_id|>"
_END_OF_TURN = ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>")
_PADDING = "<|finetune_right_pad_id|>"


def _headers(text: str) -> list[tuple[int, int, str]]:
    """(start, end, role) of each `<|start_header_id|>ROLE<|end_header_id|>`, in one pass.

    A header's role runs to the first end marker and holds no newline. The next end marker and
    the next newline are found once and reused until a start passes them, so the scan is linear
    even on a line of nothing but start markers.
    """
    found: list[tuple[int, int, str]] = []
    next_end = next_newline = -2  # -2: not searched yet; -1: none left
    at = text.find(_HEADER_START)
    while at >= 0:
        role_start = at + len(_HEADER_START)
        if next_end != -1 and next_end < role_start:
            next_end = text.find(_HEADER_END, role_start)
        if next_end == -1:
            break  # no end marker left: no more headers
        if next_newline != -1 and next_newline < role_start:
            next_newline = text.find("\n", role_start)
        if next_newline == -1 or next_newline > next_end:
            stop = next_end + len(_HEADER_END)
            found.append((at, stop, text[role_start:next_end]))
            at = text.find(_HEADER_START, stop)
        else:
            at = text.find(_HEADER_START, at + 1)
    return found


def _strip_padding(body: str) -> str:
    """`body` without trailing pad tokens (and the whitespace after them)."""
    trimmed = body.rstrip()
    end = len(trimmed)
    while end >= len(_PADDING) and trimmed.startswith(_PADDING, end - len(_PADDING)):
        end -= len(_PADDING)
    return trimmed[:end] if end < len(trimmed) else body


def split_llama3(text: str) -> tuple[list[dict[str, str]], bool]:
    """Split a decoded Llama-3 conversation into role/content messages.

    Returns (messages, last_turn_closed): the second is False when the last message has no
    end-of-turn token, i.e. the completion was cut off. Empty list when there is no header.
    """
    headers = _headers(text)
    messages: list[dict[str, str]] = []
    closed = True
    for index, (_, header_end, role) in enumerate(headers):
        stop = headers[index + 1][0] if index + 1 < len(headers) else len(text)
        body = _strip_padding(text[header_end:stop])
        if body.startswith("\n\n"):  # the template puts exactly "\n\n" after each header
            body = body[2:]
        cut = min((p for p in (body.find(t) for t in _END_OF_TURN) if p >= 0), default=-1)
        if cut >= 0:
            body = body[:cut]
            closed = True
        else:
            closed = False
        messages.append({"role": role.strip(), "content": body})
    return messages, closed


# --- group parsing ------------------------------------------------------------------------------


class _MalformedLineError(Exception):
    """A whole line is unusable; the message says why."""


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style content parts
        texts = [p.get("text") for p in content if isinstance(p, dict)]
        if all(isinstance(t, str) for t in texts) and texts:
            return "".join(texts)  # type: ignore[arg-type]
    return None


def _finite(value: Any) -> float | None:
    """`value` as a float if it is a finite JSON number (a 400-digit integer is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _score(value: Any, bounds: tuple[float, float]) -> float:
    """A score that is a finite number within `bounds`; ValueError saying what it is otherwise."""
    number = _finite(value)
    if number is None:
        raise ValueError("score is missing or not a finite number")
    low, high = bounds
    if not low <= number <= high:
        raise ValueError(f"score {number:.6g} is outside [{low:g}, {high:g}]")
    return number


def _normalise_conversation(raw: Any) -> tuple[list[dict[str, str]], bool | None, bool]:
    """(messages, last_turn_closed, legacy) for one rollout's `messages` entry.

    Raises ValueError with a readable reason when the entry has a shape we cannot use.
    """
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"messages entry is {type(raw).__name__}, expected a list of messages")
    if len(raw) == 1:
        only = raw[0]
        text = only if isinstance(only, str) else None
        content = only.get("content") if isinstance(only, dict) else None
        if isinstance(content, str) and "<|start_header_id|>" in content:
            text = content  # atroposlib's include_messages fallback
        if text is not None:
            messages, closed = split_llama3(text)
            if not messages:
                raise ValueError("legacy message has no Llama-3 <|start_header_id|> headers")
            return messages, closed, True
    messages = []
    for message in raw:
        if not isinstance(message, dict):
            raise ValueError(f"message is {type(message).__name__}, expected a role/content object")
        role, content = message.get("role"), _content_text(message.get("content"))
        if not isinstance(role, str) or content is None:
            raise ValueError("message without a string role and content")
        messages.append({"role": role, "content": content})
    return messages, None, False


def _conversation_parts(messages: list[dict[str, str]]) -> tuple[str | None, str, str]:
    """(system, prompt, completion): the last assistant turn and the user turn before it."""
    answer_at = next(
        (i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "assistant"), None
    )
    if answer_at is None:
        raise ValueError("no assistant message")
    prompt = next(
        (
            messages[i]["content"]
            for i in range(answer_at - 1, -1, -1)
            if messages[i]["role"] == "user"
        ),
        None,
    )
    if prompt is None:
        raise ValueError("no user message before the assistant's")
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    return system, prompt, messages[answer_at]["content"]


class RolloutReader:
    """Stream the rollouts of one file; see the module docstring.

    Iterate it for `Rollout`s, or call `groups()` for one `RolloutGroup` per line. A reader can
    be iterated once; `stats` holds the counts of that pass. Constructing it checks the file
    (RolloutFileError for a missing, unreadable or empty one) so CLIs fail before writing.

    ``on_issue`` is called for each malformed line or rollout (default: print the first
    ``print_issues`` to stderr as ``warning: FILE: line N: ...``). ``progress`` None shows a
    byte-based tqdm bar on stderr when stderr is a terminal or the file is large.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        rescore: bool = False,
        progress: bool | None = None,
        on_issue: Callable[[Issue], None] | None = None,
        max_issues: int = 1000,
        print_issues: int = 20,
        description: str | None = None,
    ) -> None:
        self.path = check_input_file(path)
        self.rescore = rescore
        size = self.path.stat().st_size
        if progress is None:
            progress = sys.stderr.isatty() or size >= LARGE_FILE_BYTES
        self.progress = progress
        self.max_issues = max_issues
        self.print_issues = print_issues
        self.description = description or self.path.name
        self.on_issue = on_issue if on_issue is not None else self._print_issue
        self.stats = ReadStats(path=str(self.path), bytes_total=size)
        self._used = False
        self._score: Callable[..., Any] | None = None

    # -- reporting --

    def _print_issue(self, issue: Issue) -> None:
        # issue_count already includes this issue.
        if self.stats.issue_count <= self.print_issues:
            _write_stderr(f"warning: {self.path}: {issue}")
        elif self.stats.issue_count == self.print_issues + 1:
            _write_stderr(f"warning: {self.path}: more malformed lines; only counting from here")

    def _issue(
        self,
        line_number: int,
        message: str,
        rollout_index: int | None = None,
        *,
        warning: bool = False,
    ) -> None:
        issue = Issue(line_number, message, rollout_index)
        self.stats.issue_count += 1
        if len(self.stats.issues) < self.max_issues:
            self.stats.issues.append(issue)
        if warning:
            self.stats.warnings += 1
        elif rollout_index is None:
            self.stats.malformed_lines += 1
        else:
            self.stats.malformed_rollouts += 1
        self.on_issue(issue)

    # -- iteration --

    def __iter__(self) -> Iterator[Rollout]:
        for group in self.groups():
            yield from group.rollouts

    def groups(self) -> Iterator[RolloutGroup]:
        if self._used:
            raise RuntimeError("a RolloutReader can be iterated once; make a new one")
        self._used = True
        bar = _progress_bar(self.stats.bytes_total, self.description) if self.progress else None
        pending = 0  # bytes not yet reported to the bar: updating it per line costs too much
        stats = self.stats
        with open(self.path, "rb") as raw, contextlib.ExitStack() as stack:
            # gzip is common for big rollout files: read it transparently (progress counts
            # compressed bytes, so the bar still ends at the file size).
            compressed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            handle: IO[bytes] = raw
            if compressed:
                unpacked = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
                handle = cast(IO[bytes], unpacked)
            if bar is not None:
                stack.callback(bar.close)
                stack.callback(lambda: bar.update(self._position(raw, compressed) - bar.n))
            try:
                for line_number, line in enumerate(handle, start=1):
                    stats.lines = line_number
                    stats.bytes_read += len(line)
                    if line_number == 1 and line.startswith(UTF8_BOM):
                        line = line[len(UTF8_BOM) :]
                    if bar is not None:
                        pending += len(line)
                        if pending >= 1 << 22:
                            bar.update(self._position(raw, compressed) - bar.n)
                            pending = 0
                    if line.isspace():  # (strip() would copy the whole line)
                        stats.blank_lines += 1
                        continue
                    group = self._group(line, line_number)
                    if group is not None:
                        yield group
            except (OSError, EOFError) as error:
                if not compressed:
                    raise
                # A truncated or corrupt .gz: report it like a malformed line and stop there.
                self._issue(stats.lines + 1, f"gzip data ends early or is corrupt ({error})")

    def _position(self, raw: IO[bytes], compressed: bool) -> int:
        return raw.tell() if compressed else self.stats.bytes_read

    def _group(self, line: bytes, line_number: int) -> RolloutGroup | None:
        try:
            data = _parse_line(line)
        except ValueError as error:
            self._issue(line_number, str(error))
            return None
        try:
            group = self._build_group(data, line_number)
        except _MalformedLineError as error:
            self._issue(line_number, str(error))
            return None
        self.stats.groups += 1
        self.stats.rollouts += len(group.rollouts)
        self.stats.formats[group.format] += 1
        return group

    def _build_group(self, data: Any, line_number: int) -> RolloutGroup:
        if not isinstance(data, dict):
            raise _MalformedLineError(
                f"expected a JSON object (one group), got {json_type_name(data)}"
            )
        messages = data.get("messages")
        if messages is None:
            raise _MalformedLineError("no messages (the env must run with include_messages)")
        if not isinstance(messages, list) or not messages:
            raise _MalformedLineError(
                f"messages is {json_type_name(messages)}, expected a non-empty list"
            )
        size = len(messages)
        scores = data.get("scores")
        if scores is not None and (not isinstance(scores, list) or len(scores) != size):
            raise _MalformedLineError(
                f"scores is {json_type_name(scores)}"
                + (f" of {len(scores)}" if isinstance(scores, list) else "")
                + f", expected a list of {size} numbers (one per conversation)"
            )

        block = data.get("metric_card")
        records: list[Any] | None = None
        request: Request | None = None
        if block is not None:
            if not isinstance(block, dict):
                raise _MalformedLineError(
                    f"metric_card is {json_type_name(block)}, expected an object"
                )
            records = block.get("rollouts")
            if not isinstance(records, list) or len(records) != size:
                raise _MalformedLineError(
                    f"metric_card.rollouts is {json_type_name(records)}"
                    + (f" of {len(records)}" if isinstance(records, list) else "")
                    + f", expected a list of {size} (one per conversation)"
                )
            raw_request = block.get("request")
            if raw_request is not None:
                try:
                    request = Request.from_dict(raw_request)
                except (KeyError, TypeError, ValueError, AttributeError):
                    message = "metric_card.request is malformed; reading the group without it"
                    self._issue(line_number, message, warning=True)
        elif scores is None:
            raise _MalformedLineError("no scores and no metric_card block")

        group_index = self.stats.groups
        rollouts: list[Rollout] = []
        errors: list[tuple[int, str]] = []
        group_format = FORMAT_METRIC_CARD if records is not None else FORMAT_PLAIN
        for index, raw in enumerate(messages):
            try:
                rollout = self._build_rollout(
                    raw, index, line_number, group_index, scores, records, request
                )
            except ValueError as error:
                errors.append((index, str(error)))
                continue
            if rollout.format == FORMAT_LEGACY:
                group_format = FORMAT_LEGACY
            rollouts.append(rollout)
        if not rollouts:
            index, reason = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise _MalformedLineError(f"no usable conversation; rollout {index}: {reason}{more}")
        for index, reason in errors:
            self._issue(line_number, reason, index)
        if request is None and group_format != FORMAT_METRIC_CARD:
            request = rollouts[0].request
        return RolloutGroup(group_index, line_number, group_format, request, rollouts, size)

    def _build_rollout(
        self,
        raw: Any,
        index: int,
        line_number: int,
        group_index: int,
        scores: list[Any] | None,
        records: list[Any] | None,
        request: Request | None,
    ) -> Rollout:
        messages, closed, legacy = _normalise_conversation(raw)
        system, prompt, completion = _conversation_parts(messages)
        score: float | None = None
        layers: dict[str, float] | None = None
        problems: list[str] = []
        finish_reason: str | None = None
        base_score: float | None = None
        completion_tokens: int | None = None
        adjustments: dict[str, float] = {}
        canaries: list[str] = []

        if records is not None:
            fmt = FORMAT_METRIC_CARD
            record = records[index]
            if not isinstance(record, dict):
                raise ValueError(f"metric_card.rollouts entry is {json_type_name(record)}")
            score = _score(
                record["score"] if "score" in record else scores[index] if scores else None,
                SCORE_RANGE,
            )
            raw_layers = record.get("layers")
            if isinstance(raw_layers, dict):
                layers = self._layers(raw_layers, line_number, index)
            raw_problems = record.get("problems")
            if isinstance(raw_problems, list):
                # Problems are texts; anything else is named by its type, not printed (a
                # nested value could be huge or deep).
                problems = [p if isinstance(p, str) else json_type_name(p) for p in raw_problems]
            reason = record.get("finish_reason")
            finish_reason = reason if isinstance(reason, str) else None
            base_score = _finite(record.get("base_score"))
            tokens = record.get("completion_tokens")
            completion_tokens = tokens if isinstance(tokens, int) else None
            raw_canaries = record.get("canaries")
            if isinstance(raw_canaries, list):
                canaries = [str(name) for name in raw_canaries]
            raw_adjust = record.get("adjustments")
            if isinstance(raw_adjust, dict):
                adjustments = {k: float(v) for k, v in raw_adjust.items() if _finite(v) is not None}
        else:
            fmt = FORMAT_LEGACY if legacy else FORMAT_PLAIN
            if closed is not None:
                finish_reason = "stop" if closed else "length"
            request = parse_request(prompt)
            if scores is not None:
                score = _score(scores[index], SCORE_RANGE_FOREIGN)

        rollout = Rollout(
            group_index=group_index,
            rollout_index=index,
            line_number=line_number,
            prompt=prompt,
            completion=completion,
            system=system,
            score=score,
            layers=layers,
            problems=problems,
            finish_reason=finish_reason,
            request=request,
            messages=messages,
            format=fmt,
            base_score=base_score,
            completion_tokens=completion_tokens,
            adjustments=adjustments,
            canaries=canaries,
        )
        if self.rescore and fmt != FORMAT_METRIC_CARD:
            self._rescore(rollout)
        return rollout

    def _layers(self, raw: dict[Any, Any], line_number: int, index: int) -> dict[str, float]:
        layers: dict[str, float] = {}
        for name, value in raw.items():
            number = _finite(value)
            if number is not None and 0.0 <= number <= 1.0:
                layers[str(name)] = number
            else:
                shown = f"{number:.6g}" if number is not None else json_type_name(value)
                self._issue(
                    line_number,
                    f"layer {str(name)[:40]!r} is {shown}, not a number in [0, 1]; ignored",
                    index,
                    warning=True,
                )
        return layers

    def _rescore(self, rollout: Rollout) -> None:
        # Only files without our block: in ours the scores and layers travel in the file.
        if self._score is None:
            from metric_cards.reward import score_completion  # the scorer is heavy; lazy

            self._score = score_completion
        result = self._score(rollout.completion, rollout.request, rollout.finish_reason)
        rollout.score = float(result.score)
        rollout.base_score = rollout.score
        rollout.layers = {k: float(v) for k, v in dict(result.layers).items()}
        rollout.problems = [str(p) for p in result.problems]
        rollout.canaries = [name for name, raised in result.canaries.items() if raised]
        rollout.rescored = True
        self.stats.rescored += 1


def read_rollouts(path: str | os.PathLike[str], **options: Any) -> Iterator[Rollout]:
    """Shorthand for ``iter(RolloutReader(path, **options))``."""
    return iter(RolloutReader(path, **options))


def _write_stderr(text: str) -> None:
    try:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr)  # keeps an active progress bar intact
    except ImportError:  # pragma: no cover
        print(text, file=sys.stderr)


def _progress_bar(total: int, description: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - progress is a nicety
        return None
    tty = sys.stderr.isatty()
    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=description,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
        mininterval=0.5 if tty else 30.0,  # in a log file, a line every 30 s is plenty
    )
