#!/usr/bin/env python3
"""Build fine-tuning data from a rollout file: filtered, fence-stripped, deduplicated cards.

A thin CLI over metric_cards.rollouts and metric_cards.training_data; see docs/data-scripts.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from metric_cards.cli_errors import UsageError, run_cli
from metric_cards.io_utils import atomic_directory, atomic_writer, same_file
from metric_cards.jsonutil import dumps_line
from metric_cards.rollouts import Rollout
from metric_cards.score_stats import format_summary
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
from metric_cards.training_data import (
    DEDUP_MODES,
    FORMATS,
    HQ_FILENAME,
    SPLIT_MODES,
    Analysis,
    DatasetWriter,
    Decision,
    TrainingFilter,
    dataset_dir_problem,
    format_counts_table,
    format_reasons,
    may_replace_dataset,
    preference_pair,
)

EPILOG = f"""\
Keeps the rollouts whose score is above --score_threshold and whose completion is a metric card
(componentType "metricCard", props.title and props.value), strips code fences, <think> blocks
and prose around the JSON, drops duplicate cards and writes:

  OUTPUT          the fine-tuning file
  {HQ_FILENAME}
                  beside OUTPUT (or --hq_output): the kept rows with score >= --hq_threshold
  --dpo FILE      preference pairs: best vs worst rollout of each group
  --dataset DIR   a Hugging Face DatasetDict (train/validation) via save_to_disk; DIR must be
                  new, empty, or a dataset this script wrote before (anything else is refused)

Outputs are written atomically: an interrupted run leaves no partial file. An output that is
the input (same path, symlink or hard link) is refused.

examples:
  python trainingDataScript.py artifacts/metric_rollouts.jsonl data/metric_training.jsonl
  python trainingDataScript.py rollouts.jsonl data/train.jsonl --score_threshold 0.7 --analyze
  python trainingDataScript.py rollouts.jsonl data/chat.jsonl --format messages \\
      --dataset data/metric_cards_ds --val_fraction 0.1 --seed 42
  python trainingDataScript.py rollouts.jsonl data/train.jsonl --dpo data/dpo.jsonl --dpo_margin 0.3
  python trainingDataScript.py rollouts.jsonl data/train.jsonl --debug 2>&1 | less
"""


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "trainingDataScript.py",
        "Build fine-tuning data (and optionally a dataset, DPO pairs) from rollouts.",
        EPILOG,
        output_help="fine-tuning JSONL to write",
    )
    add_score_threshold(parser)
    parser.add_argument(
        "--hq_threshold",
        type=float,
        default=0.9,
        help=f"rows with score at least this also go to {HQ_FILENAME}",
    )
    parser.add_argument(
        "--hq_output",
        metavar="FILE",
        help=f"where to write the high-quality file (default: {HQ_FILENAME} beside OUTPUT)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="prompt_completion",
        help='rows as {"prompt","completion"} or chat {"messages": [system, user, assistant]}',
    )
    parser.add_argument(
        "--dedup",
        choices=DEDUP_MODES,
        default="prompt",
        help="drop a card identical (up to key order/whitespace) to one already kept for the "
        "same prompt ('prompt'), for any prompt ('global'), or never ('off')",
    )
    parser.add_argument(
        "--metadata",
        action="store_true",
        help="add score, metric, domain, period and source (LINE:ROLLOUT) to every row",
    )
    parser.add_argument("--analyze", action="store_true", help="print statistics of the run")
    parser.add_argument(
        "--debug", action="store_true", help="print every rollout's decision and sample output"
    )
    group = parser.add_argument_group("dataset")
    group.add_argument("--dataset", metavar="DIR", help="also save a datasets.DatasetDict here")
    group.add_argument("--val_fraction", type=float, default=0.1, help="validation share")
    group.add_argument("--seed", type=int, default=0, help="seed of the train/validation split")
    group.add_argument(
        "--split_by",
        choices=SPLIT_MODES,
        default="prompt",
        help="'prompt': all rollouts of a prompt in one split (no leakage; sizes approximate); "
        "'row': datasets' train_test_split (exact sizes)",
    )
    group = parser.add_argument_group("preference pairs")
    group.add_argument("--dpo", metavar="FILE", help="write best-vs-worst pairs per group here")
    group.add_argument(
        "--dpo_margin", type=float, default=0.2, help="minimum score gap between chosen/rejected"
    )
    add_reader_arguments(parser)
    return parser


def _check_args(args: argparse.Namespace, input_path: Path) -> dict[str, Path | None]:
    if not 0.0 <= args.val_fraction < 1.0:
        raise UsageError(f"--val_fraction must be in [0, 1), got {args.val_fraction}")
    if args.dpo_margin < 0:
        raise UsageError(f"--dpo_margin must be >= 0, got {args.dpo_margin}")
    output = check_output(args.output, input_path)
    hq = check_output(
        args.hq_output or output.parent / HQ_FILENAME, input_path, what="high-quality output"
    )
    if same_file(hq, output):
        raise UsageError(f"OUTPUT and the high-quality file are the same file: {output}")
    dpo = check_output(args.dpo, input_path, what="--dpo file") if args.dpo else None
    if dpo is not None and (same_file(dpo, output) or same_file(dpo, hq)):
        raise UsageError(f"--dpo would overwrite another output: {dpo}")
    dataset = None
    if args.dataset:
        dataset = Path(args.dataset)
        problem = dataset_dir_problem(dataset, [p for p in (input_path, output, hq, dpo) if p])
        if problem is not None:
            raise UsageError(f"--dataset: {problem}")
        try:
            dataset.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"--dataset: cannot create {dataset.parent}: {error}") from None
    return {"output": output, "hq": hq, "dpo": dpo, "dataset": dataset}


def _debug(rollout: Rollout, decision: Decision, threshold: float) -> None:
    score = "none" if rollout.score is None else f"{rollout.score:.3f}"
    verdict = "kept" if decision.kept else f"dropped: {decision.reason}"
    if decision.reason.startswith("score at or below"):
        verdict += f" {threshold}"
    if decision.example is not None and decision.example.high_quality:
        verdict += " (high quality)"
    where = f"line {rollout.line_number} rollout {rollout.rollout_index}"
    print(f"[debug] {where} score {score}: {verdict}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reader = make_reader(args, args.input)
    paths = _check_args(args, reader.path)
    training = TrainingFilter(
        score_threshold=args.score_threshold,
        hq_threshold=args.hq_threshold,
        fmt=args.format,
        dedup=args.dedup,
        metadata=args.metadata,
    )
    analysis = Analysis() if args.analyze else None
    samples: list[dict[str, Any]] = []
    kept = high_quality = pairs = groups = 0
    split_sizes: dict[str, int] = {}

    # Every output is a temporary until the whole read succeeded; any error or Ctrl-C removes
    # them all (ExitStack unwinds each atomic_writer).
    with contextlib.ExitStack() as stack:
        output, hq = paths["output"], paths["hq"]
        assert output is not None and hq is not None  # always set by _check_args
        out = stack.enter_context(atomic_writer(output, "wb"))
        hq_out = stack.enter_context(atomic_writer(hq, "wb"))
        dpo_out = stack.enter_context(atomic_writer(paths["dpo"], "wb")) if paths["dpo"] else None
        dataset_writer = None
        if paths["dataset"] is not None:
            scratch = stack.enter_context(
                tempfile.TemporaryDirectory(
                    prefix=f".{paths['dataset'].name}.",
                    suffix=".scratch",
                    dir=paths["dataset"].parent,
                )
            )
            dataset_writer = DatasetWriter(
                Path(scratch), args.seed, args.val_fraction, args.split_by
            )
            stack.callback(dataset_writer.close)

        for group in reader.groups():
            groups += 1
            for rollout in group.rollouts:
                decision = training.consider(rollout)
                if analysis is not None:
                    analysis.add(rollout, decision)
                if args.debug:
                    _debug(rollout, decision, args.score_threshold)
                example = decision.example
                if example is None:
                    continue
                line = dumps_line(example.row)
                out.write(line)
                kept += 1
                if example.high_quality:
                    hq_out.write(line)
                    high_quality += 1
                if dataset_writer is not None:
                    dataset_writer.add(example.row, rollout.prompt)
                if args.debug and len(samples) < 3:
                    samples.append(example.row)
            if dpo_out is not None:
                pair = preference_pair(group, args.dpo_margin, args.format)
                if pair is not None:
                    dpo_out.write(dumps_line(pair))
                    pairs += 1
        require_rollouts(reader.stats)  # raising here discards every temporary output
        if dataset_writer is not None and paths["dataset"] is not None:
            with atomic_directory(paths["dataset"], may_replace_dataset) as target:
                split_sizes = dataset_writer.save(target)

    stats = reader.stats
    print_read_summary(stats)
    dropped = stats.rollouts - kept
    print(f"kept {kept} of {stats.rollouts} rollouts -> {paths['output']} ({args.format})")
    print(f"dropped {dropped}, of which {training.duplicates} duplicate completion(s)")
    print(f"high quality (score >= {args.hq_threshold}): {high_quality} -> {paths['hq']}")
    if paths["dpo"] is not None:
        print(f"DPO pairs (gap >= {args.dpo_margin}): {pairs} of {groups} groups -> {paths['dpo']}")
    if paths["dataset"] is not None:
        sizes = ", ".join(f"{name} {size}" for name, size in split_sizes.items())
        print(
            f"dataset -> {paths['dataset']} ({sizes}; split by {args.split_by}, seed {args.seed})"
        )
    if kept == 0:
        print("warning: no rollout was kept; see --analyze for why", file=sys.stderr)
    if analysis is not None:
        _print_analysis(analysis, training, stats.rollouts, args)
    if args.debug and samples:
        print("\nsample output (first rows written):", file=sys.stderr)
        for row in samples:
            print(json.dumps(row, indent=2, ensure_ascii=False), file=sys.stderr)
    return strict_status(args, stats)


def _print_analysis(
    analysis: Analysis, training: TrainingFilter, total: int, args: argparse.Namespace
) -> None:
    print(f"\nDecisions (threshold: score > {args.score_threshold}):")
    print("\n".join(format_reasons(training.reasons, total)))
    print("\nScores, all rollouts:")
    print("\n".join(format_summary(analysis.all_scores)))
    if analysis.all_scores.missing_scores:
        print(f"  (and {analysis.all_scores.missing_scores} rollouts without a score)")
    print("\nScores, kept rollouts:")
    print("\n".join(format_summary(analysis.kept_scores)))
    layer_means = analysis.all_scores.layer_means()
    if layer_means:
        kept_means = analysis.kept_scores.layer_means()
        print("\nLayer means (all / kept):")
        for name, mean in layer_means.items():
            print(f"  {name:<12} {mean:.4f} / {kept_means.get(name, float('nan')):.4f}")
    print("\nFinish reasons:")
    for reason, count in analysis.finish_reasons.most_common():
        print(f"  {reason:<12} {count:>8}")
    print("\nPer metric:")
    print("\n".join(format_counts_table("metric", analysis.metrics)))
    print("\nPer domain:")
    print("\n".join(format_counts_table("domain", analysis.domains)))
    if analysis.problems:
        print("\nMost common problems (from the reward):")
        for problem, count in analysis.problems.most_common(15):
            print(f"  {count:>8}  {problem}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
