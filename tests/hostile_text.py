"""Hostile completions: text shapes that make naive parsers and regexes slow or crash.

Used by tests/test_hostile_text.py (fixed shapes at fixed sizes, timed) and scripts/fuzz.py (random
mutations). Every shape is a function of a size in characters and returns about that many.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

CARD = {
    "componentType": "metricCard",
    "props": {
        "title": "Revenue",
        "value": "$12,345",
        "description": "Total revenue this month",
        "trend": {"value": 12.5, "isPositive": True},
        "icon": "dollar-sign",
    },
}
COMPACT = json.dumps(CARD)
PROMPT = "Create a metric card showing monthly revenue for an e-commerce dashboard"


def fill(unit: str, size: int) -> str:
    """`unit` repeated to exactly `size` characters."""
    return (unit * (size // len(unit) + 1))[:size]


def in_value(key: str, unit: str, tail: str = "") -> Callable[[int], str]:
    """A card whose string field `key` is `unit` repeated, then `tail`."""
    original = json.dumps(CARD["props"][key])

    def shape(size: int) -> str:
        return COMPACT.replace(original, json.dumps(fill(unit, size) + tail), 1)

    return shape


SHAPES: dict[str, Callable[[int], str]] = {
    # the shapes issue 12 measured
    "digits before a slash in the value": in_value("value", "1", "/"),
    "an unclosed fence followed by letters": lambda n: "```json\n" + fill("a", n),
    "a cut-off object padded with spaces": lambda n: COMPACT[:60] + " " * n,
    "spaces inside a fence": lambda n: "```" + " " * n + "\n" + COMPACT + "\n```",
    "repeated <think>": lambda n: fill("<think>", n),
    # our own
    "digits then a slash, repeated": in_value("value", "1/"),
    "digits then 'out of' far away": in_value("value", "1 ", "out of"),
    "spaces then a percent sign": in_value("value", " ", "%"),
    "spaces then a unit word": in_value("value", " ", "k"),
    "a long number with separators": in_value("value", "1,2", "%"),
    "dollar signs": in_value("value", "$"),
    "signs and spaces": in_value("value", "- "),
    "a long title of words": in_value("title", "Revenue growth "),
    "a long description": in_value("description", "revenue this month vs last "),
    "a long icon name": in_value("icon", "a-"),
    "unicode in the title": in_value("title", "é中\u200b"),
    "lone surrogate escapes": lambda n: COMPACT.replace("Revenue", fill("\\ud800", n), 1),
    "raw lone surrogates in prose": lambda n: fill("\ud800 ", n) + COMPACT,
    "a huge integer trend": lambda n: COMPACT.replace("12.5", fill("9", n)),
    "a huge exponent trend": lambda n: COMPACT.replace("12.5", "1e" + fill("9", n)),
    "a cut-off key padded with spaces": lambda n: COMPACT[:60] + '"' + " " * n,
    "a dangling key and colon in spaces": lambda n: '{"a": 1, "b"' + " " * n + ":" + " " * n,
    "an unclosed fence with a language only": lambda n: "```json" + " " * n,
    "think blocks, then a card": lambda n: fill("<think></think>", n) + COMPACT,
    "closing think tags": lambda n: fill("</think>", n) + COMPACT,
    "open braces": lambda n: fill("{", n),
    "words and open braces": lambda n: fill("word {", n),
    "quotes after a brace": lambda n: "{" + fill('"', n),
    "escaped quotes in a cut-off string": lambda n: '{"' + fill('\\"', n),
    "nested arrays": lambda n: fill("[", n // 2) + fill("]", n // 2),
    "nested keys": lambda n: fill('{"a":', n),
    "a cut-off object of pairs": lambda n: "{" + fill('"a":1,', n),
    "unquoted words": lambda n: "{" + fill("a b ", n),
    "an unclosed comment": lambda n: "{" + fill("/*", n),
    "stars in a comment": lambda n: "{/*" + fill("*", n),
    "single-quoted, cut off": lambda n: "{'" + fill("a", n),
    "backslashes in a single-quoted string": lambda n: "{'a': '" + fill("\\", n),
    "many small objects": lambda n: fill("{}", n),
    "many cards": lambda n: fill(COMPACT + "\n", n),
    "fence markers around a card": lambda n: fill("```\n", n // 2) + COMPACT + fill("```", n // 2),
    "digits and slashes in prose": lambda n: fill("12/", n) + COMPACT,
    "a card then spaces": lambda n: COMPACT + " " * n,
    "newlines in a title": in_value("title", "\n"),
}


def clear_content_memos() -> None:
    """Empty every functools cache in the metric_cards modules, then score one ordinary card so
    per-process data (icon set, catalog profiles) is built again: what follows is timed as a
    process that has never seen its text."""
    for name, module in list(sys.modules.items()):
        if name == "metric_cards" or name.startswith("metric_cards."):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)) and hasattr(value, "cache_info"):
                    value.cache_clear()
    from metric_cards.catalog import parse_request
    from metric_cards.reward import score_completion

    score_completion(COMPACT.replace("Revenue", "Warm-up"), parse_request(PROMPT))
