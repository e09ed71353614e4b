"""The reward: how good is one completion as a MetricCard config for the request it answers?

    layers.py    validity · schema · semantic · formatting, each a score in [0, 1] + problems
    checks.py    the semantic checks (title, value, magnitude, trend, icon, description)
    weights.py   every weight and penalty, as RewardConfig fields (`--env.<field>`)
    facts.py     what a card and a request say, read once (the memoised fast path)
    quantity.py  the value grammar; mentions.py  metric/period/domain phrases in text

Combination (weights normalised by their sum; docs/reward.md has the rubric and examples):

    base  = w_validity·V + w_schema·S + (w_semantic·M + w_formatting·F)·S     (0 when V = 0)
    score = base × (1 − off_topic_cost·(1 − title)) × (repaired_factor if repaired else 1)

What the card says and how tidily count as far as it renders as a card (·S: a wrong
componentType renders nothing). A card whose title does not name the asked
metric answers another question, so its tidiness earns little (the off-topic gate); text that
`JSON.parse` rejects stays below any strictly valid card of the same content (the repair gate).
Deterministic and continuous: no randomness, no noise added to spread scores.
"""

from __future__ import annotations

from typing import NamedTuple

from metric_cards.catalog import Request
from metric_cards.extraction import MAX_COMPLETION_CHARS, Extraction, extract_json
from metric_cards.reward.facts import request_facts
from metric_cards.reward.layers import (
    formatting_layer,
    is_strict_json,
    is_valid_card,
    schema_layer,
    semantic_layer,
    validity_layer,
)
from metric_cards.reward.weights import DEFAULT_REWARD, RewardConfig

__all__ = [
    "CANARIES",
    "DEFAULT_REWARD",
    "LAYERS",
    "RewardConfig",
    "ScoreResult",
    "combine_layers",
    "is_strict_json",
    "score_completion",
]

LAYERS = ("validity", "schema", "semantic", "formatting")

# Hacking canaries: per completion, signs that a policy is gaming the reward rather than writing
# better cards. Their rates go to the run summary, wandb (train/canary_<name>) and the viewer.
CANARIES = (
    "prompt_copied",  # the description repeats the prompt's words
    "example_copied",  # a value, trend, icon or description copied from the instructions' example
    "several_metrics_in_title",  # the title names other metrics besides (or instead of) the asked
    "flat_trend",  # trend.value is 0
    "wrong_unit",  # the value is a quantity in another unit than the metric's
    "repaired_json",  # JSON.parse would reject the text; it needed repair
    "prose_before_card",  # text before the card (outside the reasoning block)
)


class ScoreResult(NamedTuple):
    score: float  # in [0, 1]
    layers: dict[str, float]  # keys exactly LAYERS
    problems: list[str]  # short readable strings naming what cost points
    extraction: Extraction
    canaries: dict[str, bool]  # keys exactly CANARIES
    checks: dict[str, float]  # semantic check scores by name (empty without a catalog request)


def score_completion(
    completion: str,
    request: Request | None,
    finish_reason: str | None = None,
    config: RewardConfig = DEFAULT_REWARD,
) -> ScoreResult:
    """Score one completion against the request it answers (None: a prompt not from the catalog)."""
    text = completion if isinstance(completion, str) else ""
    extraction = extract_json(text)
    canaries = dict.fromkeys(CANARIES, False)
    # A bare or fenced card starts the answer: no comment or prose before it to look for.
    answer = "" if extraction.method in _CLEAN else _answer(text)
    rejected = _rejected_by_json_parse(answer, extraction)
    validity, problems = validity_layer(extraction, config, rejected=rejected)
    if validity <= 0.0:
        return ScoreResult(0.0, dict.fromkeys(LAYERS, 0.0), problems, extraction, canaries, {})
    card = extraction.value
    schema_problems: list[str]
    if card.__class__ is dict and is_valid_card(card):
        schema, schema_problems = 1.0, []
    else:
        schema, schema_problems = schema_layer(card)
    want = request_facts(request)
    semantic, semantic_problems, verdicts = semantic_layer(card, want, config)
    formatting, formatting_problems = formatting_layer(extraction, finish_reason, config)
    checks = {name: round(verdict.score, 6) for name, verdict in verdicts.items()}
    for verdict in verdicts.values():
        if verdict.canaries:  # rarely: most verdicts raise none
            canaries.update(dict.fromkeys(verdict.canaries, True))
    not_strict = extraction.repaired or bool(rejected)
    canaries["repaired_json"] = not_strict
    canaries["prose_before_card"] = bool(
        answer and extraction.prose_chars and not answer.startswith(("{", "`", "["))
    )
    layers = {
        "validity": validity,
        "schema": schema,
        "semantic": semantic,
        "formatting": formatting,
    }
    if schema_problems or formatting_problems:
        problems = [*problems, *schema_problems, *semantic_problems, *formatting_problems]
    else:
        problems = [*problems, *semantic_problems]
    return ScoreResult(
        combine_layers(layers, config, title=checks.get("title", 1.0), repaired=not_strict),
        layers,
        problems,
        extraction,
        canaries,
        checks,
    )


_CLEAN = frozenset({"bare", "fenced"})


def combine_layers(
    layers: dict[str, float],
    config: RewardConfig = DEFAULT_REWARD,
    *,
    title: float = 1.0,
    repaired: bool = False,
) -> float:
    """The score from the layers and the two gates (see the module docstring)."""
    if layers["validity"] <= 0.0:
        return 0.0
    weights = config.layer_weights()
    base = (
        weights["validity"] * layers["validity"]
        + weights["schema"] * layers["schema"]
        + (weights["semantic"] * layers["semantic"] + weights["formatting"] * layers["formatting"])
        * layers["schema"]
    )
    score = base * (1.0 - config.off_topic_cost * (1.0 - title))
    if repaired:
        score *= config.repaired_factor
    return round(min(1.0, max(0.0, score)), 6)


def _rejected_by_json_parse(answer: str, extraction: Extraction) -> str:
    """Why JSON.parse rejects an answer whose card parsed: JSON with a comment before the card,
    a second JSON object beside it (which card would the front end show?), or stray brackets
    beside it (`{...}}`: the brackets do not balance). "" otherwise; plain prose around one card
    is the formatting layer's business."""
    if not answer or extraction.text is None:
        return ""
    if answer.startswith(("//", "/*")):
        return "a comment before the card: JSON with comments is not JSON (JSON.parse rejects it)"
    end = answer.lower().rfind("</think>")
    tail = answer[end + len("</think>") :] if end >= 0 else answer
    card = extraction.text
    extra_open = tail.count("{") - card.count("{")
    extra_close = tail.count("}") - card.count("}")
    if extra_open > 0 and extra_close > 0:
        return "another JSON object beside the card: the answer is not one JSON text"
    if extra_open or extra_close or tail.count("[") != tail.count("]"):
        return "stray brackets beside the card: the answer is not one JSON text"
    return ""


def _answer(text: str) -> str:
    """The answer without leading whitespace and a leading reasoning block (within the part of
    the completion the extractor reads)."""
    answer = text[:MAX_COMPLETION_CHARS].lstrip()
    if answer[:7].lower() == "<think>":
        end = answer.lower().rfind("</think>")
        answer = answer[end + len("</think>") :].lstrip() if end >= 0 else ""
    return answer


__all__ += ["formatting_layer", "schema_layer", "semantic_layer", "validity_layer"]
