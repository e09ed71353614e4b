"""Streaming score statistics: summary numbers, bucket and threshold tables, histograms.

`ScoreStats` takes one rollout at a time. The exact median needs the scores themselves, so they
are kept in an `array('d')` (8 bytes a rollout: 8 MB for a million rollouts, a thousandth of
such a file); layer values are only summed and counted on a 0.01 grid, in numpy batches.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metric_cards.reward import LAYERS

DEFAULT_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_FINE = 100  # histogram grid: 1/_FINE wide cells
_BATCH = 1 << 16  # layer values queued before a vectorised update


def bucket_index(score: float, width: float = 0.1) -> int:
    """Index k of the bucket [k*width, (k+1)*width) holding `score`.

    The 1e-9 keeps 0.3 in [0.3, 0.4) although 0.3/0.1 is 2.9999999999999996 in floats. A score
    of exactly 1.0 goes to the bucket below it when 1.0 is a bucket edge, so [0.9, 1.0] is closed.
    """
    return int(_bucket_indices(np.array([score], dtype=np.float64), width)[0])


def _bucket_indices(values: np.ndarray, width: float) -> np.ndarray:
    k = np.floor(values / width + 1e-9).astype(np.int64)
    edge = round(1 / width)
    if math.isclose(edge * width, 1.0):
        k[(k == edge) & (values <= 1.0 + 1e-12)] -= 1
    return k


def _add_counts(counter: Counter[int], indices: np.ndarray) -> None:
    keys, counts = np.unique(indices, return_counts=True)
    for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
        counter[key] += count


@dataclass
class LayerStats:
    """Mean and 0.01-grid histogram of one reward layer, filled in vectorised batches."""

    count: int = 0
    total: float = 0.0
    fine: Counter[int] = field(default_factory=Counter)
    _pending: array = field(default_factory=lambda: array("d"))

    def add(self, value: float) -> None:
        self._pending.append(value)
        if len(self._pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        values = np.frombuffer(self._pending, dtype=np.float64)
        self.count += len(values)
        self.total += float(values.sum())
        _add_counts(self.fine, _bucket_indices(values, 1 / _FINE))
        self._pending = array("d")

    @property
    def mean(self) -> float:
        self.flush()
        return self.total / self.count if self.count else math.nan


@dataclass(frozen=True)
class Summary:
    count: int
    min: float
    max: float
    mean: float
    median: float
    std: float  # population standard deviation


@dataclass
class ScoreStats:
    """Everything show_score_distribution.py reports, built one rollout at a time.

    Per rollout it only appends the score to an `array('d')` (8 bytes: the exact median needs
    every score) and queues the layer values; all arithmetic is done by numpy at the end or in
    batches, which keeps a multi-GB file's statistics from costing more than reading it.
    """

    bucket_width: float = 0.1
    scores: array = field(default_factory=lambda: array("d"))
    layers: dict[str, LayerStats] = field(default_factory=dict)
    missing_scores: int = 0

    def add(self, score: float | None, layers: Mapping[str, float] | None = None) -> None:
        if score is None:
            self.missing_scores += 1
        else:
            self.scores.append(score)
        if layers:
            for name, value in layers.items():
                stats = self.layers.get(name)
                if stats is None:
                    stats = self.layers[name] = LayerStats()
                stats.add(value)

    @property
    def count(self) -> int:
        return len(self.scores)

    def _values(self) -> np.ndarray:
        # numpy views the array's buffer: no per-score Python objects.
        return np.frombuffer(self.scores, dtype=np.float64) if self.scores else np.empty(0)

    def summary(self) -> Summary:
        values = self._values()
        if not len(values):
            return Summary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        return Summary(
            count=len(values),
            min=float(values.min()),
            max=float(values.max()),
            mean=float(values.mean()),
            median=float(np.median(values)),
            std=float(values.std()),
        )

    def median(self) -> float:
        return self.summary().median

    def at_least(self, thresholds: Iterable[float]) -> list[tuple[float, int]]:
        """[(t, number of scores >= t)], exact."""
        ordered = np.sort(self._values())
        # A 1e-9 tolerance so a score written as 0.7 counts for ">= 0.7" whatever the rounding.
        return [(t, int(len(ordered) - np.searchsorted(ordered, t - 1e-9))) for t in thresholds]

    @property
    def buckets(self) -> Counter[int]:
        counts: Counter[int] = Counter()
        _add_counts(counts, _bucket_indices(self._values(), self.bucket_width))
        return counts

    @property
    def fine(self) -> Counter[int]:
        counts: Counter[int] = Counter()
        _add_counts(counts, _bucket_indices(self._values(), 1 / _FINE))
        return counts

    def bucket_rows(self) -> list[tuple[float, float, int]]:
        """[(low, high, count)] for every bucket of [0, 1], widened to any score outside it."""
        buckets = self.buckets
        if not buckets:
            return []
        width = self.bucket_width
        low = min(0, min(buckets))
        high = max(bucket_index(1.0, width), max(buckets))
        return [
            (round(k * width, 10), round((k + 1) * width, 10), buckets.get(k, 0))
            for k in range(low, high + 1)
        ]

    def layer_means(self) -> dict[str, float]:
        ordered = [n for n in LAYERS if n in self.layers] + sorted(set(self.layers) - set(LAYERS))
        return {name: self.layers[name].mean for name in ordered}


# --- text output -------------------------------------------------------------------------------


def format_summary(stats: ScoreStats, indent: str = "  ") -> list[str]:
    s = stats.summary()
    if not s.count:
        return [f"{indent}no scores"]
    return [
        f"{indent}count  {s.count}",
        f"{indent}min    {s.min:.4f}",
        f"{indent}max    {s.max:.4f}",
        f"{indent}mean   {s.mean:.4f}",
        f"{indent}median {s.median:.4f}",
        f"{indent}std    {s.std:.4f}",
    ]


def format_bucket_table(stats: ScoreStats) -> list[str]:
    total = stats.count or 1
    lines = [f"  {'bucket':<13} {'count':>8} {'percent':>8}"]
    rows = stats.bucket_rows()
    for index, (low, high, count) in enumerate(rows):
        closing = "]" if index == len(rows) - 1 and math.isclose(high, 1.0) else ")"
        label = f"[{low:.2f}, {high:.2f}{closing}"
        lines.append(f"  {label:<13} {count:>8} {100 * count / total:>7.1f}%")
    return lines


def format_threshold_table(stats: ScoreStats, thresholds: Sequence[float]) -> list[str]:
    total = stats.count or 1
    lines = [f"  {'score >=':<9} {'count':>8} {'percent':>8}"]
    for threshold, count in stats.at_least(thresholds):
        lines.append(f"  {threshold:<9.2f} {count:>8} {100 * count / total:>7.1f}%")
    return lines


def format_histogram(stats: ScoreStats, width: int = 50) -> list[str]:
    """A horizontal bar per bucket, scaled to the fullest bucket."""
    rows = stats.bucket_rows()
    if not rows:
        return []
    peak = max(count for _, _, count in rows) or 1
    lines = []
    for low, high, count in rows:
        cells = count * width / peak
        bar = "█" * int(cells) + ("▌" if cells - int(cells) >= 0.5 else "")
        lines.append(f"  {low:>5.2f}–{high:<5.2f} │{bar:<{width + 1}}{count}")
    return lines


# --- PNG ---------------------------------------------------------------------------------------


def _steps(fine: Counter[int], step: int) -> tuple[list[int], list[float]]:
    """Regroup 0.01 cells into bins `step` cells wide: (counts, edges) for Axes.stairs."""
    grouped: Counter[int] = Counter()
    for cell, count in fine.items():
        grouped[cell // step] += count
    if not grouped:
        return [0], [0.0, 1.0]
    first, last = min(min(grouped), 0), max(max(grouped), _FINE // step - 1)
    counts = [grouped.get(k, 0) for k in range(first, last + 1)]
    return counts, [k * step / _FINE for k in range(first, last + 2)]


def plot_distribution(stats: ScoreStats, path: str | Path, title: str = "") -> None:
    """Write a PNG: the overall score histogram on top, one small histogram per layer below."""
    # The object API with the Agg canvas: no pyplot (no display, no global figure state).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from metric_cards.io_utils import atomic_writer

    layer_names = list(stats.layer_means())
    columns = max(1, min(4, len(layer_names)))
    rows = 1 + math.ceil(len(layer_names) / columns) if layer_names else 1
    fig = Figure(figsize=(3.2 * max(columns, 3), 3.0 * rows + 0.6))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows, columns, hspace=0.55, wspace=0.3)
    main = fig.add_subplot(grid[0, :])
    # stairs draws one artist per histogram (bar() would draw one per bin: much slower)
    counts, edges = _steps(stats.fine, round(stats.bucket_width * _FINE / 2) or 1)
    main.stairs(counts, edges, fill=True, color="#4c72b0")
    summary = stats.summary()
    if summary.count:
        main.axvline(summary.mean, color="#c44e52", linestyle="--", label="mean")
        main.axvline(summary.median, color="#55a868", linestyle=":", label="median")
        main.legend(loc="upper left")
    main.set_title(f"score (n={summary.count}, mean={summary.mean:.3f})")
    main.set_xlabel("score")
    main.set_ylabel("rollouts")
    main.yaxis.set_major_locator(MaxNLocator(integer=True))
    for index, name in enumerate(layer_names):
        ax = fig.add_subplot(grid[1 + index // columns, index % columns])
        layer = stats.layers[name]
        layer.flush()
        counts, edges = _steps(layer.fine, 5)
        ax.stairs(counts, edges, fill=True, color="#8172b2")
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(f"{name} (mean {layer.mean:.3f})", fontsize=10)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.subplots_adjust(left=0.07, right=0.98, top=0.88 if title else 0.93, bottom=0.08)
    if title:
        fig.suptitle(title)
    with atomic_writer(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
