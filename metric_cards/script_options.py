"""The options and messages the three data scripts share: parser, reader flags, output checks.

The scripts at the repo root (extract_metric_training.py, trainingDataScript.py,
show_score_distribution.py) are thin argparse front ends; this keeps them consistent: the same
reader flags, the same output checks, the same read summary. Errors and exit codes are
`metric_cards.cli_errors`, shared with `python -m metric_cards score|render`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

from metric_cards.cli_errors import EXIT_NO_DATA, EXIT_OK, NoDataError, UsageError
from metric_cards.io_utils import same_file
from metric_cards.rollouts import FORMAT_LEGACY, ReadStats, RolloutFileError, RolloutReader


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep the epilog's examples as written; show defaults that say something."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if "%(default)" not in text and not (
            default is None or default is False or default == argparse.SUPPRESS
        ):
            text += " (default: %(default)s)"
        return text


# One default for the two scripts that filter by score (tuned on the shared 3B corpus: answers
# to the asked metric score >= 0.84, answers about another metric mostly below 0.8).
DEFAULT_SCORE_THRESHOLD = 0.8


def new_parser(
    prog: str, description: str, epilog: str, output_help: str | None = None
) -> argparse.ArgumentParser:
    """The scripts' common parser: INPUT (and OUTPUT when `output_help` is given)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=HelpFormatter
    )
    parser.add_argument("input", metavar="INPUT", help="rollout JSONL (our format or legacy)")
    if output_help is not None:
        parser.add_argument("output", metavar="OUTPUT", help=output_help)
    return parser


def add_score_threshold(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--score_threshold",
        type=float,
        default=DEFAULT_SCORE_THRESHOLD,
        help="keep rollouts whose score is above this",
    )


def add_reader_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reading")
    group.add_argument(
        "--rescore",
        action="store_true",
        help="recompute scores of legacy files (whose scores are random) with the reward; "
        "files in our format keep the scores they carry",
    )
    group.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 if any line or rollout is malformed (outputs are still written)",
    )
    group.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal or the file is large)",
    )


def make_reader(args: argparse.Namespace, path: str | os.PathLike[str]) -> RolloutReader:
    try:
        return RolloutReader(path, rescore=args.rescore, progress=args.progress)
    except RolloutFileError as error:
        raise UsageError(str(error)) from None


def check_output(path: str | os.PathLike[str], *inputs: Path, what: str = "output") -> Path:
    """Validate an output path up front (before a long read) and create its directory."""
    out = Path(path)
    if out.is_dir():
        raise UsageError(f"{what} is a directory: {out}")
    for source in inputs:
        if same_file(out, source):  # the same path, a symlink or a hard link
            raise UsageError(f"{what} would overwrite the input file: {out}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the directory for {what} {out}: {error}") from None
    if not os.access(out.parent, os.W_OK):
        raise UsageError(f"cannot write {what} into {out.parent}")
    return out


def require_rollouts(stats: ReadStats) -> None:
    """Raise NoDataError when the read yielded no rollout at all."""
    if stats.rollouts:
        return
    if stats.malformed_lines:
        first = stats.first_issue
        detail = f" (first: line {first.line_number}: {first.message})" if first else ""
        raise NoDataError(
            f"no usable rollouts in {stats.path}: all {stats.malformed_lines} non-blank "
            f"line(s) are malformed{detail}"
        )
    raise NoDataError(f"no rollouts in {stats.path}: it has only blank lines")


def read_summary(stats: ReadStats) -> list[str]:
    formats = ", ".join(f"{n} {name}" for name, n in stats.formats.most_common())
    lines = [
        f"read {stats.rollouts} rollouts in {stats.groups} groups from {stats.path} "
        f"({stats.bytes_read / 1e6:.1f} MB; format: {formats or 'none'})"
    ]
    if stats.rescored:
        lines.append(f"rescored {stats.rescored} rollouts with the reward (legacy scores ignored)")
    elif stats.formats.get(FORMAT_LEGACY):
        lines.append("note: legacy rollouts carry random scores in [-0.5, 0.5]; see --rescore")
    bad = []
    if stats.malformed_lines:
        bad.append(f"{stats.malformed_lines} malformed line(s) skipped")
    if stats.malformed_rollouts:
        bad.append(f"{stats.malformed_rollouts} malformed rollout(s) skipped")
    if stats.warnings:
        bad.append(f"{stats.warnings} warning(s)")
    if bad:
        first = stats.first_issue
        where = f"; first at {first}" if first else ""
        lines.append("warning: " + ", ".join(bad) + where)
    return lines


def print_read_summary(stats: ReadStats, file: TextIO | None = None) -> None:
    for line in read_summary(stats):
        print(line, file=file or sys.stderr)


def strict_status(args: argparse.Namespace, stats: ReadStats) -> int:
    if args.strict and (stats.malformed_lines or stats.malformed_rollouts):
        print(
            f"error: --strict: {stats.malformed_lines + stats.malformed_rollouts} malformed "
            f"line(s)/rollout(s) in {stats.path}",
            file=sys.stderr,
        )
        return EXIT_NO_DATA
    return EXIT_OK
