"""The held-out eval: the env's fixed eval set (`eval_requests`), temperature 0, one completion
each from the server that is serving the current weights, scored as the env scores its evals."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from metric_cards.catalog import eval_requests
from metric_cards.groups import Completion, prompt_messages, tokenize_and_score
from metric_cards.tokenization import ChatTokenizer
from metric_cards.trainer.rollout_stats import canary_names, summarise
from metric_cards.trainer.scorer import ADJUSTMENTS, REWARD


class EvalError(RuntimeError):
    """The inference server failed during the eval."""


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    samples: list[dict[str, Any]]


def chat_completion(
    base_url: str,
    model: str,
    messages: list[dict[str, str]],
    *,
    max_tokens: int,
    temperature: float,
    timeout: float = 300.0,
) -> Completion:
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": 1.0,
        "n": 1,
    }
    request = urllib.request.Request(
        base_url.rstrip("/") + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer x"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 (loopback)
            answer = json.loads(resp.read())
        choice = answer["choices"][0]
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError) as exc:
        raise EvalError(f"chat completion at {base_url} failed: {exc}") from exc
    return Completion(choice["message"].get("content") or "", choice.get("finish_reason"))


def evaluate_policy(base_url: str, model: str, tokenizer: ChatTokenizer, *, size: int,
                    max_tokens: int) -> EvalResult:  # fmt: skip
    started = time.monotonic()
    rollouts = []
    samples = []
    for request in eval_requests(size):
        messages = prompt_messages(request)
        completion = chat_completion(
            base_url, model, messages, max_tokens=max_tokens, temperature=0.0
        )
        rollout = tokenize_and_score(
            request, messages, completion, tokenizer, REWARD, ADJUSTMENTS, max_tokens
        )
        rollouts.append([rollout])
        samples.append(
            {
                "prompt": request.prompt,
                "completion": completion.content,
                "finish_reason": completion.finish_reason,
                "score": rollout.score,
                "layers": dict(rollout.result.layers),
                "problems": list(rollout.result.problems),
                "canaries": canary_names(rollout.result),
            }
        )
    metrics = summarise(rollouts, "eval")
    metrics["seconds"] = round(time.monotonic() - started, 1)
    return EvalResult(metrics, samples)
