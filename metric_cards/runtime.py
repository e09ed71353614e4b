"""Run-time plumbing around atroposlib: the process environment, wandb without a key,
reachability of the inference server, and the CLI's error handling: a run that cannot go on ends
with one line and an exit code, never a traceback for a user's mistake.

Kept free of heavy imports: `quiet_interrupts` must be installed before atroposlib, wandb and
transformers take their seconds to import.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger("metric_cards")


class FatalEnvError(RuntimeError):
    """A run cannot go on (server unreachable, bad config). Shown as one message, exit code 1."""


EXIT_FAILED = 1  # the run started and could not go on
EXIT_USAGE = 2  # bad flags or config
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def quiet_interrupts() -> None:
    """Ctrl-C anywhere (imports included) prints "interrupted" instead of a traceback; the
    interpreter still exits as killed by SIGINT. Other exceptions keep the default hook."""
    default_hook = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            print("interrupted", file=sys.stderr, flush=True)
            return
        default_hook(kind, exc, tb)

    sys.excepthook = hook


def prepare_environment() -> None:
    """Process-wide settings for a run, before atroposlib and transformers are imported."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub at run time
    # Tokenizers only: transformers' "PyTorch was not found" notice is noise here.
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings(
        "ignore", message="You are using a local Base URL", category=UserWarning
    )
    warnings.filterwarnings("ignore", message="Trainer requested to ignore max length")


def describe_validation_error(exc: Any) -> str:
    """A pydantic ValidationError as one line per problem, named as the flag a user typed:
    `--env.group_size: Input should be greater than or equal to 1 (got 0)`."""
    prefix = "openai" if getattr(exc, "title", "") == "APIServerConfig" else "env"
    lines = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            message = "unknown option"
        elif loc and "input" in error:
            message += f" (got {error['input']!r})"
        lines.append(f"--{prefix}.{loc}: {message}" if loc else message)
    return "; ".join(lines)


def cli_exit_code(exc: BaseException) -> int:
    """Print a CLI error as one line on stderr and return the exit code; re-raise what is a bug."""
    from pydantic import ValidationError
    from pydantic_cli import FailedExecutionException

    if isinstance(exc, FailedExecutionException):
        print(f"error: {exc.message.split('error: ')[-1]}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, FatalEnvError):
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if isinstance(exc, ValidationError):
        print(f"error: invalid configuration: {describe_validation_error(exc)}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, OSError) and exc.filename:
        print(f"error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return EXIT_USAGE
    raise exc


def run_cli(
    subcommands: dict[str, type], description: str, argv_fix: Callable[[list[str]], list[str]]
) -> None:
    """Run atroposlib's pydantic-cli subcommands with our error handling; never returns.

    `argv_fix` rewrites sys.argv first: atroposlib reads the flags from sys.argv itself, besides
    pydantic-cli's argparse, so both must see the same arguments.
    """
    from pydantic_cli import run_and_exit

    sys.argv[1:] = argv_fix(sys.argv[1:])
    try:
        run_and_exit(subcommands, description=description, exception_handler=cli_exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


def wandb_has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def configure_wandb_mode() -> str:
    """Decide how wandb logs before atroposlib calls `wandb.init` (process forces use_wandb=True).

    An explicit WANDB_MODE wins. Without credentials we disable wandb rather than go offline, so a
    run leaves no `wandb/` directory in the working directory; WANDB_MODE=offline keeps a local run.
    """
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    if wandb_has_credentials():
        return "online"
    os.environ["WANDB_MODE"] = "disabled"
    print(
        "wandb: no API key found (set WANDB_API_KEY or run `wandb login`); logging is disabled "
        "for this run (WANDB_MODE=offline keeps a local copy instead).",
        flush=True,
    )
    return "disabled"


async def wait_for_inference_server(base_url: str, api_key: str | None, timeout: float) -> None:
    """Return once `GET {base_url}/models` answers; raise FatalEnvError after `timeout` seconds.

    atroposlib's own health check pings every second and lets chat calls wait forever while it
    fails, so a dead server would hang the run; this bounds it.
    """
    import aiohttp

    url = base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while True:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
                session.get(url, headers=headers) as resp,
            ):
                if resp.status < 500:
                    if resp.status >= 400 and resp.status not in (404, 405):
                        body = (await resp.text())[:200]
                        raise FatalEnvError(
                            f"inference server at {base_url} refused the request "
                            f"(HTTP {resp.status}): {body}"
                        )
                    return
                last_error = f"HTTP {resp.status}"
        except FatalEnvError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            last_error = str(exc) or type(exc).__name__
        if time.monotonic() >= deadline:
            raise FatalEnvError(
                f"inference server at {base_url} is not reachable after {timeout:.0f}s "
                f"({last_error}). Start it, fix --openai.base_url, or omit --openai.base_url to "
                "use the embedded local model."
            )
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
