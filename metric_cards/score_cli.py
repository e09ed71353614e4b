"""`python -m metric_cards score IN.jsonl [-o OUT.jsonl]`: score completions offline.

Each input line is {"prompt": str, "completion": str} with an optional "finish_reason". Each
output line is the input object plus "score" (exactly `score_completion(...).score` with
`request=parse_request(prompt)`), "layers" and "problems". Lines are parsed by the package's one
JSON loader (`metric_cards.jsonutil.loads`, as the data scripts read theirs: a byte order mark
before the first line is ignored; invalid UTF-8, lone surrogate escapes and nesting deeper than
its limit make a line bad). Bad lines are reported on stderr with their line number, skipped and
counted; the exit status is non-zero only when nothing was scored. Exit codes and errors are
`metric_cards.cli_errors`'. An output that is the input (a symlink or a hard link to it, or the
file stdin reads) is refused.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

from metric_cards.catalog import parse_request
from metric_cards.cli_errors import NoDataError, UsageError, run_cli
from metric_cards.io_utils import atomic_writer, same_file
from metric_cards.jsonutil import UTF8_BOM, JsonLineError, dumps_line, loads
from metric_cards.reward import score_completion

PROG = "python -m metric_cards score"

_EPILOG = """\
input lines:  {"prompt": "...", "completion": "...", "finish_reason": "stop"}
              (finish_reason is optional: "length" marks a cut-off completion)
output lines: the input fields plus "score", "layers" and "problems"
bad lines are reported on stderr with their line number and skipped

examples:
  python -m metric_cards score rollouts.jsonl -o scored.jsonl
  cat rollouts.jsonl | python -m metric_cards score - | jq .score
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Score metric card completions with the env's reward (JSONL in, JSONL out).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", metavar="IN.jsonl", help="input JSONL file, or - for stdin")
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT.jsonl",
        help="write here (atomically: all or nothing) instead of stdout",
    )
    return parser


def _problem_with(record: Any) -> str | None:
    """Why a parsed input line cannot be scored, or None when it can."""
    if not isinstance(record, dict):
        return "not a JSON object"
    for key in ("prompt", "completion"):
        if key not in record:
            return f'missing "{key}"'
        if not isinstance(record[key], str):
            return f'"{key}" must be a string'
    reason = record.get("finish_reason")
    if reason is not None and not isinstance(reason, str):
        return '"finish_reason" must be a string or null'
    return None


def score_record(record: dict[str, Any]) -> dict[str, Any]:
    """The input record plus its score, layers and problems."""
    result = score_completion(
        record["completion"], parse_request(record["prompt"]), record.get("finish_reason")
    )
    return {
        **record,
        "score": result.score,
        "layers": dict(result.layers),
        "problems": list(result.problems),
    }


@dataclass
class ScoreCounts:
    scored: int = 0
    skipped: int = 0
    first_skipped: str | None = None


def score_lines(
    lines: Iterable[bytes], errors: IO[str], counts: ScoreCounts | None = None
) -> Iterator[dict[str, Any]]:
    """Score each valid line; report each bad one on `errors` with its line number."""
    counts = counts if counts is not None else ScoreCounts()
    for number, line in enumerate(lines, start=1):
        if number == 1 and line.startswith(UTF8_BOM):
            line = line[len(UTF8_BOM) :]
        if not line.strip():
            continue
        try:
            record = loads(line)
        except JsonLineError as error:
            problem: str | None = str(error)
        else:
            problem = _problem_with(record)
        if problem is not None:
            message = f"line {number}: skipped, {problem}"
            print(message, file=errors)
            counts.skipped += 1
            counts.first_skipped = counts.first_skipped or message
            continue
        yield score_record(record)
        counts.scored += 1


def _write_lines(records: Iterable[dict[str, Any]], out: IO[bytes]) -> None:
    for record in records:
        out.write(dumps_line(record))


def _open_input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None


def _check_paths(args: argparse.Namespace) -> None:
    if args.input != "-" and not os.path.isfile(args.input):
        raise UsageError(f"input file not found: {args.input}")
    if args.output is None:
        return
    target_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(target_dir):
        raise UsageError(f"output directory does not exist: {target_dir}")
    if os.path.isdir(args.output):
        raise UsageError(f"output is a directory: {args.output}")
    source: str | int = sys.stdin.fileno() if args.input == "-" else args.input
    if same_file(args.output, source):
        raise UsageError(f"the output would overwrite the input: {args.output}")


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    _check_paths(args)
    source = _open_input(args.input)
    counts = ScoreCounts()
    try:
        records = score_lines(source, sys.stderr, counts)
        if args.output is None:
            _write_lines(records, sys.stdout.buffer)
            sys.stdout.flush()
        else:
            with atomic_writer(args.output, "wb") as out:
                _write_lines(records, out)
                if not counts.scored:  # raising here leaves any previous output as it was
                    raise NoDataError("no line could be scored")
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    if counts.skipped:
        print(
            f"scored {counts.scored} line(s), skipped {counts.skipped}; "
            f"first: {counts.first_skipped}",
            file=sys.stderr,
        )
    if not counts.scored:
        raise NoDataError("no line could be scored")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
