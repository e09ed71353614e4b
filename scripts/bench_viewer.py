"""Viewer benchmark: render a big rollout file and open it in headless Chromium.

Builds a rollout file in our format (docs/rollout-format.md) of --groups groups of --k rollouts
from the shared corpus (real DeepHermes-3 3B completions, scored with the real scorer, with token
and mask arrays of realistic length, every 40th rollout cut off as a truncated one), then measures

* render: `metric_cards.viewer.render_html` wall time (read + extract + write), best of --repeat;
* the HTML file's size;
* page open in Chromium: navigation start -> first cards on screen (the page's own
  `viewer-ready` performance mark, and Playwright's wall time to a visible `.metric-card`);
* re-render after a sort by score and after "next page" (synchronous DOM work, in-page timer).

    python scripts/bench_viewer.py [--groups 5000] [--k 4] [--repeat 3] [--keep DIR] [--no-browser]

Chromium: /usr/bin/chromium (apt install chromium); never `playwright install`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import machine

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CORPUS = REPO.parent / "shared" / "corpus" / "deephermes3_3b_metric_cards.jsonl"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

from metric_cards.catalog import SYSTEM_PROMPT, parse_request  # noqa: E402
from metric_cards.jsonutil import dumps_line  # noqa: E402
from metric_cards.reward import score_completion  # noqa: E402
from metric_cards.viewer import render_html  # noqa: E402


def build_file(path: Path, groups: int, k: int, seed: int = 0) -> tuple[int, float]:
    """Write `groups` lines; returns (rollouts, seconds spent scoring). Scores are cached per
    (prompt, completion, finish) pair: the corpus repeats, the scorer is deterministic."""
    corpus = [json.loads(line) for line in CORPUS.open(encoding="utf-8") if line.strip()]
    rng = random.Random(seed)
    cache: dict[tuple[str, str, str], dict[str, Any]] = {}
    prompt_tokens = (len(SYSTEM_PROMPT) + 120) // 4  # ~4 characters a token
    scoring = 0.0
    rollouts = 0
    with path.open("wb") as handle:
        for g in range(groups):
            rows = rng.sample(corpus, k)
            prompt = rows[0]["prompt"]
            request = parse_request(prompt)
            messages, records, tokens, masks = [], [], [], []
            for j, row in enumerate(rows):
                completion, finish = row["completion"], "stop"
                if (g * k + j) % 40 == 39:
                    completion, finish = completion[: len(completion) // 2], "length"
                key = (prompt, completion, finish)
                if key not in cache:
                    started = time.perf_counter()
                    result = score_completion(completion, request, finish)
                    scoring += time.perf_counter() - started
                    cache[key] = {
                        "score": float(result.score),
                        "base_score": float(result.score),
                        "layers": {n: float(v) for n, v in dict(result.layers).items()},
                        "problems": [str(p) for p in result.problems],
                        "finish_reason": finish,
                        "completion_tokens": max(1, len(completion) // 4),
                        "adjustments": {},
                    }
                record = cache[key]
                n = prompt_tokens + record["completion_tokens"]
                tokens.append([rng.randrange(128000) for _ in range(n)])
                masks.append([-100] * prompt_tokens + tokens[-1][prompt_tokens:])
                messages.append(
                    [
                        {"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": prompt},
                        {"role": "assistant", "content": completion},
                    ]
                )
                records.append(record)
            line = {
                "tokens": tokens,
                "masks": masks,
                "scores": [r["score"] for r in records],
                "messages": messages,
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
            handle.write(dumps_line(line))
            rollouts += k
    return rollouts, scoring


def browser_open(html: Path, repeat: int) -> dict[str, float]:
    """Page-open figures in headless Chromium (browser start-up excluded), best of `repeat`."""
    from playwright.sync_api import sync_playwright

    runs: list[dict[str, float]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(repeat):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                errors: list[str] = []
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                started = time.perf_counter()
                page.goto(html.as_uri(), wait_until="commit")
                page.locator(".metric-card").first.wait_for(state="visible", timeout=120_000)
                wall = time.perf_counter() - started
                marks = page.evaluate(
                    """() => {
                      const nav = performance.getEntriesByType('navigation')[0];
                      const ready = performance.getEntriesByName('viewer-ready')[0];
                      const paint = performance.getEntriesByName('first-contentful-paint')[0];
                      return {dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
                              ready: ready ? ready.startTime : -1,
                              fcp: paint ? paint.startTime : -1,
                              cards: document.querySelectorAll('.metric-card').length};
                    }"""
                )
                sort_ms = page.evaluate(
                    """() => { const s = document.getElementById('order');
                      const t = performance.now();
                      s.value = 'desc'; s.dispatchEvent(new Event('change'));
                      return performance.now() - t; }"""
                )
                next_ms = page.evaluate(
                    """() => { const t = performance.now(); document.getElementById('next').click();
                      return performance.now() - t; }"""
                )
                if errors:
                    raise RuntimeError(f"page errors: {errors[:3]}")
                runs.append(
                    {
                        "wall_to_first_card_s": wall,
                        "ready_mark_ms": marks["ready"],
                        "dom_content_loaded_ms": marks["dcl"],
                        "load_event_ms": marks["load"],
                        "first_contentful_paint_ms": marks["fcp"],
                        "cards_on_first_page": marks["cards"],
                        "sort_desc_ms": sort_ms,
                        "next_page_ms": next_ms,
                    }
                )
                page.close()
        finally:
            browser.close()
    return min(runs, key=lambda r: r["wall_to_first_card_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=5000)
    parser.add_argument("--k", type=int, default=4, help="rollouts per group")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the files here instead of a temp dir")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium part")
    args = parser.parse_args(argv)
    if not CORPUS.exists():
        print(f"error: shared corpus not found at {CORPUS}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        jsonl, html = workdir / "bench_rollouts.jsonl", workdir / "bench_rollouts.html"
        started = time.perf_counter()
        rollouts, scoring = build_file(jsonl, args.groups, args.k)
        print(
            f"built {jsonl.name}: {args.groups:,} groups, {rollouts:,} rollouts, "
            f"{jsonl.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - started:.1f}s "
            f"({scoring:.1f}s scoring)",
            flush=True,
        )
        times, cpu = [], []
        for _ in range(args.repeat):
            cpu_started = time.process_time()  # CPU time: robust to other load on the machine
            stats = render_html(jsonl, html)
            cpu.append(time.process_time() - cpu_started)
            times.append(stats.seconds)
        result: dict[str, Any] = {
            "machine": machine(),
            "groups": stats.groups,
            "rollouts": stats.rollouts,
            "jsonl_mb": round(jsonl.stat().st_size / 1e6, 1),
            "render_s_best": round(min(times), 3),
            "render_s_median": round(statistics.median(times), 3),
            "render_cpu_s_best": round(min(cpu), 3),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "html_mb": round(stats.html_bytes / 1e6, 2),
        }
        print(
            f"render_html: best {min(times):.2f}s, median {statistics.median(times):.2f}s "
            f"of {args.repeat} (CPU {min(cpu):.2f}s); HTML {stats.html_bytes / 1e6:.1f} MB "
            f"(load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        if not args.no_browser:
            page = browser_open(html, args.repeat)
            result.update({k: round(v, 3) for k, v in page.items()})
            print(
                f"chromium: first cards visible {page['wall_to_first_card_s']:.2f}s after "
                f"navigation (page's ready mark {page['ready_mark_ms']:.0f} ms, "
                f"DOMContentLoaded {page['dom_content_loaded_ms']:.0f} ms, "
                f"{page['cards_on_first_page']:.0f} cards on page 1); "
                f"sort {page['sort_desc_ms']:.0f} ms, next page {page['next_page_ms']:.0f} ms"
            )
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
