#!/usr/bin/env python3
"""Show the score distribution of a rollout file: summary, layers, buckets, thresholds, histogram.

A thin CLI over metric_cards.rollouts and metric_cards.score_stats; see docs/data-scripts.md.
"""

from __future__ import annotations

import argparse
import sys

from metric_cards.cli_errors import UsageError, run_cli
from metric_cards.score_stats import (
    DEFAULT_THRESHOLDS,
    ScoreStats,
    format_bucket_table,
    format_histogram,
    format_summary,
    format_threshold_table,
    plot_distribution,
)
from metric_cards.script_options import (
    add_reader_arguments,
    check_output,
    make_reader,
    new_parser,
    print_read_summary,
    require_rollouts,
    strict_status,
)

MIN_BUCKET_WIDTH = 0.01

EPILOG = """\
Prints count, min, max, mean, median and std of the rollout scores, the mean of each reward
layer (validity, schema, semantic, formatting: files in our format carry them), the score
buckets (width 0.1) with counts and percentages, how many rollouts reach each threshold, and a
histogram. --plot also writes a PNG (overall and per layer). Scores must be finite and in
[0, 1] (files in our format) or [-1, 1] (legacy and other envs' files); a rollout whose score is
not is reported and skipped like any malformed rollout.

examples:
  python show_score_distribution.py artifacts/metric_rollouts.jsonl
  python show_score_distribution.py rollouts.jsonl --plot scores.png
  python show_score_distribution.py legacy_rollouts.jsonl --rescore
  python show_score_distribution.py rollouts.jsonl --thresholds 0.25,0.5,0.75,1
"""


def _thresholds(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        message = f"not a comma-separated list of numbers: {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if not values:
        raise argparse.ArgumentTypeError("no thresholds given")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "show_score_distribution.py", "Show the score distribution of a rollout file.", EPILOG
    )
    parser.add_argument("--plot", metavar="FILE", help="also write a PNG histogram here")
    parser.add_argument(
        "--thresholds",
        type=_thresholds,
        default=list(DEFAULT_THRESHOLDS),
        help="comma-separated thresholds for the 'score >=' table",
    )
    parser.add_argument(
        "--bucket_width", type=float, default=0.1, help="width of the score buckets"
    )
    add_reader_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not MIN_BUCKET_WIDTH <= args.bucket_width <= 1:  # bounds the table: at most 200 rows
        raise UsageError(
            f"--bucket_width must be in [{MIN_BUCKET_WIDTH}, 1], got {args.bucket_width}"
        )
    reader = make_reader(args, args.input)
    plot = check_output(args.plot, reader.path, what="--plot file") if args.plot else None
    stats = ScoreStats(bucket_width=args.bucket_width)
    for rollout in reader:
        stats.add(rollout.score, rollout.layers)
    require_rollouts(reader.stats)
    print_read_summary(reader.stats)

    print(f"Score distribution of {reader.path} ({stats.count} scored rollouts)")
    print("\n".join(format_summary(stats)))
    if stats.missing_scores:
        print(f"  ({stats.missing_scores} rollouts have no score)")
    layer_means = stats.layer_means()
    print("\nLayer means:")
    if layer_means:
        for name, mean in layer_means.items():
            print(f"  {name:<12} {mean:.4f}  (n={stats.layers[name].count})")
    else:
        print("  none in this file (legacy files carry no layers; try --rescore)")
    print(f"\nScore buckets (width {args.bucket_width:g}):")
    print("\n".join(format_bucket_table(stats)))
    print("\nRollouts at or above each threshold:")
    print("\n".join(format_threshold_table(stats, args.thresholds)))
    print("\nHistogram:")
    print("\n".join(format_histogram(stats)))
    if plot is not None and stats.count:
        plot_distribution(stats, plot, title=reader.path.name)
        print(f"\nwrote {plot}")
    elif plot is not None:
        print("warning: no scores to plot; no PNG written", file=sys.stderr)
    return strict_status(args, reader.stats)


if __name__ == "__main__":
    sys.exit(run_cli(main))
