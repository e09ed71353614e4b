"""The four layers of the reward, each a pure function returning (score in [0, 1], problems).

validity    Is there JSON the front end's `JSON.parse` accepts? Strict JSON bare or in one fence
            1.0 · after a <think> block 0.95 · inside prose 0.9 · only after repair (NaN,
            comments, trailing commas, Python literals, an unclosed object) 0.2 · nothing 0.
            A JSON value that is not an object counts half.
schema      componentType must be exactly "metricCard" (anything else: 0, the component does
            not render); then per-field partial credit against the card's shape
            (`metric_cards.schema`), exactly 1.0 when the Pydantic models accept the card.
semantic    Does the card answer the request? The weighted mean of the checks in `checks.py`
            (weights in `weights.py`); without a catalog request, a generic version.
formatting  Is the answer the JSON alone? Prose costs in proportion to its length, a cut-off
            completion costs (finish_reason "length" or an object left unclosed), an overlong
            answer costs.
"""

from __future__ import annotations

import math
from typing import Any

from metric_cards.extraction import Extraction
from metric_cards.reward.checks import ABSENT, CHECKS, Verdict
from metric_cards.reward.facts import (
    CONTENT_MEMOS,
    MEMOS,
    BoundedMemo,
    CardFacts,
    RequestFacts,
    card_facts,
    request_facts,
    trend_number,
)
from metric_cards.reward.weights import DEFAULT_REWARD, RewardConfig
from metric_cards.schema import (
    CLASS_NAME_MAX_LENGTH,
    DESCRIPTION_MAX_LENGTH,
    ICON_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    VALUE_MAX_LENGTH,
)

__all__ = [
    "formatting_layer",
    "is_strict_json",
    "is_valid_card",
    "schema_layer",
    "semantic_layer",
    "validity_layer",
]

_NUMBER_TYPES = (int, float)  # bool is an int subclass: callers exclude it explicitly
_CLEAN = frozenset({"bare", "fenced"})


def is_strict_json(extraction: Extraction) -> bool:
    """ "Valid JSON": a JSON object that JavaScript's JSON.parse accepts as written (no repair).
    The one definition behind the run statistics, the process summary and the viewer."""
    return extraction.value.__class__ is dict and not extraction.repaired


# --- validity -------------------------------------------------------------------------------


def validity_layer(
    extraction: Extraction, config: RewardConfig = DEFAULT_REWARD, *, rejected: str = ""
) -> tuple[float, list[str]]:
    """Is there strict JSON to find, and how cleanly? `rejected`: why JSON.parse rejects the
    answer although the card itself parsed (a // or /* comment before it, a second object)."""
    method = extraction.method
    if extraction.value is None:
        return 0.0, ["no JSON object found"]
    problems: list[str] = []
    if extraction.repaired or rejected:
        score = config.validity_repaired
        problems.append(
            rejected or "the JSON is not strict JSON (JSON.parse rejects it) and needed repair"
        )
    elif method in _CLEAN:
        score = 1.0
    elif method == "after_think":
        score = config.validity_after_think
    else:
        score = config.validity_in_prose
        problems.append("the JSON is wrapped in prose")
    if not isinstance(extraction.value, dict):
        score *= 0.5
        problems.append(f"the JSON is a {_json_type(extraction.value)}, not an object")
    return score, problems


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, _NUMBER_TYPES):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return "object"


# --- schema ---------------------------------------------------------------------------------

# Credit per field; a field that is optional and absent earns its full credit (absent is valid).
_SCHEMA_CREDIT = {
    "componentType": 1.0,
    "props": 1.0,
    "title": 1.0,
    "value": 1.0,
    "description": 0.5,
    "trend": 1.0,
    "icon": 0.5,
    "className": 0.25,
    "no_unknown_keys": 1.0,
}
_SCHEMA_TOTAL = sum(_SCHEMA_CREDIT.values())
_REQUIRED_PROPS = ("title", "value")
MISSING_REQUIRED_FACTOR = 0.5  # on the schema layer of a card missing a required prop
_CARD_KEYS = frozenset({"componentType", "props"})
_PROPS_KEYS = frozenset({"title", "value", "description", "trend", "icon", "className"})
_TREND_KEYS = frozenset({"value", "isPositive"})
_OPTIONAL_STRINGS = (
    ("description", DESCRIPTION_MAX_LENGTH, 0),
    ("icon", ICON_MAX_LENGTH, 1),
    ("className", CLASS_NAME_MAX_LENGTH, 0),
)


def schema_layer(card: Any) -> tuple[float, list[str]]:
    """Per-field partial credit for the card's shape; 1.0 exactly when `MetricCard` validates it.

    Written by hand (not Pydantic) because it runs once per completion in the RL loop and must
    say how far off each field is; tests check it agrees with the Pydantic models and jsonschema.
    """
    if card.__class__ is dict and is_valid_card(card):
        return 1.0, []
    if not isinstance(card, dict):
        return 0.0, ["the answer is not a JSON object"]
    problems: list[str] = []
    component = card.get("componentType")
    if component != "metricCard":
        # the front end renders nothing for another componentType, a case variant included
        if "componentType" not in card:
            return 0.0, ["no componentType: the component does not render"]
        return 0.0, [f'componentType is {component!r}, not "metricCard": nothing renders']
    earned = 1.0
    unknown = [key for key in card if key not in _CARD_KEYS]
    props = card.get("props")
    if isinstance(props, dict):
        earned += 1.0
        earned += _required_string(props, "title", TITLE_MAX_LENGTH, problems)
        earned += _required_string(props, "value", VALUE_MAX_LENGTH, problems)
        for key, max_length, min_length in _OPTIONAL_STRINGS:
            credit = _SCHEMA_CREDIT[key]
            earned += credit * _optional_string(props, key, max_length, min_length, problems)
        earned += _trend_shape(props, problems, unknown)
        unknown.extend(f"props.{key}" for key in props if key not in _PROPS_KEYS)
    else:
        problems.append("props is not an object" if "props" in card else "no props")
    if unknown:
        earned += max(0.0, 1.0 - 0.5 * len(unknown))
        problems.append("unknown keys: " + ", ".join(unknown))
    else:
        earned += 1.0
    shape = earned / _SCHEMA_TOTAL
    missing = [key for key in _REQUIRED_PROPS if not (isinstance(props, dict) and props.get(key))]
    if missing:
        # The component shows nothing useful without its title and value: leaving one out must
        # cost more than writing it wrong, or a policy learns to omit what it might get wrong.
        problems.append(f"the card cannot render without props.{' and props.'.join(missing)}")
        shape *= MISSING_REQUIRED_FACTOR
    return shape, problems


def is_valid_card(card: dict) -> bool:
    """Fast path for the common case, a card that is entirely right (plain JSON types only)."""
    props = card.get("props")
    if props.__class__ is not dict or len(card) != 2 or card.get("componentType") != "metricCard":
        return False
    if not props.keys() <= _PROPS_KEYS:
        return False
    title, value = props.get("title"), props.get("value")
    if title.__class__ is not str or not 0 < len(title) <= TITLE_MAX_LENGTH:
        return False
    if value.__class__ is not str or not 0 < len(value) <= VALUE_MAX_LENGTH:
        return False
    if "trend" in props and not _is_valid_trend(props["trend"]):
        return False
    # the optional strings, written out: a loop over them costs more than the checks
    if "description" in props:
        text = props["description"]
        if text.__class__ is not str or len(text) > DESCRIPTION_MAX_LENGTH:
            return False
    if "icon" in props:
        text = props["icon"]
        if text.__class__ is not str or not 0 < len(text) <= ICON_MAX_LENGTH:
            return False
    if "className" in props:
        text = props["className"]
        if text.__class__ is not str or len(text) > CLASS_NAME_MAX_LENGTH:
            return False
    for text in props.values():
        if text.__class__ is str and not (text.isascii() or _encodable(text)):
            return False
    return True


def _encodable(text: str) -> bool:
    """No lone surrogate ("\\ud800"): the text can be written as UTF-8 and shown."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_valid_trend(trend: Any) -> bool:
    if trend.__class__ is not dict or trend.keys() != _TREND_KEYS:
        return False
    change = trend["value"]
    number = change.__class__ is int or (change.__class__ is float and math.isfinite(change))
    return number and trend["isPositive"].__class__ is bool


def _finite(number: float) -> bool:
    return isinstance(number, int) or math.isfinite(number)


def _required_string(props: dict, key: str, max_length: int, problems: list[str]) -> float:
    text = props.get(key)
    if isinstance(text, str):
        if not _encodable(text):
            problems.append(f"props.{key} holds a lone surrogate")
            return 0.25
        if 0 < len(text) <= max_length:
            return 1.0
        problems.append(f"props.{key} is empty" if not text else f"props.{key} is too long")
        return 0.5 if text else 0.25
    if key not in props:
        problems.append(f"no props.{key}")
        return 0.0
    problems.append(f"props.{key} must be a string, not a {_json_type(text)}")
    # a number is the right information in the wrong type: the component still shows something
    return 0.5 if isinstance(text, _NUMBER_TYPES) and not isinstance(text, bool) else 0.0


def _optional_string(
    props: dict, key: str, max_length: int, min_length: int, problems: list[str]
) -> float:
    if key not in props:
        return 1.0
    text = props[key]
    if isinstance(text, str):
        if not _encodable(text):
            problems.append(f"props.{key} holds a lone surrogate")
            return 0.25
        if min_length <= len(text) <= max_length:
            return 1.0
        problems.append(f"props.{key} is {'too long' if text else 'empty'}")
        return 0.5
    problems.append(f"props.{key} must be a string, not a {_json_type(text)}")
    return 0.0


def _trend_shape(props: dict, problems: list[str], unknown: list[str]) -> float:
    if "trend" not in props:
        return 1.0
    trend = props["trend"]
    if not isinstance(trend, dict):
        problems.append(f"props.trend must be an object, not a {_json_type(trend)}")
        return 0.0
    credit = 0.0
    value = trend.get("value")
    if isinstance(value, _NUMBER_TYPES) and not isinstance(value, bool) and _finite(value):
        credit += 0.5
    elif isinstance(value, str) and any(char.isdigit() for char in value[:64]):
        credit += 0.2
        problems.append("props.trend.value must be a number, not a string")
    else:
        problems.append(
            "no props.trend.value" if "value" not in trend else "props.trend.value is not a number"
        )
    positive = trend.get("isPositive")
    if isinstance(positive, bool):
        credit += 0.5
    elif isinstance(positive, str) and positive.lower() in ("true", "false"):
        credit += 0.2
        problems.append("props.trend.isPositive must be a boolean, not a string")
    else:
        problems.append(
            "no props.trend.isPositive"
            if "isPositive" not in trend
            else "props.trend.isPositive is not a boolean"
        )
    unknown.extend(f"props.trend.{key}" for key in trend if key not in _TREND_KEYS)
    return credit


# --- semantic -------------------------------------------------------------------------------


def semantic_layer(
    card: Any, want: RequestFacts | None, config: RewardConfig = DEFAULT_REWARD
) -> tuple[float, list[str], dict[str, Verdict]]:
    """Does the card answer the request? The weighted mean of `checks.CHECKS`, with their
    verdicts by name; without catalog request facts, `generic_semantic`."""
    props = card.get("props") if isinstance(card, dict) else None
    if not isinstance(props, dict):
        return 0.0, ["no props to check against the request"], {}
    if want is None:
        score, problems = generic_semantic(card_facts(props))
        return score, problems, {}
    weights = config.check_weights()
    verdicts = _card_verdicts(props, want)
    total = 0.0
    problems = []
    for name, verdict in verdicts.items():
        total += weights[name] * verdict.score
        if verdict.problems:
            problems.extend(verdict.problems)
    # 6 decimals: 0.3 + 0.35 + 0.35 is 1.0, not 0.9999999999999999
    return min(1.0, round(total, 6)), problems, verdicts


def _check_all(facts: CardFacts, want: RequestFacts) -> dict[str, Verdict]:
    return {name: check(facts, want) for name, check in CHECKS.items()}


def _card_verdicts(props: dict, want: RequestFacts) -> dict[str, Verdict]:
    """The checks' verdicts on a card, memoised by what they read (the title, value, icon and
    description strings, the trend's number and sign, the request): the same card comes back
    often within a group and as a policy converges. Props of other types are checked afresh."""
    title, value = props.get("title"), props.get("value")
    icon, description = props.get("icon"), props.get("description")
    trend = props.get("trend")
    for text in (title, value, icon, description):
        if text is not None and text.__class__ is not str:
            return _check_all(card_facts(props), want)
    if trend is None:
        trend_key = None
    elif trend.__class__ is dict:
        trend_key = trend_number(trend)
    else:
        return _check_all(card_facts(props), want)
    key = (title, value, icon, description, trend_key, want.request)
    found = _VERDICTS.table.get(key)
    if found is not None:
        return found
    # the props hold exactly what the key says: check them as they are
    return _VERDICTS.keep(key, _check_all(card_facts(props), want))


def _verdicts_of(key: tuple) -> dict[str, Verdict]:
    title, value, icon, description, trend_key, request = key
    props: dict[str, Any] = {"title": title, "value": value, "icon": icon}
    props["description"] = description
    if trend_key is not None:
        props["trend"] = {"value": trend_key[0], "isPositive": trend_key[1]}
    want = request_facts(request)
    assert want is not None
    return _check_all(card_facts(props), want)


_VERDICTS: BoundedMemo[tuple, dict[str, Verdict]] = BoundedMemo(_verdicts_of, 1 << 21, 2048)
CONTENT_MEMOS.append(_VERDICTS)
MEMOS.append(_VERDICTS)


def generic_semantic(facts: CardFacts) -> tuple[float, list[str]]:
    """For a prompt not from the catalog: a readable title, one quantity as the value, a trend
    with a number and a sign, a Lucide icon, a description: equal shares."""
    problems = []
    title = 1.0 if facts.title is not None and facts.title.words else 0.0
    value = 1.0 if facts.value is not None and facts.value.kind is not None else 0.0
    if facts.trend_raw is None:
        trend = ABSENT
    else:
        trend = 1.0 if facts.trend_value is not None and facts.trend_positive is not None else 0.0
    icon = ABSENT if facts.icon_raw is None else float(facts.icon is not None)
    description = 1.0 if facts.description is not None and facts.description.words else ABSENT
    for name, score in (("title", title), ("value", value), ("trend", trend), ("icon", icon)):
        if score < 1.0:
            problems.append(f"the {name} is missing or unreadable")
    return (title + value + trend + icon + description) / 5, problems


# --- formatting -----------------------------------------------------------------------------


def formatting_layer(
    extraction: Extraction, finish_reason: str | None, config: RewardConfig = DEFAULT_REWARD
) -> tuple[float, list[str]]:
    """The answer is the JSON alone, complete, and of reasonable length."""
    if extraction.value is None:
        return 0.0, ["nothing to format"]
    problems: list[str] = []
    cost = 0.0
    prose = extraction.prose_chars
    if prose:
        cost += config.prose_penalty * min(1.0, prose / config.prose_chars_full_penalty)
        problems.append(f"{prose} characters of prose around the JSON")
    text = extraction.text or ""
    if finish_reason == "length":
        cost += config.truncation_penalty
        problems.append("the completion was cut off (finish_reason=length)")
    elif extraction.truncated:
        cost += config.truncation_penalty
        problems.append("the JSON object was never closed: the completion is cut off")
    if extraction.capped:
        cost += config.long_answer_penalty
        problems.append("the completion is over the size cap and was cut for scoring")
    size = len(text) + prose
    limit = config.max_reasonable_chars
    if size > limit:
        cost += config.long_answer_penalty * min(1.0, (size - limit) / limit)
        problems.append(f"the answer is {size} characters long (over {limit})")
    return max(0.0, 1.0 - cost), problems
