"""`serve` mode's link to the Atropos trajectory API (`run-api`): wait for it, notice when it went
away or restarted, re-register, and hand each scored group to it at most once.

atroposlib's own calls give up after three tries (`register_env`, `get_status` and
`_send_scored_data_to_api` are wrapped in tenacity's `stop_after_attempt(3)`), so an API that is
not up yet, or that restarts mid-run, crashes the env or silently loses its registration.
`AtroposApiMixin` replaces exactly those calls; everything else (worker scheduling, batching,
weights) stays atroposlib's. Use it in front of BaseEnv: `class MyEnv(AtroposApiMixin, BaseEnv)`.

Delivery is *at most once*. The API has no idempotency key (its `ScoredData` model drops unknown
fields), so a resend after an answer we did not see (HTTP 5xx, a dropped connection, a timeout)
could enqueue the group twice and the trainer would learn from it twice. A group is therefore
resent only when the connection was refused, i.e. the request never reached the API; any other
failure is logged and counted as "uncertain" and the group is not resent (the prompt stream is
endless, so one lost group costs nothing).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, Field

from metric_cards.runtime import FatalEnvError

log = logging.getLogger("metric_cards.serve")

T = TypeVar("T")

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)
STILL_WAITING_EVERY = 15.0  # seconds between "still waiting" log lines
POLL_INTERVAL = 1.0  # seconds between two looks at an API that is not ready
DRAIN_TIMEOUT = 30.0  # seconds to let groups already on their way reach the API at shutdown


class ServeConfig(BaseModel):
    api_wait_timeout: float = Field(
        default=600.0,
        ge=0,
        description="serve: seconds to wait for the Atropos API (run-api) to answer and for a "
        "trainer to register with it, at start and whenever the API goes away mid-run (the env "
        "logs while it waits, then re-registers and resumes); 0 waits forever.",
    )


class ApiUnavailableError(RuntimeError):
    """The API could not be reached, or answered with an error or something that is not JSON."""


class NotReachedError(ApiUnavailableError):
    """The connection was refused: the request certainly never reached the API."""


async def api_json(
    base_url: str, method: str, path: str, *, payload: Any = None, timeout: float = 10.0
) -> Any:
    """One JSON request to the API; every failure becomes ApiUnavailableError."""
    url = base_url.rstrip("/") + path
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.request(method, url, json=payload) as resp,
        ):
            text = await resp.text()
            if resp.status >= 400:
                raise ApiUnavailableError(f"HTTP {resp.status} from {path}: {text[:120]}")
            return json.loads(text)
    except aiohttp.ClientConnectorError as exc:
        raise NotReachedError(f"cannot connect to {base_url} ({exc.os_error or exc})") from exc
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
        raise ApiUnavailableError(f"{path}: {type(exc).__name__}: {exc}") from exc


def group_key(group: dict[str, Any]) -> str:
    """A short content hash of a group's tokens: the same key for the same group on both ends."""
    data = json.dumps(group["tokens"], separators=(",", ":")).encode()
    return hashlib.sha1(data).hexdigest()[:16]


class Waiter:
    """Polls until something is ready: logs when it starts waiting and every
    STILL_WAITING_EVERY seconds, and raises FatalEnvError after `timeout` seconds (0 = never)."""

    def __init__(self, what: str, timeout: float) -> None:
        self.what = what
        self.timeout = timeout
        self.started = time.monotonic()
        self._next_log = self.started

    async def pause(self, reason: str) -> None:
        now = time.monotonic()
        waited = now - self.started
        if self.timeout and waited >= self.timeout:
            raise FatalEnvError(
                f"gave up waiting for {self.what} after {waited:.0f}s ({reason}); raise "
                "--env.api_wait_timeout (0 waits forever) or start run-api and the trainer"
            )
        if now >= self._next_log:
            limit = f"up to {self.timeout:.0f}s" if self.timeout else "no time limit"
            log.warning("waiting for %s (%s; %.0fs so far, %s)", self.what, reason, waited, limit)
            self._next_log = now + STILL_WAITING_EVERY
        await asyncio.sleep(POLL_INTERVAL)


class AtroposApiMixin:
    """The BaseEnv calls that talk to the trajectory API, made to wait and resume (see module doc).

    Expects BaseEnv's attributes (config with rollout_server_url and api_wait_timeout, env_id,
    server, ...); counters are reported in `serve_summary()` and logged at the end of the run.
    """

    config: Any
    env_id: int
    status_dict: dict[str, Any]

    # ---------------------------------------------------------------------- bookkeeping
    def _serve_state(self) -> dict[str, Any]:
        state = self.__dict__.get("_serve")
        if state is None:
            state = {
                "ready": asyncio.Event(),  # set while registered with a live API
                "deliveries": set(),
                "last_step": 0,
                "sent": 0,
                "uncertain": 0,
                "rejected": 0,
                "reconnects": 0,
                "registrations": 0,
            }
            self.__dict__["_serve"] = state
        return state

    def serve_summary(self) -> dict[str, int]:
        state = self._serve_state()
        return {
            "groups_sent": state["sent"],
            "sends_uncertain": state["uncertain"],
            "sends_rejected": state["rejected"],
            "api_reconnects": state["reconnects"],
            "registrations": state["registrations"],
        }

    @property
    def _api_url(self) -> str:
        return self.config.rollout_server_url.rstrip("/")

    async def _wait_for(self, what: str, attempt: Callable[[], Awaitable[T | None]]) -> T:
        """Call `attempt` until it returns something other than None; errors mean "not yet"."""
        waiter = Waiter(what, self.config.api_wait_timeout)
        while True:
            try:
                result = await attempt()
                reason = "not ready yet"
            except ApiUnavailableError as exc:
                result, reason = None, str(exc)
            if result is not None:
                return result
            await waiter.pause(reason)

    async def _trainer_registered(self) -> bool:
        info = await api_json(self._api_url, "GET", "/info")
        return int(info.get("batch_size", -1)) != -1

    # ----------------------------------------------------------------- start-up (BaseEnv)
    async def setup_wandb(self) -> None:
        if self.config.use_wandb:

            async def project() -> str | None:
                return (await api_json(self._api_url, "GET", "/wandb_info")).get("project")

            what = f"a trainer to register with the Atropos API at {self._api_url}"
            await self._wait_for(what, project)
        await super().setup_wandb()  # type: ignore[misc]

    async def _register_env(self) -> dict[str, Any]:
        """POST /register-env until it succeeds (the API answers "wait for trainer to start"
        until the trainer has asked for its first batch)."""
        body = {
            "max_token_length": self.config.max_token_length,
            "desired_name": self.config.wandb_name,
            "weight": self.config.inference_weight,
            "min_batch_allocation": self.config.min_batch_allocation,
            "group_size": self.config.group_size,
        }

        async def attempt() -> dict[str, Any] | None:
            data = await api_json(self._api_url, "POST", "/register-env", payload=body)
            if data.get("status") != "success":
                raise ApiUnavailableError(f"the API says {data.get('status')!r}")
            return data

        data = await self._wait_for(
            f"the trainer to start at the Atropos API {self._api_url}", attempt
        )
        state = self._serve_state()
        state["registrations"] += 1
        state["last_step"] = int(data.get("starting_step", 0))
        log.info(
            "registered with the Atropos API at %s as env %s (%s), step %s",
            self._api_url,
            data["env_id"],
            data.get("wandb_name"),
            data.get("starting_step"),
        )
        return data

    async def register_env(self) -> None:
        await super().register_env()  # type: ignore[misc]
        self._serve_state()["ready"].set()

    async def get_server_info(self) -> None:
        async def attempt() -> bool:
            try:
                await super(AtroposApiMixin, self).get_server_info()  # type: ignore[misc]
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise ApiUnavailableError(str(exc)) from exc
            except ValueError as exc:  # group_size larger than the trainer's batch size
                raise FatalEnvError(str(exc)) from exc
            return True

        await self._wait_for(f"the Atropos API at {self._api_url} (/info)", attempt)

    # ---------------------------------------------------------------- main loop (BaseEnv)
    async def _fetch_status(self) -> dict[str, Any]:
        status = await api_json(
            self._api_url, "GET", "/status-env", payload={"env_id": self.env_id}
        )
        for key in ("current_step", "queue_size", "env_weight"):
            if key not in status:
                raise ApiUnavailableError(f"/status-env answered without {key!r}: {status}")
        return status

    async def get_status(self) -> None:
        """BaseEnv.get_status, but a lost or restarted API makes it wait and re-register."""
        state = self._serve_state()
        try:
            status = await self._fetch_status()
        except ApiUnavailableError as exc:
            status = await self._recover(exc)
        state["last_step"] = int(status["current_step"])
        self.status_dict = status
        max_num_workers = self.config.max_num_workers
        if max_num_workers == -1:
            max_num_workers = self.config.max_num_workers_per_node * len(
                self.server.servers  # type: ignore[attr-defined]
            )
        self.max_num_workers = max_num_workers
        await self.server.update_weight(status["env_weight"])  # type: ignore[attr-defined]

    async def _recover(self, error: ApiUnavailableError) -> dict[str, Any]:
        """Wait for the API to come back; re-register if it restarted (run-api keeps its state
        in memory, so a restarted API knows neither the trainer nor this env).

        It restarted if its port refused connections (nothing was listening), if it came back
        without a trainer, if it does not know our env_id, or if its step went backwards;
        otherwise (a timeout, a dropped connection) it is the same API after a blip, and
        registering again would leave a stale twin of this env in its weights."""
        state = self._serve_state()
        state["ready"].clear()  # deliveries hold their groups until we are registered again
        state["reconnects"] += 1
        log.warning("lost the Atropos API at %s (%s); waiting for it", self._api_url, error)
        restarted = isinstance(error, NotReachedError)

        async def attempt() -> dict[str, Any] | None:
            nonlocal restarted
            try:
                registered = await self._trainer_registered()
            except NotReachedError:
                restarted = True
                raise
            if not registered:
                restarted = True  # up again, but no trainer: a new instance
                raise ApiUnavailableError("the API is up but no trainer has registered with it yet")
            if not restarted:
                try:
                    status = await self._fetch_status()
                except ApiUnavailableError:
                    restarted = True  # our env_id is unknown there
                else:
                    if int(status["current_step"]) >= state["last_step"]:
                        return status  # the same API, back after a blip
                    restarted = True  # the step went backwards
            return {}

        status = await self._wait_for(f"the Atropos API at {self._api_url} to come back", attempt)
        if restarted:
            log.warning("the Atropos API restarted; registering this env again")
            await self.register_env()
            status = await self._wait_for(
                f"the Atropos API at {self._api_url} (/status-env)", self._fetch_status
            )
        state["ready"].set()
        log.info("the Atropos API is back; resuming as env %s", self.env_id)
        return status

    # ------------------------------------------------------------------------ sending
    async def _send_scored_data_to_api(self, scored_data: Any) -> None:
        """Deliver in a task of its own, so a worker cancelled by atroposlib (queue full, end of
        run) cannot cut a POST in half; env_manager waits for deliveries still on their way."""
        state = self._serve_state()
        task = asyncio.ensure_future(self._deliver(scored_data))
        state["deliveries"].add(task)
        task.add_done_callback(state["deliveries"].discard)
        await asyncio.shield(task)

    async def _deliver(self, scored_data: Any) -> None:
        state = self._serve_state()
        groups = scored_data if isinstance(scored_data, list) else [scored_data]
        path = "/scored_data_list" if isinstance(scored_data, list) else "/scored_data"
        while True:
            await state["ready"].wait()
            try:
                # A restarted API without a trainer must not receive data: run-api's /register
                # skips its whole initialisation once a queue exists, and the trainer would
                # never get a batch.
                if not await self._trainer_registered():
                    await asyncio.sleep(POLL_INTERVAL)
                    continue
            except ApiUnavailableError:
                await asyncio.sleep(POLL_INTERVAL)
                continue
            params = self._generation_params()
            for group in groups:
                group["env_id"] = getattr(self, "env_id", None)
                if params and not group.get("generation_params"):
                    group["generation_params"] = params
            try:
                status, text = await self._post(path, scored_data)
            except NotReachedError as exc:
                log.warning("API not reachable (%s); holding %d group(s)", exc, len(groups))
                await asyncio.sleep(POLL_INTERVAL)
                continue
            except ApiUnavailableError as exc:
                state["uncertain"] += len(groups)
                log.warning(
                    "sending %d group(s) failed after the request reached the API (%s); not "
                    "resending, since the API may have queued it (at most once)",
                    len(groups),
                    exc,
                )
                return
            break
        if status >= 500:
            state["uncertain"] += len(groups)
            log.warning(
                "the API answered HTTP %d to %d group(s): %s; not resending, since it may have "
                "queued them (at most once)",
                status,
                len(groups),
                text[:200],
            )
        elif status >= 400:
            state["rejected"] += len(groups)
            log.error("the API rejected %d group(s): HTTP %d %s", len(groups), status, text[:300])
        else:
            for group in groups:
                state["sent"] += 1
                scores = group["scores"]
                log.info(
                    "sent group %d to the API (env %s, key %s, %d rollouts, scores %.3f..%.3f)",
                    state["sent"],
                    group["env_id"],
                    group_key(group),
                    len(scores),
                    min(scores),
                    max(scores),
                )

    def _generation_params(self) -> dict[str, Any]:
        """How the completions were sampled, for the trainer: a GRPO trainer divides its logits
        by the sampling temperature (atroposlib's example trainer assumes 1.0 without this)."""
        names = {
            "temperature": "temperature",
            "top_p": "top_p",
            "max_completion_tokens": "max_tokens",
        }
        values = {key: getattr(self.config, name, None) for name, key in names.items()}
        return {key: value for key, value in values.items() if value is not None}

    async def _post(self, path: str, payload: Any) -> tuple[int, str]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if len(body) >= 1024:  # as atroposlib does: the API accepts gzip request bodies
            body, headers["Content-Encoding"] = gzip.compress(body, compresslevel=1), "gzip"
        try:
            async with (
                aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session,
                session.post(self._api_url + path, data=body, headers=headers) as resp,
            ):
                return resp.status, await resp.text()
        except aiohttp.ClientConnectorError as exc:
            raise NotReachedError(str(exc.os_error or exc)) from exc
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ApiUnavailableError(f"{type(exc).__name__}: {exc}") from exc

    async def wandb_log(self, wandb_metrics: dict[str, Any] | None = None) -> None:
        metrics = dict(wandb_metrics or {})
        if "_serve" in self.__dict__:  # serve only: the delivery counters, cumulative
            summary = self.serve_summary()
            metrics["train/groups_sent_to_api"] = float(summary["groups_sent"])
            metrics["train/api_sends_uncertain"] = float(summary["sends_uncertain"])
            metrics["train/api_reconnects"] = float(summary["api_reconnects"])
        await super().wandb_log(metrics)  # type: ignore[misc]

    # ----------------------------------------------------------------------- lifecycle
    async def env_manager(self) -> None:
        configure_serve_logging()
        try:
            await super().env_manager()  # type: ignore[misc]
        finally:
            if self._serve_state()["ready"].is_set():
                await self._drain_deliveries()
            else:  # ended while the API was away (api_wait_timeout): nothing can be delivered
                self._cancel_deliveries()
            summary = self.serve_summary()
            summary["groups_dropped_no_score_spread"] = int(getattr(self, "dropped_no_spread", 0))
            summary["failed_requests"] = int(getattr(self, "failed_requests", 0))
            log.info("serve finished: %s", ", ".join(f"{k}={v}" for k, v in summary.items()))

    async def _drain_deliveries(self) -> None:
        pending = set(self._serve_state()["deliveries"])
        if pending:
            await asyncio.wait(pending, timeout=DRAIN_TIMEOUT)
        self._cancel_deliveries()

    def _cancel_deliveries(self) -> None:
        still = [t for t in self._serve_state()["deliveries"] if not t.done()]
        for task in still:
            task.cancel()
        if still:
            log.warning("%d group(s) could not be delivered before exit", len(still))


def configure_serve_logging(level: int = logging.INFO) -> None:
    """Our loggers at INFO on stderr; atroposlib only from WARNING (its main loop logs its
    status at INFO ten times a second)."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("metric_card_generator", "metric_cards"):
        logger = logging.getLogger(name)
        if not any(getattr(h, "_metric_cards", False) for h in logger.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(fmt)
            handler._metric_cards = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(fmt)
        handler.setLevel(logging.WARNING)
        root.addHandler(handler)
