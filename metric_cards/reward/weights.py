"""Every number the reward is tuned by, in one place: layer weights, semantic check weights,
gates and penalties. Each is a `RewardConfig` field, so the env config (which inherits
RewardConfig) exposes it as `--env.<field>`; weights are normalised by their sum, so only their
ratios matter.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field, model_validator

__all__ = ["DEFAULT_REWARD", "LAYER_WEIGHTS", "SEMANTIC_WEIGHTS", "RewardConfig"]

# name of the layer -> RewardConfig field holding its weight
LAYER_WEIGHTS = {
    "validity": "weight_validity",
    "schema": "weight_schema",
    "semantic": "weight_semantic",
    "formatting": "weight_formatting",
}
# name of the semantic check (a function in checks.py) -> RewardConfig field holding its weight
SEMANTIC_WEIGHTS = {
    "title": "weight_title",
    "value": "weight_value",
    "magnitude": "weight_magnitude",
    "trend": "weight_trend",
    "icon": "weight_icon",
    "description": "weight_description",
}


def _weight(default: float, text: str) -> float:
    return Field(default=default, ge=0, le=1e6, allow_inf_nan=False, description=text)


def _share(default: float, text: str) -> float:
    return Field(default=default, ge=0, le=1, allow_inf_nan=False, description=text)


class RewardConfig(BaseModel):
    """Reward weights and penalties. Flat on purpose: the env config inherits these fields and
    exposes each as an `--env.<field>` flag."""

    # --- layers: score = weighted mean, then the gates below
    weight_validity: float = _weight(0.05, "Layer weight: the answer is JSON the front end parses.")
    weight_schema: float = _weight(0.05, "Layer weight: per-field shape of the card.")
    weight_semantic: float = _weight(0.80, "Layer weight: the card answers the request.")
    weight_formatting: float = _weight(
        0.10, "Layer weight: JSON alone, complete, not overlong (credited as far as it is a card)."
    )
    # --- semantic checks (checks.py), normalised by their sum
    weight_title: float = _weight(0.16, "Check weight: the title names the asked metric only.")
    weight_value: float = _weight(0.10, "Check weight: the value is one quantity in its unit.")
    weight_magnitude: float = _weight(0.15, "Check weight: the value is realistic for the metric.")
    weight_trend: float = _weight(
        0.20, "Check weight: a realistic non-zero trend whose sign agrees with isPositive."
    )
    weight_icon: float = _weight(0.14, "Check weight: a Lucide icon that fits the metric.")
    weight_description: float = _weight(
        0.25, "Check weight: an own sentence naming the period and domain, contradicting neither."
    )
    # --- gates: whole-card factors
    off_topic_cost: float = _share(
        0.6,
        "Share of the whole score lost by a card whose title does not name the asked metric "
        "(scaled by how far the title check fails): it answers another question.",
    )
    repaired_factor: float = _share(
        0.6,
        "Factor on the whole score of JSON that needed repair (the front end's JSON.parse "
        "rejects it), so it stays below any strictly valid card of the same content.",
    )
    # --- validity
    validity_after_think: float = _share(0.95, "Validity of a clean JSON answer after <think>.")
    validity_in_prose: float = _share(0.9, "Validity of a JSON object found inside prose.")
    validity_repaired: float = _share(
        0.2,
        "Validity of text that is not strict JSON (NaN, comments, trailing commas, Python "
        "literals, an unclosed object) and needed repair.",
    )
    # --- formatting
    prose_penalty: float = _share(0.6, "Most the formatting layer loses to prose.")
    prose_chars_full_penalty: int = Field(
        default=200,
        ge=1,
        le=10**9,
        description="Non-whitespace prose characters at which the whole prose_penalty applies.",
    )
    truncation_penalty: float = _share(
        0.5, "Formatting lost when the completion was cut off (length, or an unclosed object)."
    )
    max_reasonable_chars: int = Field(
        default=1000, ge=1, le=10**9, description="Answer length (outside <think>) that is free."
    )
    long_answer_penalty: float = _share(
        0.5, "Formatting lost by an answer twice max_reasonable_chars long (proportional)."
    )

    @model_validator(mode="after")
    def _some_weight(self) -> RewardConfig:
        for group in (LAYER_WEIGHTS, SEMANTIC_WEIGHTS):
            total = sum(getattr(self, field) for field in group.values())
            if not (total > 0 and math.isfinite(total)):
                names = ", ".join(group.values())
                raise ValueError(f"at least one of {names} must be positive")
        return self

    def layer_weights(self) -> dict[str, float]:
        """Layer name -> weight, normalised to sum to 1."""
        return _normalised_weights(self)[0]

    def check_weights(self) -> dict[str, float]:
        """Semantic check name -> weight, normalised to sum to 1."""
        return _normalised_weights(self)[1]


# id(config) -> (config, layer weights, check weights): computed once per config (a config is
# not changed once made); the config is kept so its id cannot be reused by another object.
_WEIGHTS: dict[int, tuple[RewardConfig, dict[str, float], dict[str, float]]] = {}


def _normalised_weights(config: RewardConfig) -> tuple[dict[str, float], dict[str, float]]:
    found = _WEIGHTS.get(id(config))
    if found is None or found[0] is not config:
        if len(_WEIGHTS) > 64:
            _WEIGHTS.clear()
        found = _WEIGHTS[id(config)] = (
            config,
            _normalised(config, LAYER_WEIGHTS),
            _normalised(config, SEMANTIC_WEIGHTS),
        )
    return found[1], found[2]


def _normalised(config: RewardConfig, table: dict[str, str]) -> dict[str, float]:
    raw = {name: float(getattr(config, field)) for name, field in table.items()}
    total = sum(raw.values())
    return {name: weight / total for name, weight in raw.items()}


DEFAULT_REWARD = RewardConfig()
