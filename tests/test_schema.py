"""The card schema: Pydantic models, the exported JSON Schema (in sync with the committed file),
jsonschema's verdicts, and the reward's hand-written schema check agreeing with both."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from metric_cards.reward import schema_layer
from metric_cards.schema import (
    SCHEMA_DIALECT,
    TITLE_MAX_LENGTH,
    MetricCard,
    json_schema,
    schema_text,
)

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "schema" / "metric_card.schema.json"

GOOD_CARD: dict[str, Any] = {
    "componentType": "metricCard",
    "props": {
        "title": "Revenue",
        "value": "$12,345",
        "description": "Total revenue this month",
        "trend": {"value": 12.5, "isPositive": True},
        "icon": "dollar-sign",
        "className": "col-span-2",
    },
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """GOOD_CARD with one key set (value=DELETE removes it); path like 'props.trend.value'."""
    card = copy.deepcopy(GOOD_CARD)
    *parents, last = path.split(".")
    node = card
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return card


DELETE = object()

GOOD = [
    GOOD_CARD,
    {"componentType": "metricCard", "props": {"title": "Churn", "value": "3.2%"}},
    _with("props.trend", {"value": -3, "isPositive": True}),  # an integer is a number
    _with("props.description", ""),
    _with("props.title", "T" * TITLE_MAX_LENGTH),
]
BAD = {
    "wrong componentType": _with("componentType", "MetricCard"),
    "no componentType": _with("componentType", DELETE),
    "no props": _with("props", DELETE),
    "props a list": _with("props", []),
    "no title": _with("props.title", DELETE),
    "no value": _with("props.value", DELETE),
    "title a number": _with("props.title", 5),
    "value a number": _with("props.value", 12345),
    "empty title": _with("props.title", ""),
    "title too long": _with("props.title", "T" * (TITLE_MAX_LENGTH + 1)),
    "description null": _with("props.description", None),
    "icon empty": _with("props.icon", ""),
    "icon a list": _with("props.icon", ["dollar"]),
    "className a number": _with("props.className", 3),
    "trend a number": _with("props.trend", 12.5),
    "trend value a string": _with("props.trend.value", "12.5"),
    "trend value a boolean": _with("props.trend.value", True),
    "trend isPositive a string": _with("props.trend.isPositive", "true"),
    "trend isPositive missing": _with("props.trend.isPositive", DELETE),
    "unknown top-level key": _with("extra", 1),
    "unknown props key": _with("props.color", "red"),
    "unknown trend key": _with("props.trend.period", "month"),
    "not an object": ["metricCard"],
}


def pydantic_accepts(card: Any) -> bool:
    try:
        MetricCard.model_validate(card)
    except ValidationError:
        return False
    return True


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    return Draft202012Validator(json_schema())


def test_committed_schema_is_in_sync_with_the_models() -> None:
    assert json.loads(COMMITTED.read_text(encoding="utf-8")) == json_schema(), (
        "regenerate: python -m metric_cards schema -o schema/metric_card.schema.json"
    )
    assert COMMITTED.read_text(encoding="utf-8") == schema_text()


def test_schema_is_valid_draft_2020_12_and_self_contained() -> None:
    schema = json_schema()
    assert schema["$schema"] == SCHEMA_DIALECT
    Draft202012Validator.check_schema(schema)
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text  # inlined for guided decoding backends
    assert '"default": null' not in text
    assert schema["properties"]["componentType"]["const"] == "metricCard"
    assert schema["additionalProperties"] is False
    assert schema["properties"]["props"]["additionalProperties"] is False
    assert schema["properties"]["props"]["required"] == ["title", "value"]


@pytest.mark.parametrize("card", GOOD)
def test_good_cards_are_accepted_by_all_three(card: dict, validator: Draft202012Validator) -> None:
    assert validator.is_valid(card)
    assert pydantic_accepts(card)
    assert schema_layer(card) == (1.0, [])


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_cards_are_rejected_by_all_three(name: str, validator: Draft202012Validator) -> None:
    card = BAD[name]
    assert not validator.is_valid(card), name
    assert not pydantic_accepts(card), name
    score, problems = schema_layer(card)
    assert score < 1.0 and problems, name


def test_corpus_cards_pass_the_schema(
    corpus_rows: list[dict], validator: Draft202012Validator
) -> None:
    for row in corpus_rows:
        card = json.loads(row["completion"])
        assert validator.is_valid(card) and pydantic_accepts(card)
        assert schema_layer(card) == (1.0, [])


def _mutations() -> list[dict]:
    """Every field of GOOD_CARD removed or replaced by each JSON type, plus unknown keys."""
    replacements = ["text", "", 7, 2.5, True, None, [], {}, {"value": 1, "isPositive": False}]
    paths = [
        "componentType",
        "props",
        "props.title",
        "props.value",
        "props.description",
        "props.trend",
        "props.icon",
        "props.className",
        "props.trend.value",
        "props.trend.isPositive",
    ]
    cards = [_with(path, DELETE) for path in paths]
    cards += [_with(path, value) for path in paths for value in replacements]
    cards += [_with("x", 1), _with("props.x", 1), _with("props.trend.x", 1)]
    return cards


def test_hand_written_check_agrees_with_pydantic_and_jsonschema(
    validator: Draft202012Validator,
) -> None:
    """The reward's fast schema check gives 1.0 exactly for the cards the models accept."""
    cards = _mutations()
    accepted = 0
    for card in cards:
        valid = pydantic_accepts(card)
        assert validator.is_valid(card) == valid, card
        score, problems = schema_layer(card)
        assert (score == 1.0) == valid, (card, score, problems)
        assert 0.0 <= score <= 1.0
        accepted += valid
    assert 5 < accepted < len(cards) - 50  # the mutations really mix valid and invalid


def test_schema_credit_is_partial_and_ordered() -> None:
    one_wrong = schema_layer(_with("props.icon", 3))[0]
    value_number = schema_layer(_with("props.value", 12345))[0]
    no_props = schema_layer(_with("props", DELETE))[0]
    assert 1.0 > one_wrong > no_props
    assert 1.0 > value_number > schema_layer(_with("props.value", DELETE))[0]
    assert no_props > schema_layer({"foo": 1})[0] >= 0.0
    assert schema_layer("not a card") == (0.0, ["the answer is not a JSON object"])
    unknown = schema_layer(_with("props.color", "red"))
    assert unknown[1] == ["unknown keys: props.color"]


def test_schema_command_prints_and_writes(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "metric_cards", "schema"]
    printed = subprocess.run(run, cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(printed.stdout) == json_schema()
    target = tmp_path / "card.schema.json"
    written = subprocess.run([*run, "-o", str(target)], cwd=REPO, capture_output=True, text=True)
    assert written.returncode == 0 and written.stdout == ""
    assert json.loads(target.read_text(encoding="utf-8")) == json_schema()
    missing_dir = subprocess.run(
        [*run, "-o", str(tmp_path / "nope" / "x.json")], cwd=REPO, capture_output=True, text=True
    )
    assert missing_dir.returncode == 2 and "Traceback" not in missing_dir.stderr
