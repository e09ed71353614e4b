"""Hostile model text: scoring time grows linearly, the score never depends on the stack depth.

Issue 12 (2) and (3). Every shape in tests/hostile_text.py is scored through `score_completion` at
1, 4, 16 and 64 KB; each 4x step in size may cost at most MAX_GROWTH x the time (linear work grows
~4x, quadratic ~16x). Completions longer than MAX_COMPLETION_CHARS are read up to the cap, so the
64 KB step also checks the cap.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import pkgutil
import re
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest
from hostile_text import COMPACT, PROMPT, SHAPES, clear_content_memos, fill

import metric_cards
from metric_cards.catalog import parse_request
from metric_cards.extraction import MAX_COMPLETION_CHARS, MAX_JSON_DEPTH, Extraction, extract_json
from metric_cards.reward import score_completion

SIZES_KB = (1, 4, 16, 64)
MAX_GROWTH = 8.0  # per 4x more text
FLOOR_SECONDS = 0.002  # timings below this are noise, not growth
MAX_SECONDS_AT_CAP = 0.1  # scripts/fuzz.py reports the real figure; this catches regressions
REQUEST = parse_request(PROMPT)


def cpu_seconds(function: Callable[[], Any], repeats: int = 3) -> float:
    """Best of `repeats` CPU times of function(), each after clearing the content memos."""
    best = float("inf")
    for _ in range(repeats):
        clear_content_memos()
        started = time.process_time()
        function()
        best = min(best, time.process_time() - started)
    return best


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_scoring_time_grows_linearly(shape: str) -> None:
    make = SHAPES[shape]
    previous: float | None = None
    for size_kb in SIZES_KB:
        text = make(size_kb * 1024)
        seconds = cpu_seconds(lambda text=text: score_completion(text, REQUEST))
        if previous is not None:
            growth = max(seconds, FLOOR_SECONDS) / max(previous, FLOOR_SECONDS)
            assert growth < MAX_GROWTH, (
                f"{shape}: {size_kb // 4} KB -> {size_kb} KB took {previous * 1e3:.1f} -> "
                f"{seconds * 1e3:.1f} ms ({growth:.1f}x)"
            )
        previous = seconds
    assert previous is not None and previous < MAX_SECONDS_AT_CAP, (
        f"{shape}: {previous * 1e3:.1f} ms at {SIZES_KB[-1]} KB"
    )


def test_the_shapes_reach_the_cap() -> None:
    """The 64 KB step is over MAX_COMPLETION_CHARS, so it times the capped case."""
    assert SIZES_KB[-1] * 1024 > MAX_COMPLETION_CHARS
    result = score_completion(SHAPES["a card then spaces"](64 * 1024), REQUEST)
    assert result.extraction.capped and result.extraction.value is not None


# --- every regex over model text ----------------------------------------------------------------

# Repeated units that make backtracking patterns slow, and what follows them.
PROBE_UNITS = ("1", "1/", " ", "a", "a ", "1 ", "1.", "1,", "$", "-", "\t", "\n", '"', "\\")
PROBE_TAILS = ("", "!", "/", "%", "}", "\x00")


SCANNING = ("search", "findall", "finditer", "sub", "subn", "split")  # tried at every position
ANCHORED = ("match", "fullmatch")  # tried at one position


def module_patterns() -> dict[str, tuple[re.Pattern[str], tuple[str, ...]]]:
    """Every compiled regex at module level in metric_cards (in dicts, lists and tuples too), with
    the methods the module calls on it: `NAME.match(...)` in the source means it is only ever
    anchored. A pattern used any other way (or in a container) is probed as scanning text."""
    found: dict[str, tuple[re.Pattern[str], tuple[str, ...]]] = {}
    for info in pkgutil.walk_packages(metric_cards.__path__, "metric_cards."):
        module = importlib.import_module(info.name)
        used = _methods_called(module)
        for name, value in vars(module).items():
            if isinstance(value, dict):
                members = {f"{name}[{key!r}]": item for key, item in value.items()}
            elif isinstance(value, list | tuple):
                members = {f"{name}[{index}]": item for index, item in enumerate(value)}
            else:
                members = {name: value}
            for label, member in members.items():
                if isinstance(member, re.Pattern) and isinstance(member.pattern, str):
                    methods = used.get(label, set())
                    anchored_only = bool(methods) and methods <= set(ANCHORED)
                    probe = tuple(sorted(methods)) if anchored_only else ("search", "findall")
                    found.setdefault(f"{info.name}.{label}", (member, probe))
    return found


def _methods_called(module: Any) -> dict[str, set[str]]:
    """{name: methods called as name.method(...)} in the module's source, any other use of the
    name recorded as "other"."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return {}
    called: dict[str, set[str]] = {}
    attributes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
            if isinstance(target, ast.Name):
                called.setdefault(target.id, set()).add(node.func.attr)
                attributes.add(id(target))
    for node in ast.walk(tree):  # passed around, stored, called through another name
        loaded = isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
        if loaded and id(node) not in attributes and node.id in called:
            called[node.id].add("other")
    return called


PROBES = [(unit, tail) for unit in PROBE_UNITS for tail in PROBE_TAILS]


def growth_on(find: Callable[[str], Any], unit: str, tail: str) -> tuple[float, float]:
    """Best-of-3 CPU seconds of find(unit*N + tail) at 2 KB and at 8 KB (one try at 8 KB when
    2 KB is already too fast to measure)."""
    small_text, big_text = fill(unit, 2048) + tail, fill(unit, 8192) + tail
    small = min(_cpu(find, small_text) for _ in range(3))
    if small < FLOOR_SECONDS / 4:
        return small, small
    return small, min(_cpu(find, big_text) for _ in range(3))


def _cpu(find: Callable[[str], Any], text: str) -> float:
    started = time.process_time()
    find(text)
    return time.process_time() - started


def test_every_module_level_regex_is_linear() -> None:
    """Each pattern, used as its module uses it (search/findall unless only ever anchored), over a
    repeated unit at 2 KB and 8 KB: at most MAX_GROWTH x the time."""
    slow = []
    for label, (pattern, methods) in sorted(module_patterns().items()):
        for (unit, tail), method in itertools.product(PROBES, methods):
            small, big = growth_on(getattr(pattern, method), unit, tail)
            if small >= FLOOR_SECONDS / 4 and big / small > MAX_GROWTH:
                slow.append(
                    f"{label} ({pattern.pattern!r}): {method} on {unit!r}*N+{tail!r} "
                    f"{small * 1e3:.1f} ms at 2 KB, {big * 1e3:.1f} ms at 8 KB"
                )
                break  # one probe per pattern is enough
    assert not slow, "super-linear regexes:\n" + "\n".join(slow)


# --- one score at any stack depth ---------------------------------------------------------------


def nested_card(depth: int) -> str:
    """A valid card whose title is an object nested to `depth` levels in all."""
    title = '{"a": ' * (depth - 2) + "1" + "}" * (depth - 2)
    return COMPACT.replace('"Revenue"', title)


DEEP_TEXTS = {
    "nested 1000 levels": '{"a": ' * 1000 + "1" + "}" * 1000,
    "card nested to the limit": nested_card(MAX_JSON_DEPTH),
    "card nested past the limit": nested_card(MAX_JSON_DEPTH + 1),
    "deep arrays in prose": "Here: " + "[" * 5000 + "]" * 5000 + " " + COMPACT,
    "deep cut-off object": '{"componentType": "metricCard", "props": ' + "[" * 60,
    "deep repaired object": "{'componentType': 'metricCard', 'props': " + "[" * 60 + "]" * 60 + "}",
    "a plain card": COMPACT,
}


def score_at_depth(text: str, frames: int) -> tuple[Any, ...]:
    """score_completion(text) called `frames` Python frames deeper than here."""
    if frames > 0:
        return score_at_depth(text, frames - 1)
    result = score_completion(text, REQUEST)
    found = result.extraction
    return (result.score, result.layers, result.problems, found.method, found.value)


def extract_near_the_recursion_limit(text: str, margin: int = 30) -> Extraction:
    """extract_json(text) called `margin` frames short of the recursion limit, in a thread of its
    own: too close for the JSON parser's own recursion, so extraction must work around it."""
    results: list[Extraction] = []

    def run() -> None:
        def frames_below(frame: FrameType | None) -> int:
            count = 0
            while frame is not None:
                frame, count = frame.f_back, count + 1
            return count

        def deeper(frames: int) -> Extraction:
            return deeper(frames - 1) if frames > 0 else extract_json(text)

        results.append(deeper(sys.getrecursionlimit() - frames_below(sys._getframe()) - margin))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    return results[0]


@pytest.mark.parametrize("name", sorted(DEEP_TEXTS))
def test_the_score_does_not_depend_on_the_stack_depth(name: str) -> None:
    text = DEEP_TEXTS[name]
    assert score_at_depth(text, 200) == score_at_depth(text, 0)
    assert extract_near_the_recursion_limit(text) == extract_json(text)


def test_deep_nesting_is_no_card_and_the_limit_is_one() -> None:
    assert score_at_depth(DEEP_TEXTS["nested 1000 levels"], 0)[3] == "none"
    assert score_at_depth(DEEP_TEXTS["card nested past the limit"], 0)[3] == "none"
    assert score_at_depth(DEEP_TEXTS["card nested to the limit"], 0)[3] == "bare"
