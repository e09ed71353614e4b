"""Unit tests of metric_cards.score_stats: what show_score_distribution.py and the viewer print."""

from __future__ import annotations

import math
import random
import statistics
from pathlib import Path

import pytest

from metric_cards import score_stats
from metric_cards.score_stats import (
    LayerStats,
    ScoreStats,
    bucket_index,
    format_bucket_table,
    format_histogram,
    format_summary,
    format_threshold_table,
    plot_distribution,
)


@pytest.mark.parametrize(
    ("score", "width", "index"),
    [
        (0.0, 0.1, 0),
        (0.05, 0.1, 0),
        (0.1, 0.1, 1),
        (0.3, 0.1, 3),  # 0.3 / 0.1 is 2.9999999999999996 in floats
        (0.7, 0.1, 7),
        (0.9999, 0.1, 9),
        (1.0, 0.1, 9),  # [0.9, 1.0] is closed
        (1.0, 0.25, 3),
        (1.0, 0.3, 3),  # 1.0 is not an edge of 0.3-wide buckets: [0.9, 1.2)
        (-0.5, 0.1, -5),  # legacy scores
        (-0.05, 0.1, -1),
    ],
)
def test_bucket_index(score: float, width: float, index: int) -> None:
    assert bucket_index(score, width) == index


def test_summary_matches_statistics() -> None:
    rng = random.Random(3)
    values = [rng.random() for _ in range(1001)]
    stats = ScoreStats()
    for value in values:
        stats.add(value)
    stats.add(None)
    summary = stats.summary()
    assert summary.count == stats.count == 1001 and stats.missing_scores == 1
    assert summary.min == min(values) and summary.max == max(values)
    assert summary.mean == pytest.approx(statistics.fmean(values), abs=1e-12)
    assert summary.median == statistics.median(values)
    assert summary.std == pytest.approx(statistics.pstdev(values), abs=1e-12)
    assert stats.median() == summary.median


def test_empty_stats() -> None:
    stats = ScoreStats()
    summary = stats.summary()
    assert summary.count == 0 and math.isnan(summary.mean)
    assert format_summary(stats) == ["  no scores"]
    assert stats.bucket_rows() == [] and format_histogram(stats) == []
    assert stats.at_least([0.5]) == [(0.5, 0)]


def test_at_least_is_exact_with_a_tolerance_for_float_noise() -> None:
    stats = ScoreStats()
    for value in (0.1 + 0.2, 0.3, 0.7, 0.69999999999, 1.0):  # 0.1 + 0.2 is 0.30000000000000004
        stats.add(value)
    assert stats.at_least([0.3, 0.7, 1.0, 1.5]) == [(0.3, 5), (0.7, 3), (1.0, 1), (1.5, 0)]


def test_bucket_rows_cover_zero_to_one_and_widen_for_legacy_scores() -> None:
    stats = ScoreStats(bucket_width=0.25)
    for value in (0.0, 0.3, 0.3, 1.0):
        stats.add(value)
    assert stats.bucket_rows() == [(0.0, 0.25, 1), (0.25, 0.5, 2), (0.5, 0.75, 0), (0.75, 1.0, 1)]
    legacy = ScoreStats()
    for value in (-0.45, 0.45):
        legacy.add(value)
    rows = legacy.bucket_rows()
    assert rows[0] == (-0.5, -0.4, 1) and rows[-1] == (0.9, 1.0, 0)
    assert len(rows) == 15 and sum(count for _, _, count in rows) == 2


def test_text_tables() -> None:
    stats = ScoreStats()
    for value in (0.05, 0.55, 0.95, 1.0):
        stats.add(value)
    table = format_bucket_table(stats)
    assert table[1] == "  [0.00, 0.10)         1    25.0%"
    assert table[-1] == "  [0.90, 1.00]         2    50.0%"  # the last bucket is closed
    assert len(table) == 11
    assert format_threshold_table(stats, [0.5, 1.0])[1:] == [
        "  0.50             3    75.0%",
        "  1.00             1    25.0%",
    ]
    bars = format_histogram(stats, width=10)
    assert bars[-1].endswith("│" + "█" * 10 + " 2")  # the fullest bucket fills the width
    assert bars[0].endswith("│" + "█" * 5 + " " * 6 + "1")
    assert format_summary(stats)[0] == "  count  4"


def test_layer_stats_are_batched_and_ordered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(score_stats, "_BATCH", 3)  # several vectorised flushes
    stats = ScoreStats()
    for i in range(10):
        stats.add(0.5, {"zeta": 1.0, "formatting": i / 10, "validity": 1.0})
    means = stats.layer_means()
    assert list(means) == ["validity", "formatting", "zeta"]  # the reward's order, then others
    assert means["formatting"] == pytest.approx(0.45)
    layer = stats.layers["formatting"]
    assert layer.count == 10 and sum(layer.fine.values()) == 10
    assert layer.fine[30] == 1 and layer.fine[90] == 1  # 0.3 and 0.9 on the 0.01 grid
    assert math.isnan(LayerStats().mean)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    stats = ScoreStats()
    for i in range(50):
        stats.add(i / 49, {"validity": 1.0, "schema": i / 49})
    target = tmp_path / "scores.png"
    plot_distribution(stats, target, title="test")
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    assert [p.name for p in tmp_path.iterdir()] == ["scores.png"]  # no temporary left
