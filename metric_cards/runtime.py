"""Run-time plumbing around atroposlib: wandb without a key, reachability of the inference server,
and the one exception type that ends a run with a clear message instead of a traceback."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import aiohttp

log = logging.getLogger("metric_cards")


class FatalEnvError(RuntimeError):
    """A run cannot go on (server unreachable, bad config). Shown as one message, exit code 1."""


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
