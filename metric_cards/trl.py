"""The env's reward and prompts for Hugging Face TRL (`GRPOTrainer`, or any trainer that takes
reward functions with TRL's signature).

    from trl import GRPOConfig, GRPOTrainer
    from metric_cards.trl import metric_card_dataset, metric_card_reward

    trainer = GRPOTrainer(model=..., reward_funcs=[metric_card_reward],
                          train_dataset=metric_card_dataset(512), args=GRPOConfig(...))

The score is the env's: the same function, the same request read back from the prompt, so a
completion gets the number `python -m metric_cards score` and the Atropos env give it.
"""

from __future__ import annotations

from typing import Any

from metric_cards.catalog import (
    SYSTEM_PROMPT,
    Request,
    TrainingPrompts,
    eval_requests,
    parse_request,
)
from metric_cards.reward import score_completion
from metric_cards.trainer.scorer import REWARD


def _text(item: Any) -> str:
    """A completion or prompt as text: a plain string, or the content of a conversation's last
    message (TRL's conversational format: a list of {"role", "content"} dicts)."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        return str(item.get("content") or "")
    if isinstance(item, list | tuple) and item:
        return _text(item[-1])
    return ""


def _request(prompt: Any) -> Request | None:
    """The catalog request a prompt asks for: its last user message (conversational) or the text
    after the system prompt (plain); None for a prompt not made from the catalog."""
    if isinstance(prompt, list | tuple):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return parse_request(str(users[-1].get("content") or "")) if users else None
    text = _text(prompt)
    if text.startswith(SYSTEM_PROMPT):
        text = text[len(SYSTEM_PROMPT) :]
    return parse_request(text.strip())


def metric_card_reward(
    completions: list[Any], prompts: list[Any] | None = None, **kwargs: Any
) -> list[float]:
    """TRL reward function: one score in [0, 1] per completion.

    `completions` are strings or conversations (lists of messages; the last one is scored);
    `prompts`, when given, say which metric, domain and period was asked for (without them the
    semantic layer cannot check the request and scores the card generically). Other keyword
    arguments TRL passes (completion_ids, trainer_state, dataset columns) are ignored.
    """
    if prompts is not None and len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    requests = [_request(p) for p in prompts] if prompts is not None else [None] * len(completions)
    return [
        score_completion(_text(completion), request, None, REWARD).score
        for completion, request in zip(completions, requests, strict=True)
    ]


def _row(request: Request, conversational: bool) -> dict[str, Any]:
    prompt: Any
    if conversational:
        prompt = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": request.prompt},
        ]
    else:
        prompt = f"{SYSTEM_PROMPT}\n{request.prompt}"
    return {
        "prompt": prompt,
        "metric": request.metric,
        "domain": request.domain,
        "period": request.period,
    }


def metric_card_dataset(
    size: int = 1024, *, split: str = "train", seed: int = 0, conversational: bool = True
) -> Any:
    """The catalog's prompts as a `datasets.Dataset` with a "prompt" column (system prompt +
    request; conversational by default) and the request's metric/domain/period columns.

    split "train": `size` requests from the env's seeded training stream (never a held-out one);
    split "eval": the env's fixed held-out eval set (the first `size` of it).
    """
    from datasets import Dataset

    if split == "train":
        stream = TrainingPrompts(seed)
        requests = [next(stream) for _ in range(size)]
    elif split == "eval":
        requests = eval_requests(size)
    else:
        raise ValueError(f"split must be 'train' or 'eval', not {split!r}")
    return Dataset.from_list([_row(r, conversational) for r in requests])
