"""The metric card's shape: Pydantic v2 models are the source of truth, exported as JSON Schema.

`json_schema()` turns the models into a self-contained JSON Schema (Draft 2020-12, no `$ref`s, no
`null` for optional fields) that vLLM / SGLang guided decoding accept as `guided_json` or
`response_format={"type": "json_schema", ...}`. The committed copy lives at
`schema/metric_card.schema.json`; a test keeps it in sync (`python -m metric_cards schema -o
schema/metric_card.schema.json` rewrites it).

The models are strict (no string-to-number coercion, no extra keys) so they accept exactly what
the JSON Schema accepts. String length limits keep guided decoding from running on forever.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from metric_cards.io_utils import atomic_writer

__all__ = [
    "MetricCard",
    "MetricCardProps",
    "Trend",
    "json_schema",
    "main",
    "SCHEMA_DIALECT",
    "TITLE_MAX_LENGTH",
    "VALUE_MAX_LENGTH",
    "DESCRIPTION_MAX_LENGTH",
    "ICON_MAX_LENGTH",
    "CLASS_NAME_MAX_LENGTH",
]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

TITLE_MAX_LENGTH = 80
VALUE_MAX_LENGTH = 40
DESCRIPTION_MAX_LENGTH = 300
ICON_MAX_LENGTH = 64
CLASS_NAME_MAX_LENGTH = 200

_STRICT = ConfigDict(extra="forbid", strict=True)


class Trend(BaseModel):
    """Change since the previous period."""

    model_config = _STRICT

    value: float = Field(description="Change in percent, e.g. 12.5 or -3.2.")
    isPositive: bool = Field(  # noqa: N815 - the component's prop names are camelCase
        description="True when the change is good news for the business."
    )


class MetricCardProps(BaseModel):
    """What the MetricCard React component renders."""

    model_config = _STRICT

    title: str = Field(
        min_length=1, max_length=TITLE_MAX_LENGTH, description="The metric name, e.g. 'Revenue'."
    )
    value: str = Field(
        min_length=1,
        max_length=VALUE_MAX_LENGTH,
        description="The formatted value, e.g. '$12,345', '4.8%', '4m 32s'.",
    )
    # Optional fields default to None but do not accept null: absent is the only way to omit them.
    description: str = Field(
        default=None,
        max_length=DESCRIPTION_MAX_LENGTH,
        description="Context: the time period and the business domain.",
    )
    trend: Trend = Field(default=None, description="Change since the previous period.")
    icon: str = Field(
        default=None,
        min_length=1,
        max_length=ICON_MAX_LENGTH,
        description="A Lucide icon name, e.g. 'dollar-sign', 'users', 'trending-up'.",
    )
    className: str = Field(  # noqa: N815
        default=None, max_length=CLASS_NAME_MAX_LENGTH, description="CSS class names."
    )


class MetricCard(BaseModel):
    """A JSON config for the dashboard MetricCard component."""

    model_config = _STRICT

    componentType: Literal["metricCard"] = Field(description='Always "metricCard".')  # noqa: N815
    props: MetricCardProps


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """Replace every {"$ref": "#/$defs/X"} by a copy of X: some guided-decoding backends
    handle `$ref` poorly, and the card is small enough to spell out."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = copy.deepcopy(defs[ref.removeprefix("#/$defs/")])
            siblings = {key: value for key, value in node.items() if key != "$ref"}
            return _inline_refs({**target, **siblings}, defs)
        return {key: _inline_refs(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    return node


def _drop_null_defaults(node: Any) -> Any:
    """`"default": null` would advertise null as a value; optional fields are simply omitted."""
    if isinstance(node, dict):
        return {
            key: _drop_null_defaults(value)
            for key, value in node.items()
            if not (key == "default" and value is None)
        }
    if isinstance(node, list):
        return [_drop_null_defaults(item) for item in node]
    return node


def json_schema() -> dict[str, Any]:
    """The metric card as JSON Schema Draft 2020-12 (self-contained, with `$schema`)."""
    raw = MetricCard.model_json_schema()
    defs = raw.pop("$defs", {})
    body = _drop_null_defaults(_inline_refs(raw, defs))
    return {"$schema": SCHEMA_DIALECT, **body}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m metric_cards schema",
        description="Print the metric card JSON Schema (Draft 2020-12) for guided decoding.",
        epilog="example: python -m metric_cards schema -o schema/metric_card.schema.json",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    args = parser.parse_args(argv)
    text = schema_text()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        with atomic_writer(args.output) as out:
            out.write(text)
    except OSError as error:
        print(f"error: cannot write {args.output}: {error.strerror or error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
