"""What a step's rollouts and a held-out eval look like, in the env's own terms: the rollouts are
scored again with the env's `score_rollout` and summed up by its `RolloutStats` (so "valid JSON",
"truncated" and the layer means mean here what they mean in the env's summary and wandb), plus
the reward-hacking canaries the reward flags on each completion (`ScoreResult.canaries`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from metric_cards.catalog import Request, parse_request
from metric_cards.groups import Completion, ScoredRollout, score_rollout
from metric_cards.run_stats import RolloutStats
from metric_cards.tokenization import IGNORE_INDEX, ChatTokenizer
from metric_cards.trainer.scorer import ADJUSTMENTS, REWARD


def canary_names(result: Any) -> list[str]:
    """The canaries raised on one ScoreResult: a mapping name -> flag or a collection of names;
    none when this reward has no canaries."""
    canaries = getattr(result, "canaries", None)
    if not canaries:
        return []
    if isinstance(canaries, dict):
        return sorted(str(k) for k, v in canaries.items() if v)
    return sorted(str(c) for c in canaries)


def canary_rates(results: Iterable[Any]) -> dict[str, float]:
    """Share of completions raising each canary (only canaries seen at least once)."""
    counts: Counter[str] = Counter()
    n = 0
    for result in results:
        n += 1
        counts.update(canary_names(result))
    return {name: counts[name] / n for name in sorted(counts)} if n else {}


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
        "canaries": canary_rates(r.result for r in flat),
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
            score_rollout(
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
