"""What a step's rollouts and a held-out eval look like, in the env's own terms: the rollouts
are scored again with the env's `tokenize_and_score` and summed up by its `RolloutStats` (so
"valid JSON", "truncated", the layer means and the reward-hacking canaries' rates mean here what
they mean in the env's summary and wandb)."""

from __future__ import annotations

from typing import Any

from metric_cards.catalog import Request, parse_request
from metric_cards.groups import Completion, ScoredRollout, tokenize_and_score
from metric_cards.reward import CANARIES, ScoreResult
from metric_cards.run_stats import RolloutStats
from metric_cards.tokenization import IGNORE_INDEX, ChatTokenizer
from metric_cards.trainer.scorer import ADJUSTMENTS, REWARD


def canary_names(result: ScoreResult) -> list[str]:
    """The hacking canaries one completion raised."""
    return [name for name, raised in result.canaries.items() if raised]


def summarise(rollouts: list[list[ScoredRollout]], prefix: str) -> dict[str, Any]:
    stats = RolloutStats()
    for group in rollouts:
        stats.add_group(group)
    metrics = stats.metrics(prefix)
    flat = [r for group in rollouts for r in group]
    return {
        "mean_score": metrics.get(f"{prefix}/mean_score", 0.0),
        "valid_json": metrics.get(f"{prefix}/percent_valid_json", 0.0) / 100.0,
        "truncated": metrics.get(f"{prefix}/percent_truncated", 0.0) / 100.0,
        "layers": {
            layer: metrics.get(f"{prefix}/{layer}_mean", 0.0)
            for layer in ("validity", "schema", "semantic", "formatting")
        },
        "completion_tokens_mean": metrics.get(f"{prefix}/completion_tokens_mean", 0.0),
        "canaries": {name: metrics.get(f"{prefix}/canary_{name}", 0.0) for name in CANARIES},
        "n": len(flat),
    }


def rescore_group(group: dict[str, Any], tokenizer: ChatTokenizer, end_of_turn: int | None,
                  max_completion_tokens: int) -> list[ScoredRollout]:  # fmt: skip
    """A group as the trainer got it from run-api (which drops the env's own per-rollout records)
    scored again from its messages. The completion stopped by itself when its tokens end with
    the end-of-turn token (the env's tokenizer leaves it out of a completion cut at max_tokens)."""
    out = []
    for messages, tokens, masks in zip(
        group["messages"], group["tokens"], group["masks"], strict=True
    ):
        completion_ids = [t for t, m in zip(tokens, masks, strict=True) if m != IGNORE_INDEX]
        stopped = end_of_turn is not None and end_of_turn in completion_ids[-2:]
        request: Request | None = parse_request(messages[-2]["content"])
        out.append(
            tokenize_and_score(
                request,
                messages[:-1],
                Completion(messages[-1]["content"], "stop" if stopped else "length"),
                tokenizer,
                REWARD,
                ADJUSTMENTS,
                max_completion_tokens,
            )
        )
    return out
