"""Render a rollout file as one self-contained HTML page that shows the metric cards.

    python -m metric_cards render artifacts/metric_rollouts.jsonl [-o OUT.html]

atroposlib's `generate_html` runs completions through markdown, which passes raw HTML through:
a completion could run script in the viewer. Here model output is data, never markup:

* Python reads the file with `metric_cards.rollouts.RolloutReader` (scores, layers and problems
  come from the file; nothing is re-scored), pulls each card out of its completion with
  `metric_cards.extraction.extract_json`, and embeds everything as one JSON block inside
  `<script type="application/json">`, with `<`, `>` and `&` written as \\u003c etc. so no
  completion can close that element.
* The page's own script (inline, allowed by a sha256 hash in a strict Content-Security-Policy)
  renders cards from that JSON with createElement/textContent only, a page at a time, so a run of
  5,000 groups opens as fast as a run of 5. Summary and histogram are rendered here, in Python.
* Icons are Lucide SVGs from `metric_cards.icons`, emitted once each as `<symbol>`s of a sprite and
  referenced by integer index, so an icon name from the model never becomes an id or a URL.

Bounded: a completion or prompt longer than `MAX_EMBEDDED_CHARS` is embedded cut (with its full
length; the rollout file keeps it whole), card fields and problem texts are cut at
`MAX_FIELD_CHARS`, and the page shows long strings cut further with a "show all" button, so a
10 MB answer neither bloats the page nor stalls its first render. Scores are those the reader
accepted (finite, in range), so the summary and histogram never meet an overflow.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import re
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from metric_cards.cli_errors import NoDataError, UsageError, run_cli
from metric_cards.extraction import extract_json
from metric_cards.icons import icon_svg, resolve_icon
from metric_cards.io_utils import atomic_writer, same_file
from metric_cards.jsonutil import dumps, json_type_name
from metric_cards.reward import LAYERS, is_strict_json
from metric_cards.rollouts import (
    FORMAT_LEGACY,
    FORMAT_METRIC_CARD,
    Issue,
    RolloutFileError,
    RolloutGroup,
    RolloutReader,
)
from metric_cards.score_stats import ScoreStats

__all__ = [
    "LAYER_NAMES",
    "EmptyInputError",
    "IconSprite",
    "RenderStats",
    "ViewerError",
    "card_view",
    "default_output_path",
    "main",
    "render_html",
]

TEMPLATES = Path(__file__).resolve().parent / "templates"
LAYER_NAMES = LAYERS
GROUPS_PER_PAGE = 20  # file order: whole groups per page (~80 cards at K=4)
ROLLOUTS_PER_PAGE = 60  # sorted by score: a flat grid of rollouts
MAX_FIELD_CHARS = 500  # card fields and problem texts are cut here (the raw text is whole)
MAX_EMBEDDED_CHARS = 200_000  # completions and prompts embedded in the page are cut here
MAX_ISSUES_LISTED = 20  # malformed lines named in the notice; the rest are only counted
HISTOGRAM_BINS = 10
# Fixed UI glyphs, also drawn from Lucide: (sprite id, icon name).
UI_ICONS = (("ui-up", "trending-up"), ("ui-down", "trending-down"), ("ui-flat", "move-right"))


class ViewerError(Exception):
    """The input cannot be rendered (missing, unreadable, no rollouts): a user mistake."""


class EmptyInputError(ViewerError):
    """The file was read but holds no usable rollout."""


@dataclass
class RenderStats:
    input_path: Path
    output_path: Path
    groups: int
    rollouts: int
    malformed_lines: int
    malformed_rollouts: int
    html_bytes: int
    seconds: float
    formats: dict[str, int] = field(default_factory=dict)


def default_output_path(input_path: str | os.PathLike[str]) -> Path:
    """`runs/x.jsonl` -> `runs/x.html` (beside the input, as atroposlib's generate_html does)."""
    return Path(input_path).with_suffix(".html")


# --- one card ----------------------------------------------------------------------------------


def _clip(text: str) -> str:
    return text if len(text) <= MAX_FIELD_CHARS else text[: MAX_FIELD_CHARS - 1] + "…"


def _embed(view: dict[str, Any], key: str, text: str) -> None:
    """Put `text` under `key`, cut at MAX_EMBEDDED_CHARS; if cut, its length goes under key_len."""
    view[key] = text[:MAX_EMBEDDED_CHARS]
    if len(text) > MAX_EMBEDDED_CHARS:
        view[key + "_len"] = len(text)


def _text(value: Any) -> str | None:
    """A card field as display text; JSON for non-strings so `{"a": 1}` reads as written."""
    if value is None:
        return None
    if isinstance(value, str):
        return _clip(value)
    try:
        return _clip(dumps(value).decode("utf-8"))
    except (TypeError, ValueError):  # nested too deep to write: say so instead
        return f"(JSON {json_type_name(value, article=False)} nested too deep to show)"


# Spaces only after a sign: an optional run of spaces at the start would be retried at every
# position of a long run of spaces (quadratic under search).
_SIGNED_NUMBER = re.compile(r"(?:[-+−]\s*)?\d+(?:[.,]\d+)?")


def _trend_view(trend: Any) -> dict[str, Any] | None:
    """{"v": text, "p": isPositive or None, "dir": +1/-1/0} for the card's trend line.

    The arrow points the way the number moved; its colour says whether that is good
    (isPositive), which is how the dashboard reads it: a falling churn rate is a green down arrow.
    """
    if trend is None:
        return None
    raw = trend.get("value") if isinstance(trend, dict) else trend
    positive = trend.get("isPositive") if isinstance(trend, dict) else None
    positive = positive if isinstance(positive, bool) else None
    direction = 0
    if isinstance(raw, bool):
        text = json.dumps(raw)
    elif isinstance(raw, (int, float)):
        number = float(raw)
        direction = (number > 0) - (number < 0) if math.isfinite(number) else 0
        text = f"{abs(number):g}%"
    elif isinstance(raw, str):
        text = _clip(raw.strip())
        match = _SIGNED_NUMBER.match(raw.strip())  # a leading number only: "-12%", "+3.1"
        if match:
            sign = -1 if match.group(0).lstrip()[:1] in ("-", "−") else 1
            digits = float(re.sub(r"[^\d.]", "", match.group(0).replace(",", ".")) or 0)
            direction = 0 if digits == 0 else sign
    elif raw is None:
        text = "—"
    else:
        text = _text(raw) or ""
    return {"v": text, "p": positive, "dir": direction}


def card_view(completion: str, sprite: IconSprite | None = None) -> dict[str, Any]:
    """What the dashboard would draw for one completion, as the compact dict the page's JS reads.

    Keys: st ("ok" | "repaired" | "invalid"), e (why invalid), m (extraction method), t/v/d
    (title, value, description), tr (trend), i (icon name as written), ic (sprite index or None),
    cl (className, shown as text), ct (componentType when it is not "metricCard"), np (no props).
    `sprite` collects the Lucide icons used; without one, `ic` is left None.
    """
    extraction = extract_json(completion)
    value = extraction.value
    view: dict[str, Any] = {"m": extraction.method}
    if not isinstance(value, dict):
        view["st"] = "invalid"
        if value is None:
            view["e"] = "Invalid JSON" if completion.strip() else "Empty output"
        else:
            view["e"] = f"JSON {json_type_name(value, article=False)}, not an object"
        return view
    view["st"] = "ok" if is_strict_json(extraction) else "repaired"
    if value.get("componentType") != "metricCard":
        view["ct"] = _text(value.get("componentType")) or "missing"
    props = value.get("props")
    if not isinstance(props, dict):
        view["np"] = True
        props = {}
    view["t"] = _text(props.get("title"))
    view["v"] = _text(props.get("value"))
    view["d"] = _text(props.get("description"))
    view["tr"] = _trend_view(props.get("trend"))
    view["cl"] = _text(props.get("className"))
    icon = props.get("icon")
    if icon is not None:
        name = _text(icon) or ""
        view["i"] = name
        view["ic"] = sprite.index(name) if sprite is not None else None
    return view


class IconSprite:
    """The Lucide icons one page uses: each resolved icon gets a small integer index (its symbol
    is `ic-N`), so the page never builds an id or URL out of the name the model wrote."""

    def __init__(self) -> None:
        self.names: list[str] = []  # resolved Lucide names, in index order
        self._by_written: dict[str, int | None] = {}
        self._by_resolved: dict[str, int] = {}

    def index(self, written: str) -> int | None:
        """Sprite index for an icon name as the model wrote it; None if no Lucide icon fits."""
        if written in self._by_written:
            return self._by_written[written]
        resolved = resolve_icon(written)
        index: int | None = None
        if resolved is not None and _symbol(resolved) is not None:
            index = self._by_resolved.get(resolved)
            if index is None:
                index = self._by_resolved[resolved] = len(self.names)
                self.names.append(resolved)
        self._by_written[written] = index
        return index

    def markup(self) -> Markup:
        """`<symbol>`s for the card icons (ic-0, ic-1, …) and the fixed UI glyphs."""
        parts = [_symbol_markup(f"ic-{i}", _symbol(name)) for i, name in enumerate(self.names)]
        for symbol_id, name in UI_ICONS:
            fallback = ("0 0 24 24", '<path d="M5 12h14"/>')  # a dash, if lucide lacks the glyph
            parts.append(_symbol_markup(symbol_id, _symbol(name) or fallback))
        return Markup("\n".join(parts))


@lru_cache(maxsize=4096)
def _symbol(name: str) -> tuple[str, str] | None:
    """(viewBox, inner markup) of a Lucide icon, or None if it has no drawable SVG."""
    svg = icon_svg(name)
    if not svg:
        return None
    try:
        root = ElementTree.fromstring(svg)
    except ElementTree.ParseError:
        return None
    for element in root.iter():  # drop the namespace so children serialise as plain <path/>
        element.tag = element.tag.rpartition("}")[2]
    view_box = root.get("viewBox") or "0 0 24 24"
    inner = "".join(ElementTree.tostring(child, encoding="unicode") for child in root)
    # icon_svg already sanitises; checked again because this markup goes into the page unescaped.
    if re.search(r"<\s*(script|foreignObject|a|image|use)\b|\bon\w+\s*=|javascript:", inner, re.I):
        return None
    return view_box, inner


def _symbol_markup(symbol_id: str, symbol: tuple[str, str] | None) -> str:
    view_box, inner = symbol or ("0 0 24 24", "")
    return f'<symbol id="{symbol_id}" viewBox="{_attr(view_box)}">{inner}</symbol>'


def _attr(text: str) -> str:
    return str(Markup.escape(text))


# --- the whole page ----------------------------------------------------------------------------


@dataclass
class _Collected:
    groups: list[dict[str, Any]] = field(default_factory=list)
    rollouts: list[dict[str, Any]] = field(default_factory=list)
    formats: dict[str, int] = field(default_factory=dict)
    # Problem texts repeat a lot ("the card does not mention the domain (retail)"): each is
    # stored once and rollouts refer to it by index, which keeps 5,000 groups ~4 MB smaller.
    problems: list[str] = field(default_factory=list)
    problem_ids: dict[str, int] = field(default_factory=dict)
    scores: ScoreStats = field(default_factory=ScoreStats)

    def problem_id(self, text: str) -> int:
        index = self.problem_ids.get(text)
        if index is None:
            index = self.problem_ids[text] = len(self.problems)
            self.problems.append(text)
        return index


def _collect(groups: Iterable[RolloutGroup], sprite: IconSprite) -> _Collected:
    out = _Collected()
    for group in groups:
        first = group.rollouts[0]
        out.formats[group.format] = out.formats.get(group.format, 0) + 1
        request = group.request
        # Group entries spell their keys out (there are few); rollouts and cards, many, use the
        # short keys listed in card_view and the page script, none of them shared with a group.
        entry: dict[str, Any] = {
            "index": group.group_index,
            "line": group.line_number,
            "request": (
                {"metric": request.metric, "domain": request.domain, "period": request.period}
                if request is not None
                else None
            ),
            "legacy": group.format == FORMAT_LEGACY,
            # The group's mean over all its rollouts (filters on the page do not change it).
            "mean": _round(_mean([r.score for r in group.rollouts if r.score is not None])),
        }
        _embed(entry, "prompt", first.prompt)
        out.groups.append(entry)
        g = len(out.groups) - 1
        for rollout in group.rollouts:
            out.scores.add(rollout.score, rollout.layers)
            layers = None
            if rollout.layers is not None:  # shown with 2 decimals; 6 keep the file's meaning
                layers = [_round(rollout.layers.get(name)) for name in LAYER_NAMES]
            item: dict[str, Any] = {
                "g": g,
                "r": rollout.rollout_index,
                "s": rollout.score,
                "l": layers,
                "pr": [out.problem_id(_clip(p)) for p in rollout.problems],
                "cn": rollout.canaries,
                "f": rollout.finish_reason,
                "k": card_view(rollout.completion, sprite),
            }
            _embed(item, "c", rollout.completion)
            out.rollouts.append(item)
    return out


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _summary(collected: _Collected) -> dict[str, Any]:
    rollouts = collected.rollouts
    total = len(rollouts)
    stats = collected.scores
    summary = stats.summary()
    valid = sum(1 for r in rollouts if r["k"]["st"] == "ok")
    with_layers = sum(1 for r in rollouts if r["l"] is not None)
    layer_means = stats.layer_means()
    layers: list[tuple[str, str, float | None]] = []
    for name in LAYER_NAMES:
        mean = layer_means.get(name)
        if mean is not None:
            layers.append((name, f"{mean:.3f}", round(max(0.0, min(1.0, mean)) * 100, 2)))
        else:
            layers.append((name, "n/a", None))
    formats = collected.formats
    labels = {
        FORMAT_METRIC_CARD: "metric_card format",
        # Say it where the summary is read: the original env's scores mean nothing.
        FORMAT_LEGACY: "legacy format (random scores, layers unknown)",
    }
    format_label = ", ".join(
        labels.get(name, name + " format")
        + (f" ({count} group{'s' if count != 1 else ''})" if len(formats) > 1 else "")
        for name, count in sorted(formats.items())
    )
    raised: dict[str, int] = {}
    for rollout in rollouts:
        for name in rollout["cn"]:
            raised[name] = raised.get(name, 0) + 1
    canaries = [
        f"{name} {100 * count / total:.0f}%"
        for name, count in sorted(raised.items(), key=lambda item: -item[1])
    ]
    return {
        "canaries": " · ".join(canaries) if canaries else "none",
        "groups": f"{len(collected.groups):,}",
        "rollouts": f"{total:,}",
        "valid_pct": f"{100 * valid / total:.1f}%" if total else "n/a",
        "mean_score": f"{summary.mean:.3f}" if summary.count else "n/a",
        "truncated": f"{sum(1 for r in rollouts if r['f'] == 'length'):,}",
        "layers": layers,
        "layer_rollouts": f"{with_layers:,}",
        "format_label": format_label,
        "scores": stats.scores,
    }


def _histogram(scores: Sequence[float]) -> dict[str, Any]:
    """An inline-SVG histogram over [0, 1] (widened for legacy scores in [-0.5, 0.5])."""
    width, height, bottom = 400, 110, 2
    low = min(0.0, min(scores, default=0.0))
    high = max(1.0, max(scores, default=1.0))
    span = (high - low) or 1.0
    counts = [0] * HISTOGRAM_BINS
    for s in scores:
        counts[min(HISTOGRAM_BINS - 1, int((s - low) / span * HISTOGRAM_BINS))] += 1
    peak = max(counts) or 1
    slot = width / HISTOGRAM_BINS
    bars = []
    for i, count in enumerate(counts):
        h = (height - bottom - 4) * count / peak
        lo, hi = low + span * i / HISTOGRAM_BINS, low + span * (i + 1) / HISTOGRAM_BINS
        bars.append(
            {
                "x": round(i * slot + 2, 2),
                "y": round(height - bottom - h, 2),
                "w": round(slot - 4, 2),
                "h": round(h, 2),
                "count": count,
                "label": f"{lo:.2f}–{hi:.2f}",
            }
        )
    ticks = [f"{low:.2f}", f"{(low + high) / 2:.2f}", f"{high:.2f}"]
    return {"width": width, "height": height, "bars": bars, "ticks": ticks}


def _json_for_script(data: Any) -> Markup:
    """JSON safe inside <script type="application/json">: no `<`, `>` or `&` left to parse."""
    text = dumps(data).decode("utf-8")
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    # U+2028/2029 are fine for JSON.parse but are written escaped for any JS-aware tooling.
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)


@lru_cache(maxsize=1)
def _assets() -> tuple[str, str, str]:
    """(css, js, csp): inline code is allowed by hash, so nothing else can run or style."""
    css = (TEMPLATES / "viewer.css").read_text(encoding="utf-8")
    js = (TEMPLATES / "viewer.js").read_text(encoding="utf-8")

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    csp = "; ".join(
        [
            "default-src 'none'",
            f"script-src {digest(js)}",
            f"style-src {digest(css)}",
            "base-uri 'none'",
            "form-action 'none'",
            "object-src 'none'",
        ]
    )
    return css, js, csp


@lru_cache(maxsize=1)
def _template() -> Any:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # on for every template, whatever its file name
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("viewer.html.j2")


def _ignore_issue(issue: Issue) -> None:
    pass


def render_html(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    allow_empty: bool = False,
    quiet: bool = True,
) -> RenderStats:
    """Render `input_path` (a rollout JSONL file) to a self-contained HTML page.

    `output_path` defaults to the input with an .html suffix; it is written atomically. Raises
    ViewerError for a missing/unreadable/empty input, or EmptyInputError when no line holds a
    usable rollout (unless `allow_empty`, which writes a page saying so). Malformed lines are
    skipped and listed on the page; `quiet=False` also prints them to stderr.
    """
    started = time.perf_counter()
    source = Path(input_path)
    target = Path(output_path) if output_path is not None else default_output_path(source)
    if same_file(target, source):  # also a symlink or hard link to the input: never clobber it
        raise ViewerError(f"the output would overwrite the input: {target}")
    try:
        reader = RolloutReader(
            source,
            progress=False,
            # The page lists the issues (stats keeps the first ones); stderr only for the CLI.
            on_issue=_ignore_issue if quiet else None,
            max_issues=MAX_ISSUES_LISTED,
        )
    except RolloutFileError as error:
        raise ViewerError(str(error)) from None
    sprite = IconSprite()
    collected = _collect(reader.groups(), sprite)
    stats = reader.stats
    if not collected.rollouts and not allow_empty:
        detail = f"; first problem: {stats.first_issue}" if stats.first_issue else ""
        raise EmptyInputError(
            f"no rollouts in {source} ({stats.lines} lines, "
            f"{stats.malformed_lines} malformed){detail}"
        )
    if not target.parent.is_dir():
        raise ViewerError(f"output directory does not exist: {target.parent}")

    summary = _summary(collected)
    css, js, csp = _assets()
    data = {
        "layer_names": LAYER_NAMES,
        "groups_per_page": GROUPS_PER_PAGE,
        "rollouts_per_page": ROLLOUTS_PER_PAGE,
        "groups": collected.groups,
        "rollouts": collected.rollouts,
        "problems": collected.problems,
    }
    html = _template().render(
        title=title or f"Rollouts · {source.name}",
        source=str(source),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        csp=csp,
        css=Markup(css),
        js=Markup(js),
        sprite=sprite.markup(),
        summary=summary,
        hist=_histogram(summary["scores"]),
        malformed=list(stats.issues),
        issue_total=stats.issue_count,
        data_json=_json_for_script(data),
    )
    # Model text reaches the page only as escaped JSON; a file name from the OS may still hold
    # undecodable bytes (surrogate escapes), shown as "?".
    encoded = html.encode("utf-8", errors="replace")
    with atomic_writer(target, "wb") as handle:
        handle.write(encoded)
    return RenderStats(
        input_path=source,
        output_path=target,
        groups=len(collected.groups),
        rollouts=len(collected.rollouts),
        malformed_lines=stats.malformed_lines,
        malformed_rollouts=stats.malformed_rollouts,
        html_bytes=len(encoded),
        seconds=time.perf_counter() - started,
        formats=dict(collected.formats),
    )


# --- command line ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m metric_cards render",
        description="Render a rollout JSONL file (ours or the legacy format) to one "
        "self-contained HTML page: metric cards, scores, layers, problems, sort and filter.",
    )
    parser.add_argument("input", help="rollout file (.jsonl), one group per line")
    parser.add_argument(
        "-o", "--output", help="HTML file to write (default: the input with an .html suffix)"
    )
    parser.add_argument("--title", help="page title (default: the input's file name)")
    return parser


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        stats = render_html(args.input, args.output, title=args.title, quiet=False)
    except EmptyInputError as error:
        raise NoDataError(str(error)) from None
    except ViewerError as error:
        raise UsageError(str(error)) from None
    skipped = ""
    if stats.malformed_lines or stats.malformed_rollouts:
        skipped = (
            f", skipped {stats.malformed_lines} malformed lines"
            f" and {stats.malformed_rollouts} malformed rollouts"
        )
    print(
        f"wrote {stats.output_path}: {stats.groups:,} groups, {stats.rollouts:,} rollouts"
        f"{skipped}, {stats.html_bytes / 1e6:.1f} MB in {stats.seconds:.2f}s"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m metric_cards render`; exit codes as in metric_cards.cli_errors."""
    return run_cli(_main, argv, prog="python -m metric_cards render")


if __name__ == "__main__":
    sys.exit(main())
