"""How every command-line tool of the package ends: one set of exit codes, one error handler.

The data scripts (extract_metric_training.py, trainingDataScript.py, show_score_distribution.py)
and `python -m metric_cards score|render` run their `main` through `run_cli`, so a user mistake
is one `PROG: error: ...` line (never a traceback) and the exit codes mean the same everywhere:

    0    done
    1    nothing usable in the input (or a malformed line under --strict); an I/O error
    2    a usage mistake: bad flag, missing/empty/unreadable input, an output that is an input
    130  interrupted (Ctrl-C)
    129  hung up (SIGHUP), 143 terminated (SIGTERM): outputs not yet renamed into place are removed
    141  the reader of stdout went away (`| head`), as a shell reports a process killed by SIGPIPE
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from metric_cards.io_utils import exit_cleanly_on_sigterm

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_INTERRUPTED",
    "EXIT_NO_DATA",
    "EXIT_OK",
    "EXIT_USAGE",
    "NoDataError",
    "UsageError",
    "run_cli",
]

EXIT_OK, EXIT_NO_DATA, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 130, 141


class UsageError(Exception):
    """A mistake in how the tool was called; printed as `error: ...`, exit code 2."""


class NoDataError(Exception):
    """The input holds nothing usable; printed as `error: ...`, exit code 1."""


def _silence_stdout() -> None:
    # Point stdout at /dev/null so the interpreter's final flush does not fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (tests): nothing to flush
        pass
    finally:
        os.close(devnull)


def run_cli(
    main: Callable[[list[str] | None], int],
    argv: Sequence[str] | None = None,
    prog: str | None = None,
) -> int:
    """Run `main(argv)` with the shared signal and error handling; returns the exit code."""
    exit_cleanly_on_sigterm()
    name = prog or Path(sys.argv[0]).name
    try:
        return main(None if argv is None else list(argv))
    except UsageError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except NoDataError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return EXIT_NO_DATA
    except KeyboardInterrupt:
        print(f"{name}: interrupted; output files left as they were", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly, as other tools do
        _silence_stdout()
        return EXIT_BROKEN_PIPE  # outputs not yet renamed into place were discarded
    except OSError as error:  # disk full, permissions: say so without a traceback
        print(f"{name}: error: {error}", file=sys.stderr)
        return EXIT_NO_DATA
