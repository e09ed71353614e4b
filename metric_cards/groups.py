"""Turn K completions of one prompt into the group the trainer gets (see docs/rollout-format.md).

This is the env's whole per-completion cost outside the inference server: tokenize, score, and
assemble; it is what `scripts/bench_env_overhead.py` measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from metric_cards.adjustments import AdjustmentConfig, adjustments_for, apply_adjustments
from metric_cards.catalog import SYSTEM_PROMPT, Request
from metric_cards.reward import RewardConfig, ScoreResult, score_completion
from metric_cards.tokenization import ChatTokenizer

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Completion:
    content: str
    finish_reason: str | None


def prompt_messages(request: Request | str) -> list[dict[str, str]]:
    user = request.prompt if isinstance(request, Request) else request
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


@dataclass(frozen=True, slots=True)
class ScoredRollout:
    messages: list[dict[str, str]]
    tokens: list[int]
    masks: list[int]
    result: ScoreResult
    score: float
    finish_reason: str | None
    completion_tokens: int
    adjustments: dict[str, float]

    def record(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "base_score": self.result.score,
            "layers": dict(self.result.layers),
            "problems": list(self.result.problems),
            # hacking canaries raised by this completion (names in metric_cards.reward.CANARIES)
            "canaries": [name for name, raised in self.result.canaries.items() if raised],
            "finish_reason": self.finish_reason,
            "completion_tokens": self.completion_tokens,
            "adjustments": dict(self.adjustments),
        }


def score_rollout(
    request: Request | None,
    messages: list[dict[str, str]],
    completion: Completion,
    tokenizer: ChatTokenizer,
    reward: RewardConfig,
    adjustment: AdjustmentConfig,
    max_completion_tokens: int,
) -> ScoredRollout:
    conversation = [*messages, {"role": "assistant", "content": completion.content}]
    tokenized = tokenizer.tokenize(conversation, finish_reason=completion.finish_reason)
    result = score_completion(completion.content, request, completion.finish_reason, reward)
    n_completion = tokenized.completion_tokens
    adjustments = adjustments_for(n_completion, max_completion_tokens, adjustment)
    return ScoredRollout(
        messages=conversation,
        tokens=tokenized.tokens,
        masks=tokenized.masks,
        result=result,
        score=apply_adjustments(result.score, adjustments),
        finish_reason=completion.finish_reason,
        completion_tokens=n_completion,
        adjustments=adjustments,
    )


def build_group(request: Request | None, rollouts: list[ScoredRollout]) -> dict[str, Any]:
    """The ScoredDataGroup for atroposlib plus our `metric_card` block (ignored by the API)."""
    return {
        "tokens": [r.tokens for r in rollouts],
        "masks": [r.masks for r in rollouts],
        "scores": [r.score for r in rollouts],
        "messages": [r.messages for r in rollouts],
        # atroposlib fills in the remaining ScoredDataGroup keys (advantages, overrides, ...)
        "metric_card": {
            "format_version": FORMAT_VERSION,
            "request": request.to_dict() if request is not None else None,
            "rollouts": [r.record() for r in rollouts],
        },
    }
