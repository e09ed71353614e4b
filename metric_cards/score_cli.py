"""`python -m metric_cards score IN.jsonl [-o OUT.jsonl]`: score completions offline.

Each input line is {"prompt": str, "completion": str} with an optional "finish_reason". Each
output line is the input object plus "score" (exactly `score_completion(...).score` with
`request=parse_request(prompt)`), "layers" and "problems". Malformed lines are reported on stderr
with their line number and skipped; the exit status is non-zero only when nothing was scored.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from metric_cards.catalog import parse_request
from metric_cards.reward import score_completion

EXIT_OK = 0
EXIT_NOTHING_SCORED = 1
EXIT_USAGE = 2

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
        prog="python -m metric_cards score",
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


def score_lines(lines: Iterable[str], errors: IO[str]) -> Iterator[dict[str, Any]]:
    """Score each valid line; report each bad one on `errors` with its line number."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            print(f"line {number}: skipped, not valid JSON ({error})", file=errors)
            continue
        problem = _problem_with(record)
        if problem is not None:
            print(f"line {number}: skipped, {problem}", file=errors)
            continue
        yield score_record(record)


def _write_lines(records: Iterable[dict[str, Any]], out: IO[str]) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def _write_atomically(path: str, records: Iterable[dict[str, Any]]) -> int:
    """Write to a temporary file beside `path`, then rename: an interrupted run leaves no part."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".score-", suffix=".jsonl.tmp", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            count = _write_lines(records, out)
        if count:
            os.replace(temporary, path)
        else:
            os.unlink(temporary)
        return count
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _utf8(stream: IO[str]) -> None:
    """Completions hold any Unicode: write UTF-8 whatever the locale says."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(ValueError, OSError):
            reconfigure(encoding="utf-8")


def _open_input(path: str) -> IO[str]:
    if path == "-":
        return sys.stdin
    return open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed by caller


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.input != "-" and not os.path.isfile(args.input):
        print(f"error: input file not found: {args.input}", file=sys.stderr)
        return EXIT_USAGE
    if args.output is not None:
        target_dir = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(target_dir):
            print(f"error: output directory does not exist: {target_dir}", file=sys.stderr)
            return EXIT_USAGE
    try:
        source = _open_input(args.input)
    except OSError as error:
        print(f"error: cannot read {args.input}: {error.strerror or error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        records = score_lines(source, sys.stderr)
        if args.output is None:
            _utf8(sys.stdout)
            count = _write_lines(records, sys.stdout)
            sys.stdout.flush()
        else:
            count = _write_atomically(args.output, records)
    except BrokenPipeError:  # the reader went away (`| head`): not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's exit flush quiet
        return EXIT_OK
    except OSError as error:
        print(f"error: {error.strerror or error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if source is not sys.stdin:
            source.close()
    if count == 0:
        print("error: no line could be scored", file=sys.stderr)
        return EXIT_NOTHING_SCORED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
