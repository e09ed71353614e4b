"""`python -m metric_cards <command>`: the package's command-line tools.

Each command lives in its own module with a `main(argv) -> int`; this file only dispatches.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "score": ("metric_cards.score_cli", "score completions offline (JSONL in, JSONL out)"),
    "render": ("metric_cards.viewer", "render a rollout JSONL file to a self-contained HTML page"),
    "schema": ("metric_cards.schema", "print the metric card JSON Schema (for guided decoding)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = ["usage: python -m metric_cards <command> [args]", "", "commands:"]
        lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
        print(
            "\n".join(lines),
            file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout,
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
