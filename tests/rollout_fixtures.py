"""Rollout files for the reader and data-script tests, built from the real shared corpus.

* `our_groups`: the corpus as groups of K=4 in our format (docs/rollout-format.md). Each group's
  prompt is the first of four consecutive corpus rows; its four completions are those four
  rows' real completions, so three of them answer another request and the reward (the real
  `score_completion`) tells them apart. Optional `variants` put fenced, prose-wrapped,
  duplicated, non-card and truncated completions into known places.
* `legacy_groups`: the same completions in the original environment's format (one Llama-3
  string per rollout, random scores in [-0.5, 0.5]).
* `write_jsonl`: writes lines as the env does (json.dumps default separators) or compactly.

Token ids and masks are made up (the reader never decodes them) but have realistic lengths so
the reader's fast path that skips them is exercised.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metric_cards.catalog import SYSTEM_PROMPT, parse_request
from metric_cards.groups import ScoredRollout, build_group

K = 4


ATROPOS_DEFAULTS = {
    "advantages": None,
    "ref_logprobs": None,
    "overrides": None,
    "group_overrides": None,
}


@dataclass(frozen=True)
class Expected:
    """What a fixture file holds, independently of the reader: one entry per rollout."""

    prompt: str
    completion: str
    score: float
    finish_reason: str | None
    group: int
    index: int


def _fake_tokens(rng: random.Random, prompt_len: int, completion_len: int) -> tuple[list, list]:
    tokens = [rng.randrange(128_256) for _ in range(prompt_len + completion_len)]
    masks = [-100] * prompt_len + tokens[prompt_len:]
    return tokens, masks


def fenced(text: str) -> str:
    return f"```json\n{text}\n```"


def with_prose(text: str) -> str:
    return f"Here is the metric card you asked for:\n\n{text}\n\nLet me know if you need changes."


def not_a_card(text: str) -> str:
    card = json.loads(text)
    card["componentType"] = "chartCard"
    return json.dumps(card, indent=2)


def truncated(text: str) -> str:
    return text[: len(text) // 2]


def our_groups(
    rows: list[dict[str, Any]],
    score: Callable[..., Any],
    *,
    variants: bool = False,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], list[Expected]]:
    """Groups in our format and the expected rollouts, scored by `score` (score_completion)."""
    rng = random.Random(seed)
    groups: list[dict[str, Any]] = []
    expected: list[Expected] = []
    for g in range(len(rows) // K):
        chunk = rows[g * K : (g + 1) * K]
        prompt = chunk[0]["prompt"]
        request = parse_request(prompt)
        completions = [row["completion"] for row in chunk]
        finish = ["stop"] * K
        if variants:
            completions, finish = _apply_variants(g, completions, finish)
        rollouts = []
        for i, completion in enumerate(completions):
            result = score(completion, request, finish[i])
            tokens, masks = _fake_tokens(rng, 460, len(completion) // 4)
            rollouts.append(
                ScoredRollout(
                    messages=[
                        {"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": prompt},
                        {"role": "assistant", "content": completion},
                    ],
                    tokens=tokens,
                    masks=masks,
                    result=result,
                    score=float(result.score),
                    finish_reason=finish[i],
                    completion_tokens=len(completion) // 4,
                    adjustments={},
                )
            )
            expected.append(Expected(prompt, completion, float(result.score), finish[i], g, i))
        # the env's own group builder, plus the keys atroposlib adds before writing a line
        groups.append({**build_group(request, rollouts), **ATROPOS_DEFAULTS})
    return groups, expected


def _apply_variants(
    g: int, completions: list[str], finish: list[str]
) -> tuple[list[str], list[str]]:
    """Known oddities in known places (group index mod 6) for the data-script tests."""
    completions = list(completions)
    finish = list(finish)
    kind = g % 6
    if kind == 1:  # the same card twice in a group: fenced copy of rollout 0 -> a duplicate
        completions[1] = fenced(completions[0])
    elif kind == 2:  # fenced and prose-wrapped: kept, with fences/prose stripped
        completions[0] = fenced(completions[0])
        completions[2] = with_prose(completions[2])
    elif kind == 3:  # not a metric card
        completions[0] = not_a_card(completions[0])
    elif kind == 4:  # cut off by the token limit
        completions[0] = truncated(completions[0])
        finish[0] = "length"
    elif kind == 5:  # an exact duplicate of rollout 0 with other whitespace
        completions[3] = json.dumps(json.loads(completions[0]))
    return completions, finish


LLAMA3 = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{assistant}"
)


def llama3_text(system: str, user: str, assistant: str, closed: bool = True) -> str:
    text = LLAMA3.format(system=system, user=user, assistant=assistant)
    return text + "<|eot_id|>" if closed else text


def legacy_groups(
    rows: list[dict[str, Any]], *, seed: int = 0, truncate_every: int = 10
) -> tuple[list[dict[str, Any]], list[Expected]]:
    """The original environment's lines: one decoded Llama-3 string per rollout, random scores.

    Odd groups use atroposlib's include_messages fallback shape (a one-element list holding a
    user dict with the whole string); every `truncate_every`-th rollout has no <|eot_id|>.
    """
    rng = random.Random(seed)
    groups: list[dict[str, Any]] = []
    expected: list[Expected] = []
    n = 0
    for g in range(len(rows) // K):
        chunk = rows[g * K : (g + 1) * K]
        prompt = chunk[0]["prompt"]
        messages, scores, tokens, masks = [], [], [], []
        for i, row in enumerate(chunk):
            closed = n % truncate_every != truncate_every - 1
            n += 1
            text = llama3_text(SYSTEM_PROMPT, prompt, row["completion"], closed)
            messages.append([text] if g % 2 == 0 else [{"role": "user", "content": text}])
            value = round(rng.uniform(-0.5, 0.5), 6)
            scores.append(value)
            t, m = _fake_tokens(rng, 460, len(row["completion"]) // 4)
            tokens.append(t)
            masks.append(m)
            finish = "stop" if closed else "length"
            expected.append(Expected(prompt, row["completion"], value, finish, g, i))
        groups.append({"tokens": tokens, "masks": masks, "scores": scores, "messages": messages})
    return groups, expected


def write_jsonl(path: Path, objects: Iterable[Any], *, compact: bool = False) -> Path:
    """One JSON line per object; default separators as atroposlib's jsonlines writer uses."""
    with path.open("w", encoding="utf-8") as handle:
        for obj in objects:
            if isinstance(obj, str):  # a raw line (for malformed-line tests)
                handle.write(obj + "\n")
            elif compact:
                handle.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")
            else:
                handle.write(json.dumps(obj, ensure_ascii=False) + "\n")
    return path


# --- hostile lines (shared by the reader, data-script, score CLI and viewer tests) ----------------

UTF8_BOM = b"\xef\xbb\xbf"
DEEP_LINE = "[" * 100_000 + "]" * 100_000  # nested 10^5 deep: RecursionError for a naive reader


def _with_completion(group: dict[str, Any], index: int, completion: str) -> dict[str, Any]:
    group = json.loads(json.dumps(group))
    group["messages"][index][-1]["content"] = completion
    return group


def _with_score(group: dict[str, Any], index: int, raw_score: str) -> str:
    """The group's line with rollout `index`'s score written as the raw JSON text `raw_score`."""
    group = json.loads(json.dumps(group))
    marker = 0.123456789012345  # a value that appears nowhere else in the line
    group["metric_card"]["rollouts"][index]["score"] = marker
    group["scores"][index] = marker
    return json.dumps(group).replace(repr(marker), raw_score)


def hostile_lines(group: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(line, what its issue must say, whole line lost) for lines a hostile file might hold.

    `group` is a valid group in our format; each line is a variant of it. When "whole line lost"
    is False only rollout 0 is bad and the group's other rollouts are still read.
    """
    return [
        (DEEP_LINE, "nested deeper than", True),
        (_with_score(group, 0, "1" + "0" * 400), "score is missing or not a finite number", False),
        (_with_score(group, 0, "1e308"), "score 1e+308 is outside [0, 1]", False),
        (_with_score(group, 0, "-1e308"), "score -1e+308 is outside [0, 1]", False),
        (_with_score(group, 0, "1000000"), "score 1e+06 is outside [0, 1]", False),
        (_with_score(group, 0, "Infinity"), "score is missing or not a finite number", False),
    ]


SURROGATE_COMPLETION = (
    '{"componentType": "metricCard", "props": {"title": "Rev\ud800", "value": "1"}}'
)


def surrogate_line(group: dict[str, Any]) -> str:
    """`group` with rollout 0's completion holding a lone surrogate, escaped as the env writes it.

    Valid JSON, and what `process` writes when a server sends "\ud800": every reader must read it
    (the score CLI scores it as the env did); only training data leaves such text out.
    """
    return json.dumps(_with_completion(group, 0, SURROGATE_COMPLETION))  # ensure_ascii: escaped


def write_hostile_file(path: Path, groups: list[dict[str, Any]]) -> tuple[Path, list[str]]:
    """A BOM, then each hostile line followed by a valid group; returns (path, issue texts).

    Line 1 is groups[0] after a UTF-8 byte order mark; line 2k is the k-th hostile line and
    line 2k+1 is groups[k] (so every hostile line is followed by a good one).
    """
    hostile = hostile_lines(groups[0])
    lines = [json.dumps(groups[0])]
    for k, (line, _, _) in enumerate(hostile, start=1):
        lines += [line, json.dumps(groups[k])]
    path.write_bytes(UTF8_BOM + "".join(line + "\n" for line in lines).encode("ascii"))
    return path, [message for _, message, _ in hostile]
