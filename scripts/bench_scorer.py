#!/usr/bin/env python3
"""Benchmark the reward as a library: completions scored per second on one core.

Input: the real corpus (tests/data/deephermes3_3b_metric_cards.jsonl, 240 real completions),
or any JSONL of {"prompt", "completion"} given with --input. For reference it also
times `json.loads` alone and Pydantic validation alone (`MetricCard.model_validate_json`) on the
same completions. Time is this thread's CPU time (`time.thread_time`), pinned to one CPU, and
each figure is the best of --repeats timings: the machine is shared, and CPU time plus the best
timing keeps other processes' load out of the figure as far as possible. The four runs take turns
(one timing of each per round), so the scorer's cost relative to json.loads is measured under the
same machine conditions.

"cold" clears every memo the scorer keeps about what completions contain (the facts of titles,
values, icons and descriptions in `metric_cards.reward.facts.CONTENT_MEMOS`, and every
`lru_cache` in extraction and icons, found by looking, not from a list) before each pass, so only
repeats *within* one pass of the input are served from memory: a fresh process seeing each
completion once. It keeps what no completion decides: the Lucide icon set, and the facts of each
prompt (computed once per prompt and shared by the K completions of its group in the env).
"warm" keeps everything, as a long training run would once it has seen the common strings.

    python scripts/bench_scorer.py                 # shared corpus, 7 repeats
    python scripts/bench_scorer.py --passes 20 --repeats 9
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from metric_cards import extraction, icons  # noqa: E402
from metric_cards.catalog import Request, parse_request  # noqa: E402
from metric_cards.reward import facts, score_completion  # noqa: E402
from metric_cards.schema import MetricCard  # noqa: E402

DEFAULT_INPUT = ROOT / "tests" / "data" / "deephermes3_3b_metric_cards.jsonl"
TARGET_COST = 8.0  # issue 9: the scorer costs at most 8x json.loads on the corpus


def pin_to_one_core() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f"pinned to CPU {core}"


# Memos of per-process data, kept by "cold": the icon set read from the lucide package and the
# viewer's SVG markup. Every other memo is about completions' contents.
KEPT_WHEN_COLD = frozenset({"lucide_names", "_legacy_renames", "_svg_markup"})


def content_memos() -> dict[str, Callable[[], None]]:
    """How to clear each content memo, by name: the reward's (facts.CONTENT_MEMOS) and every
    lru_cache in extraction and icons but KEPT_WHEN_COLD."""
    memos: dict[str, Callable[[], None]] = {
        f"facts.{memo.compute.__name__}": memo.clear for memo in facts.CONTENT_MEMOS
    }
    for module in (extraction, icons):
        for memo in vars(module).values():
            is_memo = hasattr(memo, "cache_clear") and hasattr(memo, "cache_info")
            if is_memo and memo.__qualname__ not in KEPT_WHEN_COLD:
                memos[f"{module.__name__}.{memo.__qualname__}"] = memo.cache_clear
    return memos


CONTENT_MEMOS = content_memos()


def clear_memos() -> None:
    for clear in CONTENT_MEMOS.values():
        clear()


def timed(run: Callable[[], None], passes: int, cold: bool) -> float:
    """CPU seconds of `passes` passes of `run` (memos cleared before each pass if `cold`)."""
    elapsed = 0.0
    for _ in range(passes):
        if cold:
            clear_memos()
        start = time.thread_time()
        run()
        elapsed += time.thread_time() - start
    return elapsed


def best_rates(
    runs: dict[str, tuple[Callable[[], None], bool]], items: int, passes: int, repeats: int
) -> dict[str, float]:
    """Items per second of each run: the fastest of `repeats` timings of `passes` passes.

    The runs take turns (one timing of each per round) so that all of them see the machine in the
    same states: its speed drifts over minutes, and the scorer's cost relative to json.loads is
    only meaningful if both were timed under the same conditions."""
    for run, _ in runs.values():
        run()  # warm up imports, regex compilation, the Lucide name list
    timings: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(repeats):
        for label, (run, cold) in runs.items():
            timings[label].append(timed(run, passes, cold))
    return {label: items * passes / min(times) for label, times in timings.items()}


def load(path: Path) -> list[tuple[str, Request | None]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                rows.append((record["completion"], parse_request(record["prompt"])))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT, help="JSONL of completions")
    parser.add_argument("--passes", type=int, default=10, help="passes over the input per timing")
    parser.add_argument("--repeats", type=int, default=7, help="timings; the best one counts")
    args = parser.parse_args(argv)
    if not args.input.is_file():
        print(f"error: no input file {args.input}", file=sys.stderr)
        return 2
    rows = load(args.input)
    completions = [completion for completion, _ in rows]
    print(f"machine: {machine()}")
    print(f"process: {pin_to_one_core()}")
    print(f"input:   {args.input} ({len(rows)} completions)")
    print(f"timing:  best of {args.repeats} × {args.passes} passes, the four runs taking turns")
    names = sorted(name.rsplit(".", 1)[1] for name in CONTENT_MEMOS)
    print(f"cold:    {len(names)} memos cleared before each pass ({', '.join(names)})\n")

    def loads_only() -> None:
        for completion in completions:
            json.loads(completion)

    def pydantic_only() -> None:
        for completion in completions:
            with contextlib.suppress(ValueError):
                MetricCard.model_validate_json(completion)

    def scorer() -> None:
        for completion, request in rows:
            score_completion(completion, request, "stop")

    runs = {
        "json.loads alone": (loads_only, False),
        "pydantic validation alone": (pydantic_only, False),
        "scorer, cold memos": (scorer, True),
        "scorer, warm memos": (scorer, False),
    }
    figures = best_rates(runs, len(rows), args.passes, args.repeats)
    for label, rate in figures.items():
        print(f"{label:<28} {rate:>10,.0f} completions/s  ({1e6 / rate:6.2f} µs each)")
    scores = [score_completion(c, r, "stop").score for c, r in rows]
    print(
        f"\nscores: {len(set(scores))} distinct, min {min(scores):.4f}, max {max(scores):.4f}, "
        f"mean {statistics.mean(scores):.4f}, std {statistics.pstdev(scores):.4f}"
    )
    loads = figures["json.loads alone"]
    cold, warm = figures["scorer, cold memos"], figures["scorer, warm memos"]
    print(f"scorer cost: {loads / warm:.1f}× json.loads warm, {loads / cold:.1f}× cold")
    clear_memos()
    assert all(not memo.table for memo in facts.CONTENT_MEMOS)
    for label, rate in (("warm", warm), ("cold", cold)):
        verdict = "meets" if loads / rate <= TARGET_COST else "misses"
        print(f"target ≤ {TARGET_COST:g}× json.loads on one core: {label} {verdict} it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
