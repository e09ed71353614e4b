"""Streaming score statistics: summary numbers, bucket and threshold tables, histograms.

`ScoreStats` takes one score at a time. Count, mean and std use Welford's running update; the
exact median needs the scores themselves, kept in an `array('d')` (8 bytes a rollout: 8 MB for a
million rollouts, far less than the file), and histograms keep counts on a fixed 0.01 grid.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LAYERS = ("validity", "schema", "semantic", "formatting")
DEFAULT_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_FINE = 100  # histogram grid: 1/_FINE wide cells


def bucket_index(score: float, width: float = 0.1) -> int:
    """Index k of the bucket [k*width, (k+1)*width) holding `score`.

    Rounding first keeps 0.3 in [0.3, 0.4) although 0.3/0.1 is 2.9999999999999996 in floats.
    A score of exactly 1.0 goes to the last bucket below it, so [0.9, 1.0] is closed.
    """
    k = math.floor(round(score / width, 9))
    if k > 0 and math.isclose(k * width, 1.0) and score <= 1.0:
        k -= 1
    return k


@dataclass
class RunningMean:
    """Count, mean, min, max and std of a stream (Welford), without keeping the values."""

    count: int = 0
    mean: float = 0.0
    _m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self._m2 += delta * (value - self.mean)
        self.min = min(self.min, value)
        self.max = max(self.max, value)

    @property
    def std(self) -> float:
        """Population standard deviation (0 for fewer than two values)."""
        return math.sqrt(self._m2 / self.count) if self.count > 1 else 0.0


@dataclass
class ScoreStats:
    """Everything show_score_distribution.py reports, built one rollout at a time."""

    bucket_width: float = 0.1
    summary: RunningMean = field(default_factory=RunningMean)
    scores: array = field(default_factory=lambda: array("d"))  # for the exact median/thresholds
    buckets: Counter[int] = field(default_factory=Counter)
    fine: Counter[int] = field(default_factory=Counter)  # 0.01 grid, for the PNG
    layers: dict[str, RunningMean] = field(default_factory=dict)
    layer_fine: dict[str, Counter[int]] = field(default_factory=dict)
    missing_scores: int = 0

    def add(self, score: float | None, layers: Mapping[str, float] | None = None) -> None:
        if score is None:
            self.missing_scores += 1
        else:
            self.summary.add(score)
            self.scores.append(score)
            self.buckets[bucket_index(score, self.bucket_width)] += 1
            self.fine[bucket_index(score, 1 / _FINE)] += 1
        for name, value in (layers or {}).items():
            self.layers.setdefault(name, RunningMean()).add(value)
            self.layer_fine.setdefault(name, Counter())[bucket_index(value, 1 / _FINE)] += 1

    @property
    def count(self) -> int:
        return self.summary.count

    def _sorted(self) -> np.ndarray:
        # numpy views the array's buffer: no per-score Python objects, 8 bytes a score.
        return np.sort(np.frombuffer(self.scores, dtype=np.float64))

    def median(self) -> float:
        return float(np.median(np.frombuffer(self.scores))) if self.scores else math.nan

    def at_least(self, thresholds: Iterable[float]) -> list[tuple[float, int]]:
        """[(t, number of scores >= t)], exact."""
        ordered = self._sorted()
        # A 1e-9 tolerance so a score written as 0.7 counts for ">= 0.7" whatever the rounding.
        return [(t, int(len(ordered) - np.searchsorted(ordered, t - 1e-9))) for t in thresholds]

    def bucket_rows(self) -> list[tuple[float, float, int]]:
        """[(low, high, count)] for every bucket of [0, 1], widened to any score outside it."""
        if not self.buckets:
            return []
        width = self.bucket_width
        low = min(0, min(self.buckets))
        high = max(bucket_index(1.0, width), max(self.buckets))
        return [
            (round(k * width, 10), round((k + 1) * width, 10), self.buckets.get(k, 0))
            for k in range(low, high + 1)
        ]

    def layer_means(self) -> dict[str, float]:
        ordered = [n for n in LAYERS if n in self.layers] + sorted(set(self.layers) - set(LAYERS))
        return {name: self.layers[name].mean for name in ordered}


# --- text output -------------------------------------------------------------------------------


def format_summary(stats: ScoreStats, indent: str = "  ") -> list[str]:
    s = stats.summary
    if not s.count:
        return [f"{indent}no scores"]
    return [
        f"{indent}count  {s.count}",
        f"{indent}min    {s.min:.4f}",
        f"{indent}max    {s.max:.4f}",
        f"{indent}mean   {s.mean:.4f}",
        f"{indent}median {stats.median():.4f}",
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


def _bars(fine: Counter[int], step: int) -> tuple[list[float], list[int], float]:
    """Regroup 0.01 cells into bars `step` cells wide: (left edges, counts, bar width)."""
    grouped: Counter[int] = Counter()
    for cell, count in fine.items():
        grouped[cell // step] += count
    lefts = sorted(grouped)
    return [k * step / _FINE for k in lefts], [grouped[k] for k in lefts], step / _FINE


def plot_distribution(stats: ScoreStats, path: str | Path, title: str = "") -> None:
    """Write a PNG: the overall score histogram on top, one small histogram per layer below."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers/CI; must precede pyplot
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from metric_cards.io_utils import atomic_writer

    layer_names = list(stats.layer_means())
    columns = max(1, min(4, len(layer_names)))
    rows = 1 + math.ceil(len(layer_names) / columns) if layer_names else 1
    fig = plt.figure(figsize=(3.2 * max(columns, 3), 3.0 * rows + 0.6), layout="constrained")
    grid = fig.add_gridspec(rows, columns)
    main = fig.add_subplot(grid[0, :])
    lefts, counts, width = _bars(stats.fine, round(stats.bucket_width * _FINE / 2) or 1)
    main.bar(lefts, counts, width=width, align="edge", color="#4c72b0", edgecolor="white")
    if stats.count:
        main.axvline(stats.summary.mean, color="#c44e52", linestyle="--", label="mean")
        main.axvline(stats.median(), color="#55a868", linestyle=":", label="median")
        main.legend()
    main.set_title(f"score (n={stats.count}, mean={stats.summary.mean:.3f})")
    main.set_xlabel("score")
    main.set_ylabel("rollouts")
    main.yaxis.set_major_locator(MaxNLocator(integer=True))
    for index, name in enumerate(layer_names):
        ax = fig.add_subplot(grid[1 + index // columns, index % columns])
        lefts, counts, width = _bars(stats.layer_fine[name], 5)
        ax.bar(lefts, counts, width=width, align="edge", color="#8172b2", edgecolor="white")
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(f"{name} (mean {stats.layers[name].mean:.3f})", fontsize=10)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    with atomic_writer(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
