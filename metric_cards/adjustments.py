"""Optional reward adjustments an RL user may turn on. All are off by default, so the score the
trainer gets equals the scorer's (and the `score` CLI's) for the same completion; when on, each
adjustment is recorded per rollout under `metric_card.rollouts[i].adjustments`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AdjustmentConfig(BaseModel):
    overlong_penalty: bool = Field(
        default=False,
        description="DAPO soft overlong punishment: completions that run into the last "
        "`overlong_buffer_tokens` of `max_completion_tokens` lose reward linearly, up to "
        "`overlong_penalty_factor` at the limit. Off by default.",
    )
    overlong_buffer_tokens: int = Field(
        default=64, ge=1, description="Length of the soft-punishment zone, in tokens."
    )
    overlong_penalty_factor: float = Field(
        default=0.5, ge=0, description="Reward removed at (and beyond) the length limit."
    )


def overlong_adjustment(
    completion_tokens: int, max_completion_tokens: int, config: AdjustmentConfig
) -> float:
    """DAPO's soft overlong punishment (Yu et al. 2025, eq. 13), scaled by the penalty factor."""
    if not config.overlong_penalty:
        return 0.0
    buffer = min(config.overlong_buffer_tokens, max_completion_tokens)
    free = max_completion_tokens - buffer
    if completion_tokens <= free:
        return 0.0
    fraction = min(1.0, (completion_tokens - free) / buffer)
    return -config.overlong_penalty_factor * fraction


def adjustments_for(
    completion_tokens: int, max_completion_tokens: int, config: AdjustmentConfig
) -> dict[str, float]:
    adjustments: dict[str, float] = {}
    overlong = overlong_adjustment(completion_tokens, max_completion_tokens, config)
    if overlong:
        adjustments["overlong"] = overlong
    return adjustments


def apply_adjustments(base_score: float, adjustments: dict[str, float]) -> float:
    """Adjusted score, kept in [0, 1] like every score the trainer sees."""
    if not adjustments:
        return base_score
    return min(1.0, max(0.0, base_score + sum(adjustments.values())))
