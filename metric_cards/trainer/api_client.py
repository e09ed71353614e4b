"""The trainer's side of Atropos' trajectory API (`run-api`): register, then pull batches.

The protocol (atroposlib/api/server.py): `POST /register` with the batch size, `GET /batch` until
it returns a batch (a list of scored groups, `{"tokens", "masks", "scores", ...}` each) — the
first call also lets envs register —, `GET /status` for the queue. All plain JSON over HTTP.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

Group = dict[str, Any]


class TrajectoryApiError(RuntimeError):
    """run-api did not answer, or answered something the trainer cannot use."""


class TrajectoryApi:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310
                return json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise TrajectoryApiError(f"{method} {self.url}{path}: {exc}") from exc

    def wait_ready(self, timeout: float, alive: Callable[[], bool] = lambda: True) -> None:
        """Poll `GET /` until run-api answers (or `alive()` says its process died)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("GET", "/")
                return
            except TrajectoryApiError as exc:
                if not alive():
                    raise TrajectoryApiError(f"run-api exited before answering: {exc}") from exc
                if time.monotonic() > deadline:
                    raise TrajectoryApiError(
                        f"run-api at {self.url} did not answer in {timeout:.0f}s"
                    ) from exc
            time.sleep(0.2)

    def register(self, *, batch_size: int, max_token_len: int, num_steps: int, starting_step: int,
                 checkpoint_dir: str = "") -> None:  # fmt: skip
        answer = self._call(
            "POST",
            "/register",
            {
                "wandb_group": "",
                "wandb_project": "",
                "batch_size": batch_size,
                "max_token_len": max_token_len,
                "checkpoint_dir": checkpoint_dir,
                # The env must not save checkpoints of its own: the trainer owns them.
                "save_checkpoint_interval": -1,
                "starting_step": starting_step,
                "num_steps": num_steps,
            },
        )
        if "uuid" not in answer:
            raise TrajectoryApiError(f"POST /register answered {answer!r}")

    def batch(self) -> list[Group] | None:
        """One batch, or None while the env has not queued enough groups yet."""
        answer = self._call("GET", "/batch")
        if answer.get("status") == "error":
            raise TrajectoryApiError(f"GET /batch: {answer.get('message')}")
        return answer.get("batch") or None

    def queued_groups(self) -> int:
        return int(self._call("GET", "/status").get("queue_size", 0))
