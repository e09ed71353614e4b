#!/usr/bin/env python3
"""Extract prompt/completion pairs from a rollout file: every rollout scoring above a threshold.

A thin CLI over metric_cards.rollouts; see docs/data-scripts.md.
"""

from __future__ import annotations

import argparse
import sys

from metric_cards.cli_errors import run_cli
from metric_cards.io_utils import atomic_writer
from metric_cards.jsonutil import dumps_line
from metric_cards.script_options import (
    add_reader_arguments,
    add_score_threshold,
    check_output,
    make_reader,
    new_parser,
    print_read_summary,
    require_rollouts,
    strict_status,
)

EPILOG = """\
Writes one {"prompt": ..., "completion": ...} line per rollout whose score is above
(strictly greater than) --score_threshold. Every rollout of a group is considered, not only the
first. Completions are written as the model produced them; trainingDataScript.py is the one
that strips fences and checks the card.

examples:
  python extract_metric_training.py artifacts/metric_rollouts.jsonl data/metric_training.jsonl
  python extract_metric_training.py rollouts.jsonl out.jsonl --score_threshold 0.8
  python extract_metric_training.py legacy_rollouts.jsonl out.jsonl --rescore
"""


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "extract_metric_training.py",
        "Extract prompt/completion pairs above a score threshold from a rollout file.",
        EPILOG,
        output_help="prompt/completion JSONL to write",
    )
    add_score_threshold(parser)
    add_reader_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reader = make_reader(args, args.input)
    output = check_output(args.output, reader.path)
    kept = below = unscored = 0
    with atomic_writer(output, "wb") as out:
        for rollout in reader:
            if rollout.score is None:
                unscored += 1
            elif rollout.score > args.score_threshold:
                out.write(dumps_line({"prompt": rollout.prompt, "completion": rollout.completion}))
                kept += 1
            else:
                below += 1
        require_rollouts(reader.stats)  # raising here discards the temporary output
    print_read_summary(reader.stats)
    summary = f"wrote {kept} of {reader.stats.rollouts} rollouts to {output}"
    summary += f" ({below} at or below {args.score_threshold}"
    summary += f", {unscored} without a score)" if unscored else ")"
    print(summary)
    if kept == 0:
        print(f"warning: no rollout scored above {args.score_threshold}", file=sys.stderr)
    return strict_status(args, reader.stats)


if __name__ == "__main__":
    sys.exit(run_cli(main))
