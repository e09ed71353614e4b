"""Asking the inference server for completions, and saying what went wrong when it fails.

atroposlib's `chat_completion` retries every failure (tenacity, nine attempts in all) and finally
raises `RetryError[<Future ... raised JSONDecodeError>]`, which names neither the server nor what
it did. `watch_server` wraps each server's openai client call so that every failed attempt is
described in one line (HTTP status, "body was not JSON", "no choices", "connection reset", and
the URL) and answers that are not a chat completion fail there instead of deeper down.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from metric_cards.groups import Completion


class RequestFailedError(RuntimeError):
    """One call to the inference server failed or timed out."""


class BadAnswerError(RuntimeError):
    """The server answered, but not with a usable chat completion."""


@dataclass
class ServerWatch:
    """The last failure seen on a server (its description), shared with the env."""

    url: str
    last_error: str | None = None


def describe_error(exc: BaseException, url: str) -> str:
    """What the server did, in words a user can act on, naming the URL."""
    import openai

    if isinstance(exc, BadAnswerError):
        return f"{exc} ({url})"
    if isinstance(exc, openai.APIStatusError):
        body = exc.response.text[:200].strip() if exc.response is not None else ""
        return f"HTTP {exc.status_code} from {url}" + (f": {body}" if body else "")
    if isinstance(exc, openai.APITimeoutError):
        return f"no answer from {url} before the client's timeout"
    if isinstance(exc, openai.APIConnectionError):
        # The transport's exception (httpx or its fork, by name: the openai client vendors one).
        cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else ""
        if cause == "ConnectError":
            return f"connection refused by {url}"
        if cause in ("RemoteProtocolError", "ReadError"):
            return f"connection reset: {url} closed the connection without an answer"
        return f"connection to {url} failed ({exc.__cause__ or exc})"
    if isinstance(exc, json.JSONDecodeError):
        return f"the body from {url} was not JSON"
    if isinstance(exc, openai.APIResponseValidationError):
        return f"the body from {url} was not a chat completion ({exc.message})"
    return f"{type(exc).__name__} from {url}: {exc}"


def check_answer(answer: Any) -> Any:
    """Raise BadAnswerError unless `answer` is a chat completion whose choices have messages."""
    if isinstance(answer, str | bytes):
        raise BadAnswerError("the body was not JSON")
    choices = getattr(answer, "choices", None)
    if not choices:
        raise BadAnswerError("the answer had no choices")
    for choice in choices:
        if getattr(choice, "message", None) is None:
            raise BadAnswerError('a choice had "message": null')
        content = choice.message.content
        if content is not None and not isinstance(content, str):
            raise BadAnswerError("a choice's message content was not a string")
    return answer


def watch_server(server: Any) -> ServerWatch | None:
    """Wrap `server.openai.chat.completions.create` (an atroposlib OpenAIServer) so each attempt's
    failure is recorded in the returned ServerWatch and bad answers raise BadAnswerError."""
    client = getattr(server, "openai", None)
    config = getattr(server, "config", None)
    if client is None or config is None:
        return None
    url = str(config.base_url).rstrip("/") + "/chat/completions"
    watch = ServerWatch(url)
    completions = client.chat.completions
    create: Callable[..., Awaitable[Any]] = completions.create

    async def checked_create(*args: Any, **kwargs: Any) -> Any:
        try:
            return check_answer(await create(*args, **kwargs))
        except Exception as exc:
            watch.last_error = describe_error(exc, url)
            raise

    completions.create = checked_create
    return watch


def request_seed(run_seed: int, step: int, group_size: int, choice: int = 0) -> int:
    """The sampling seed sent with a training request: a function of the run's seed, the
    prompt's step and the choice, so a run is reproducible whatever the order of the requests."""
    return (run_seed * 1_000_003 + step * group_size + choice) % (2**31)


async def sample(
    chat_completion: Callable[..., Awaitable[Any]],
    kwargs: dict[str, Any],
    *,
    one_choice_per_request: bool,
    timeout: float,
    watches: list[ServerWatch],
) -> list[Completion]:
    """n completions for one prompt; RequestFailedError says why when there are none."""
    n = int(kwargs["n"])
    for watch in watches:
        watch.last_error = None
    try:
        responses = await asyncio.wait_for(
            _request_choices(chat_completion, kwargs, one_choice_per_request), timeout=timeout
        )
    except asyncio.TimeoutError as exc:
        last = _last_error(watches)
        raise RequestFailedError(
            f"no usable answer within {timeout:g}s" + (f"; last attempt: {last}" if last else "")
        ) from exc
    except Exception as exc:  # tenacity's RetryError wraps what the openai client raised
        last = _last_error(watches)
        raise RequestFailedError(
            last or f"{type(_innermost(exc)).__name__}: {_innermost(exc)}"
        ) from exc
    choices = [
        Completion(c.message.content or "", c.finish_reason)
        for response in responses
        for c in response.choices
    ]
    if len(choices) < n:
        raise RequestFailedError(f"the server returned {len(choices)} of {n} completions")
    return choices[:n]


async def _request_choices(
    chat_completion: Callable[..., Awaitable[Any]],
    kwargs: dict[str, Any],
    one_choice_per_request: bool,
) -> list[Any]:
    n = int(kwargs["n"])
    if one_choice_per_request and n > 1:
        # The server ignores n: ask n times with n=1 ourselves (atroposlib's own fallback,
        # n_kwarg_is_ignored, sends every n=1 request twice and drops one answer). Each request
        # gets its own seed, or a seeded server would answer n times the same.
        seed = kwargs.get("seed")
        calls = [
            chat_completion(
                **{**kwargs, "n": 1, **({"seed": (seed + i) % 2**31} if seed is not None else {})}
            )
            for i in range(n)
        ]
        return list(await asyncio.gather(*calls))
    return [await chat_completion(**kwargs)]


def _last_error(watches: list[ServerWatch]) -> str | None:
    return next((w.last_error for w in watches if w.last_error), None)


def _innermost(exc: BaseException) -> BaseException:
    seen = 0
    while hasattr(exc, "last_attempt") and seen < 10:
        inner = exc.last_attempt.exception()
        if inner is None:
            break
        exc, seen = inner, seen + 1
    return exc
