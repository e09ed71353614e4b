"""Rollout files for the viewer tests: the shared corpus wrapped in our format, hostile and broken
completions, legacy lines and malformed lines. Scores come from the real scorer, as in a run."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metric_cards.catalog import SYSTEM_PROMPT, parse_request
from metric_cards.reward import score_completion

K = 4  # rollouts per group, as the env's default group size

# Every hostile payload tries to set window.__pwned (or the title) if it ever runs.
PWN = "window.__pwned=1;document.title='pwned'"
HOSTILE_CARD = {
    "componentType": "metricCard",
    "props": {
        "title": f'<img src=x onerror="{PWN}">Revenue',
        "value": f"</script><script>{PWN}</script>$1,234",
        "description": f'<a href="javascript:{PWN}" id="evil-link">click me</a>',
        "trend": {"value": f'<svg onload="{PWN}">', "isPositive": True},
        "icon": f'"><svg onload="{PWN}">',
        "className": '"><script>alert(1)</script>',
    },
}
HOSTILE_COMPLETIONS = [
    f"<script>{PWN}</script>",
    json.dumps(HOSTILE_CARD, indent=2),
    f'Sure! <img src=x onerror="{PWN}">\n```json\n'
    + json.dumps({"componentType": "metricCard", "props": {"title": "Churn", "value": "3%"}})
    + "\n```\n<a href='javascript:"
    + PWN
    + "'>more</a>",
    # A card that is valid JSON but carries an inline event handler in an attribute-looking field.
    json.dumps(
        {
            "componentType": "metricCard",
            "props": {
                "title": "Users",
                "value": "1,204",
                "className": f'x" onmouseover="{PWN}',
                "icon": "users",
            },
        }
    ),
]
HOSTILE_PROMPT = f'<script>{PWN}</script> Show revenue <img src=x onerror="{PWN}">'
HOSTILE_PROBLEM = f'<b onmouseover="{PWN}">problem text</b>'

INVALID_COMPLETIONS = [
    '{"componentType": "metricCard", "props": {"title": "Revenue", "value": }',
    "I cannot help with that.",
    "",
]


@dataclass
class FixtureFile:
    path: Path
    groups: int = 0  # well-formed lines
    rollouts: int = 0  # rollouts a reader yields
    malformed_lines: int = 0
    scores: list[float] = field(default_factory=list)  # file order
    completions: list[str] = field(default_factory=list)  # file order
    texts: list[str] = field(default_factory=list)  # markers the page must show as text


def _conversation(prompt: str, completion: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": completion},
    ]


def our_group(
    prompt: str,
    completions: list[str],
    finish_reasons: list[str | None] | None = None,
    problems_extra: list[str] | None = None,
) -> dict[str, Any]:
    """One line in our format, scored by the real scorer (as the env writes it)."""
    request = parse_request(prompt)
    finish = finish_reasons or ["stop"] * len(completions)
    records = []
    for completion, reason in zip(completions, finish, strict=True):
        result = score_completion(completion, request, reason)
        records.append(
            {
                "score": float(result.score),
                "base_score": float(result.score),
                "layers": {k: float(v) for k, v in dict(result.layers).items()},
                "problems": [*map(str, result.problems), *(problems_extra or [])],
                "finish_reason": reason,
                "completion_tokens": max(1, len(completion) // 4),
                "adjustments": {},
                "canaries": [name for name, raised in result.canaries.items() if raised],
            }
        )
    return {
        "tokens": [[1, 2, 3] for _ in completions],
        "masks": [[-100, 2, 3] for _ in completions],
        "scores": [r["score"] for r in records],
        "messages": [_conversation(prompt, c) for c in completions],
        "advantages": None,
        "ref_logprobs": None,
        "overrides": None,
        "group_overrides": None,
        "metric_card": {
            "format_version": 1,
            "request": request.to_dict() if request is not None else None,
            "rollouts": records,
        },
    }


def legacy_group(prompt: str, completions: list[str], rng: random.Random) -> dict[str, Any]:
    """The original environment's line: one Llama-3 string per rollout, random scores."""

    def text(completion: str) -> str:
        return (
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            f"{SYSTEM_PROMPT}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
            f"{prompt}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
            f"{completion}<|eot_id|>"
        )

    return {
        "tokens": [[1] for _ in completions],
        "masks": [[1] for _ in completions],
        "scores": [round(rng.uniform(-0.5, 0.5), 4) for _ in completions],
        "messages": [[text(c)] for c in completions],
    }


def _add(fixture: FixtureFile, lines: list[str], group: dict[str, Any]) -> None:
    lines.append(json.dumps(group, ensure_ascii=False))
    fixture.groups += 1
    scores = (
        [r["score"] for r in group["metric_card"]["rollouts"]]
        if "metric_card" in group
        else group["scores"]
    )
    fixture.rollouts += len(scores)
    fixture.scores.extend(scores)
    if "metric_card" in group:
        fixture.completions.extend(m[-1]["content"] for m in group["messages"])
    else:  # legacy: the completion is the assistant part of the one string
        fixture.completions.extend(
            m[0].split("assistant<|end_header_id|>\n\n")[1].removesuffix("<|eot_id|>")
            for m in group["messages"]
        )


def _metric(prompt: str) -> str:
    request = parse_request(prompt)
    return request.metric if request is not None else ""


def write_corpus_file(path: Path, corpus: list[dict], *, extras: bool = True) -> FixtureFile:
    """The corpus in groups of K (60 groups), then hostile, invalid, truncated, legacy and
    malformed lines when `extras`."""
    fixture = FixtureFile(path)
    lines: list[str] = []
    # A group is K completions of one prompt. The corpus has one completion per prompt, so group
    # rows that ask for the same metric and use the first row's prompt for the group.
    by_metric = sorted(corpus, key=lambda row: _metric(row["prompt"]))
    for start in range(0, len(by_metric) - K + 1, K):
        rows = by_metric[start : start + K]
        group = our_group(
            rows[0]["prompt"],
            [r["completion"] for r in rows],
            ["stop" if r.get("finished", True) else "length" for r in rows],
        )
        _add(fixture, lines, group)
    if extras:
        rng = random.Random(7)
        prompt = corpus[0]["prompt"]
        _add(fixture, lines, our_group(prompt, HOSTILE_COMPLETIONS))
        _add(fixture, lines, our_group(HOSTILE_PROMPT, HOSTILE_COMPLETIONS[:2], None,
                                       [HOSTILE_PROBLEM]))  # fmt: skip
        cut = corpus[1]["completion"][: len(corpus[1]["completion"]) // 2]
        _add(
            fixture,
            lines,
            our_group(prompt, [*INVALID_COMPLETIONS, cut], ["stop", "stop", "stop", "length"]),
        )
        _add(fixture, lines, legacy_group(corpus[2]["prompt"], [r["completion"] for r in
                                                                corpus[2:6]], rng))  # fmt: skip
        for bad in ("this is not json", '{"messages": 5, "scores": [1]}', "[1, 2, 3]"):
            lines.append(bad)
            fixture.malformed_lines += 1
        lines.append("")  # a blank line is not an error
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return fixture


LONG_TITLE_CHARS = 5_000_000
LONG_COMPLETION_CHARS = 10_000_000


def write_long_strings_file(path: Path, corpus: list[dict]) -> list[str]:
    """One group whose answers are 10 MB: a card with a 5 MB title, and 10 MB of prose.

    Returns the four completions. The viewer must stay small and responsive (issue 12, item 7).
    """
    prompt = corpus[0]["prompt"]
    card = {"componentType": "metricCard", "props": {"title": "T" * LONG_TITLE_CHARS, "value": "1"}}
    completions = [
        json.dumps(card),
        "x" * LONG_COMPLETION_CHARS,
        corpus[0]["completion"],
        corpus[1]["completion"],
    ]
    path.write_text(json.dumps(our_group(prompt, completions)) + "\n", encoding="utf-8")
    return completions
