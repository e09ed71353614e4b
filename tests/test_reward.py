"""The reward (metric_cards.reward): layers, combination and gates, each semantic check, the value
grammar, memos, the config, and the real corpus. The exploit and false-negative classes of issue 9
against honest cards are in test_reward_exploits.py."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
from atroposlib.envs.base import BaseEnvConfig

from metric_cards.adjustments import AdjustmentConfig
from metric_cards.catalog import METRICS, Request, make_request, parse_request
from metric_cards.extraction import extract_json
from metric_cards.reward import (
    CANARIES,
    DEFAULT_REWARD,
    LAYERS,
    RewardConfig,
    ScoreResult,
    combine_layers,
    formatting_layer,
    is_strict_json,
    score_completion,
    validity_layer,
)
from metric_cards.reward.checks import CHECKS, reading_fit
from metric_cards.reward.facts import MEMOS, BoundedMemo
from metric_cards.reward.quantity import read_quantity
from metric_cards.reward.weights import LAYER_WEIGHTS, SEMANTIC_WEIGHTS

CORPUS = Path(__file__).resolve().parent / "data" / "deephermes3_3b_metric_cards.jsonl"
CHURN = make_request("churn rate", "finance", "Q3 2023", 0)
REVENUE = make_request("revenue", "retail", "December", 1)


def card(request: Request = CHURN, **props: Any) -> dict[str, Any]:
    """A card that answers `request` perfectly; keyword arguments replace (or, as None, drop)
    single props."""
    perfect = {
        CHURN: {
            "title": "Churn Rate",
            "value": "4.2%",
            "description": "Share of finance customers lost in Q3 2023",
            "trend": {"value": -0.8, "isPositive": True},
            "icon": "user-minus",
        },
        REVENUE: {
            "title": "Revenue",
            "value": "$48,250",
            "description": "Retail takings booked across all stores in December",
            "trend": {"value": 6.4, "isPositive": True},
            "icon": "dollar-sign",
        },
    }[request]
    merged = {**perfect, **props}
    return {
        "componentType": "metricCard",
        "props": {k: v for k, v in merged.items() if v is not None},
    }


def score(value: Any, request: Request | None = CHURN, finish: str | None = "stop") -> ScoreResult:
    text = value if isinstance(value, str) else json.dumps(value, indent=2)
    return score_completion(text, request, finish)


def checks_of(request: Request = CHURN, **props: Any) -> dict[str, float]:
    return score(card(request, **props), request).checks


def problems_of(value: Any, request: Request | None = CHURN) -> str:
    return " | ".join(score(value, request).problems)


# --- the whole -----------------------------------------------------------------------------


@pytest.mark.parametrize("request_", [CHURN, REVENUE])
def test_a_perfect_card_scores_one(request_: Request) -> None:
    result = score(card(request_), request_)
    assert result.problems == []
    assert result.layers == dict.fromkeys(LAYERS, 1.0)
    assert result.checks == dict.fromkeys(CHECKS, 1.0)
    assert result.score == 1.0
    assert result.canaries == dict.fromkeys(CANARIES, False)


def test_result_shape() -> None:
    result = score(card(icon="renew"))
    assert tuple(result.layers) == LAYERS == ("validity", "schema", "semantic", "formatting")
    assert tuple(result.canaries) == CANARIES
    assert tuple(result.checks) == tuple(SEMANTIC_WEIGHTS) == tuple(CHECKS)
    assert 0.0 < result.score < 1.0
    assert all(isinstance(p, str) and p for p in result.problems)


def test_no_json_scores_zero() -> None:
    result = score("I cannot help with that.")
    assert result.score == 0.0 and result.layers == dict.fromkeys(LAYERS, 0.0)
    assert result.problems == ["no JSON object found"]


def test_score_is_the_documented_weighted_sum_with_its_gates() -> None:
    """score = (wV·V + wS·S + (wM·M + wF·F)·S) / W × (1 − off_topic·(1 − title)) × repair."""
    config = RewardConfig(
        weight_validity=1, weight_schema=2, weight_semantic=3, weight_formatting=4
    )
    cac = make_request("customer acquisition cost", "retail", "May", 0)
    text = "Here: " + json.dumps(card(CHURN, title="Acquisition Spend", icon="renew"))
    result = score_completion(text, cac, "stop", config)
    v, s, m, f = (result.layers[name] for name in LAYERS)
    title = result.checks["title"]
    assert 0.0 < title < 1.0 and m < 1.0 and f < 1.0  # every part is really in play
    base = (1 * v + 2 * s + (3 * m + 4 * f) * s) / 10
    assert result.score == pytest.approx(base * (1 - 0.6 * (1 - title)), abs=1e-6)
    assert combine_layers(result.layers, config, title=title) == result.score
    repaired = combine_layers(result.layers, config, title=title, repaired=True)
    assert repaired == pytest.approx(result.score * 0.6, abs=1e-6)
    # the semantic checks' weights are normalised by their sum
    weights = config.check_weights()
    assert sum(weights.values()) == pytest.approx(1.0)
    assert m == pytest.approx(sum(weights[n] * result.checks[n] for n in CHECKS), abs=1e-6)


def test_weights_matter_only_in_ratio() -> None:
    doubled = RewardConfig(
        **{field: 2 * getattr(DEFAULT_REWARD, field) for field in LAYER_WEIGHTS.values()},
        **{field: 2 * getattr(DEFAULT_REWARD, field) for field in SEMANTIC_WEIGHTS.values()},
    )
    for value in (card(icon="renew"), card(title="Bounce Rate"), card(value="40%")):
        text = json.dumps(value)
        assert score_completion(text, CHURN, "stop", doubled).score == score(text).score


def test_a_check_weight_changes_the_score_by_name() -> None:
    text = json.dumps(card(icon="renew"))  # icon check 0, every other check 1
    no_icon_weight = RewardConfig(weight_icon=0)
    assert score_completion(text, CHURN, "stop", no_icon_weight).score == 1.0
    assert score(text).score < 1.0


def test_scores_are_deterministic_and_independent_of_memos() -> None:
    samples = [card(), card(icon="dollar"), card(value="140%"), "prose " + json.dumps(card())]
    first = [score(s).score for s in samples]
    for memo in MEMOS:
        memo.clear()
    assert [score(s).score for s in samples] == first
    assert [score(s).score for s in samples] == first  # now served from the memos


def test_memos_are_bounded_by_characters_not_entries() -> None:
    calls: list[str] = []
    memo: BoundedMemo[str, int] = BoundedMemo(lambda key: calls.append(key) or len(key), 1000, 100)
    assert memo("x" * 5000) == 5000 and memo.chars == 0  # too long to keep
    for index in range(200):
        assert memo(f"{index:050d}") == 50
        assert memo.chars <= 1000
    assert len(memo.table) <= 1000 // 66
    before = len(calls)
    last = f"{199:050d}"
    assert memo(last) == 50 and len(calls) == before  # the newest is still kept
    huge_title = card(title="Churn " * 100_000)
    assert 0.0 <= score(huge_title).score < 1.0
    assert all(m.chars <= m.max_chars for m in MEMOS)


@pytest.mark.parametrize(
    "odd",
    [float("nan"), 1e308, -1e308, 10**400, "12%", None, [], {}, True],
    ids=lambda v: repr(v)[:12],
)
def test_odd_trend_values_stay_in_range(odd: Any) -> None:
    text = json.dumps(card(trend={"value": 1, "isPositive": True})).replace(
        '"value": 1,', f'"value": {json.dumps(odd) if not isinstance(odd, int) else odd},'
    )
    result = score(text)
    assert 0.0 <= result.score < 1.0
    assert all(0.0 <= result.layers[layer] <= 1.0 for layer in LAYERS)


def test_odd_values_elsewhere_stay_in_range() -> None:
    odd_props = [
        {"title": None}, {"title": ["Churn"]}, {"value": 4.2}, {"value": {"x": 1}},
        {"icon": {"name": "x"}}, {"description": 42}, {"trend": "up"}, {"title": "\ud800"},
        {"value": "9" * 5000}, {"description": "Q3 2023 " * 2000},
    ]  # fmt: skip
    for props in odd_props:
        result = score(card(**props))
        assert 0.0 <= result.score < 1.0, props
    assert 0.0 <= score({"componentType": "metricCard", "props": "x"}).score < 0.5


# --- validity and strict JSON ------------------------------------------------------------


def test_validity_by_extraction_method() -> None:
    text = json.dumps(card())
    cases = {
        "bare": text,
        "fenced": f"```json\n{text}\n```",
        "after_think": f"<think>churn: lower is better</think>\n{text}",
        "in_prose": f"Here you go:\n{text}",
        "repaired": text[:-2] + ",}}",
    }
    got = {}
    for method, completion in cases.items():
        extraction = extract_json(completion)
        assert extraction.method == method
        got[method] = validity_layer(extraction)[0]
    assert got["bare"] == got["fenced"] == 1.0
    assert 1.0 > got["after_think"] > got["in_prose"] > got["repaired"] > 0.0
    assert got["repaired"] == DEFAULT_REWARD.validity_repaired
    assert validity_layer(extract_json("[1, 2]"))[0] == 0.5


@pytest.mark.parametrize(
    "broken",
    [
        lambda t: t[:-2] + ",}}",  # trailing comma
        lambda t: t.replace("true", "True"),  # Python literal
        lambda t: t.replace("-0.8", "NaN"),  # NaN
        lambda t: "// the card\n" + t,  # a comment before it
        lambda t: t.replace('"componentType"', "componentType"),  # unquoted key
        lambda t: t[:-1],  # never closed
    ],
    ids=["comma", "python", "nan", "comment", "unquoted", "unclosed"],
)
def test_text_json_parse_rejects_stays_below_the_strict_card(broken: Any) -> None:
    strict = json.dumps(card())
    text = broken(strict)
    result = score(text)
    assert result.canaries["repaired_json"]
    assert result.score <= 0.65 * score(strict).score
    assert not is_strict_json(result.extraction) or text.startswith("//")


def test_valid_json_has_one_definition() -> None:
    assert is_strict_json(extract_json(json.dumps(card())))
    assert is_strict_json(extract_json("Here: " + json.dumps(card())))
    assert not is_strict_json(extract_json(json.dumps(card())[:-2] + ",}}"))
    assert not is_strict_json(extract_json("[1, 2]"))
    assert not is_strict_json(extract_json("no json"))


# --- schema ----------------------------------------------------------------------------------


@pytest.mark.parametrize("component", ["MetricCard", "metric_card", "metriccard", "card", ""])
def test_component_type_other_than_metric_card_fails_the_schema(component: str) -> None:
    result = score({**card(), "componentType": component})
    assert result.layers["schema"] == 0.0
    assert result.score <= DEFAULT_REWARD.weight_validity + 1e-9
    missing = score({"props": card()["props"]})
    assert missing.layers["schema"] == 0.0 and "no componentType" in missing.problems[0]


def test_wrong_types_and_extra_keys_cost_schema_points() -> None:
    wrong_types = score(card(title=42, trend={"value": "12%", "isPositive": "yes"}))
    assert 0.5 < wrong_types.layers["schema"] < 1.0
    text = " | ".join(wrong_types.problems)
    assert "props.title must be a string" in text
    assert "props.trend.value must be a number" in text
    extra = score({**card(), "version": 2, "props": {**card()["props"], "color": "red"}})
    assert extra.layers["schema"] < 1.0
    assert "unknown keys: version, props.color" in extra.problems
    assert score(card()).score > extra.score > wrong_types.score


def test_lone_surrogates_fail_the_schema() -> None:
    result = score(json.dumps(card(title="Churn Rate \ud800")))
    assert result.layers["schema"] < 1.0
    assert "props.title holds a lone surrogate" in result.problems


# --- formatting ----------------------------------------------------------------------------


def test_prose_costs_in_proportion() -> None:
    text = json.dumps(card())
    clean = score(text)
    short = score("Here is the card:\n" + text)
    long = score("Here is the card you asked for. " * 4 + "\n" + text + "\nAnything else?")
    assert clean.score > short.score > long.score
    assert short.canaries["prose_before_card"] and not clean.canaries["prose_before_card"]
    after = score(text + "\nHope this helps!")
    assert after.score < clean.score and not after.canaries["prose_before_card"]
    assert "characters of prose around the JSON" in problems_of("Here is the card:\n" + text)


def test_truncation_costs_whatever_finish_reason_says() -> None:
    text = json.dumps(card(), indent=2)
    said_length = score(text, finish="length")
    assert said_length.layers["formatting"] == 0.5
    unclosed = score(text[: text.rindex("}")], finish="stop")
    assert unclosed.extraction.truncated
    assert "the JSON object was never closed: the completion is cut off" in unclosed.problems
    assert unclosed.layers["formatting"] == 0.5
    assert score(text).score > said_length.score > unclosed.score > 0.0


def test_overlong_answers_cost() -> None:
    rambling = card(description="Finance customers lost in Q3 2023. " * 60)
    layer, problems = formatting_layer(extract_json(json.dumps(rambling)), "stop")
    assert 0.5 <= layer < 1.0
    assert any("characters long (over 1000)" in p for p in problems)
    assert formatting_layer(extract_json(json.dumps(card(description="x" * 2100))), "stop")[
        0
    ] == pytest.approx(0.5)
    assert formatting_layer(extract_json(json.dumps(card())), "stop") == (1.0, [])
    strict = RewardConfig(max_reasonable_chars=100, long_answer_penalty=0.2)
    assert formatting_layer(extract_json(json.dumps(card())), "stop", strict)[0] == 0.8


# --- title -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "title"),
    [
        (CHURN, "Churn Rate"), (CHURN, "churn-rate"), (CHURN, "Customer Churn"),
        (CHURN, "CHURN"), (CHURN, "Churn rate (%)"), (CHURN, "Attrition"),
        (CHURN, "Churn Rates"), (REVENUE, "MRR"), (REVENUE, "Total Revenue"),
        (REVENUE, "GMV"), (REVENUE, "Revenues"),
        (make_request("conversion rate", "retail", "May", 0), "Sales Conversion Rate"),
        (make_request("conversion rate", "retail", "May", 0), "CVR"),
        (make_request("sales growth", "retail", "May", 0), "Revenue Growth"),
        (make_request("operational costs", "energy", "May", 0), "Operating Cost"),
    ],
)  # fmt: skip
def test_title_names_the_metric_by_name_alias_or_plural(request_: Request, title: str) -> None:
    result = score(card(CHURN, title=title), request_)
    assert result.checks["title"] == 1.0, result.problems


def test_a_title_naming_another_metric_too_earns_nothing() -> None:
    both = score(card(title="Churn Rate & Retention Rate"))
    assert both.checks["title"] == 0.0 and both.canaries["several_metrics_in_title"]
    other = score(card(title="Bounce Rate"))
    assert other.checks["title"] == 0.0 and not other.canaries["several_metrics_in_title"]
    # and the off-topic gate takes most of the rest: the card answers another question
    assert other.score < 0.5 < score(card(title="Customer Loss")).score + 0.2


def test_title_padding_costs_per_word() -> None:
    plain = checks_of(title="Churn Rate")["title"]
    period = checks_of(title="Churn Rate (Q3 2023)")["title"]
    padded = checks_of(title="Churn Rate for all of our amazing loyal valued finance customers")
    assert plain == 1.0 and period == pytest.approx(0.8)
    assert period > padded["title"] >= 0.3
    assert checks_of(title="Finance Churn Rate")["title"] == 1.0  # the domain is not padding


def test_title_partial_credit_for_the_metric_s_own_words() -> None:
    """No catalog name or alias, but distinctive words of the asked metric: partial credit."""
    request = make_request("customer acquisition cost", "retail", "May", 0)
    partial = score(card(CHURN, title="Acquisition Spend"), request)
    assert 0.0 < partial.checks["title"] < 0.4
    assert "does not name customer acquisition cost" in " ".join(partial.problems)
    generic = score(card(CHURN, title="Customer Figures"), request)  # "customer" is generic
    assert generic.checks["title"] == 0.0
    assert partial.score > generic.score


# --- value grammar -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "number"),
    [
        ("$12,345", "money", 12345), ("$1.2M", "money", 1.2e6), ("€1.234,56", "money", 1234.56),
        ("1.2M USD", "money", 1.2e6), ("$184K per employee", "money", 184e3),
        ("$210,000 revenue per employee", "money", 210e3), ("4,8 %", "percent", 4.8),
        ("−3.5%", "percent", -3.5), ("~4.2%", "percent", 4.2), ("1,204 new users", "number", 1204),
        ("4m 32s", "duration", 272), ("2 business days", "duration", 172800),
        ("4'32\"", "duration", 272), ("1h 12m", "duration", 4320), ("3:45", "colon", 225),
        ("4.6/5", "fraction", 92), ("4.6 out of 5", "fraction", 92), ("5.2x", "ratio", 5.2),
        ("+42", "number", 42),
    ],
)  # fmt: skip
def test_the_value_grammar_reads_one_quantity(value: str, kind: str, number: float) -> None:
    quantity = read_quantity(value)
    assert quantity.kind == kind
    assert quantity.number == pytest.approx(number)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("$12% 4m 2x", "money and a percentage"), ("4.8% (up from 3.8%)", "more than one"),
        ("12 345", "more than one"), ("N/A", "no number"), ("1,23,456", "malformed"),
        ("about 5% or so!", "text around"), ("", "empty"), ("4" * 500, "too long"),
    ],
)  # fmt: skip
def test_the_value_grammar_rejects_what_is_not_one_quantity(value: str, problem: str) -> None:
    quantity = read_quantity(value)
    assert quantity.kind is None and problem in quantity.problem


def test_the_value_grammar_is_linear_on_hostile_text() -> None:
    import time

    for shape in ("9," * 20000, "1/" * 20000 + "x", "$" + "1 " * 20000, "4m " * 20000):
        started = time.perf_counter()
        assert read_quantity(shape).kind is None
        assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize(
    ("request_", "value", "value_score"),
    [
        (REVENUE, "$48,250", 1.0), (REVENUE, "$1250000", 0.85), (REVENUE, "48,250", 0.4),
        (REVENUE, "12%", 0.0), (CHURN, "4.2", 0.3), (CHURN, "$4.20", 0.0),
        (make_request("session duration", "media", "May", 0), "272", 0.2),
        (make_request("session duration", "media", "May", 0), "45%", 0.0),
        (make_request("net promoter score", "media", "May", 0), "$42", 0.0),
    ],
)  # fmt: skip
def test_value_check_pays_for_the_metric_s_unit_only(
    request_: Request, value: str, value_score: float
) -> None:
    result = score(card(CHURN, title=request_.metric.title(), value=value), request_)
    assert result.checks["value"] == pytest.approx(value_score)
    if value_score == 0.0:
        assert result.checks["magnitude"] == 0.0  # the wrong unit earns nothing anywhere
        assert result.canaries["wrong_unit"]


def test_the_example_value_earns_nothing() -> None:
    for value in ("$12,345", "$12.345", "12,345", "$12,345.00"):
        result = score(card(REVENUE, value=value), REVENUE)
        assert result.checks["value"] == result.checks["magnitude"] == 0.0, value
        assert result.canaries["example_copied"]


@pytest.mark.parametrize(
    ("metric", "value", "low", "high"),
    [
        ("uptime percentage", "99.95%", 1.0, 1.0), ("uptime percentage", "3.2%", 0.0, 0.0),
        ("uptime percentage", "90%", 0.3, 0.8), ("churn rate", "2.7%", 1.0, 1.0),
        ("churn rate", "35%", 0.05, 0.5), ("click-through rate", "45%", 0.0, 0.0),
        ("bounce rate", "41.3%", 1.0, 1.0), ("net promoter score", "-150", 0.0, 0.0),
        ("net promoter score", "+42", 1.0, 1.0), ("revenue", "$0.02", 0.0, 0.0),
        ("revenue", "$1.24M", 1.0, 1.0), ("session duration", "0s", 0.0, 0.0),
        ("active users", "1", 0.0, 0.0), ("customer satisfaction", "4.6/5", 1.0, 1.0),
        ("customer satisfaction", "4.6", 1.0, 1.0), ("customer satisfaction", "87%", 1.0, 1.0),
        ("delivery time", "2 business days", 1.0, 1.0),
        ("employee productivity", "$184K per employee", 1.0, 1.0),
    ],
)  # fmt: skip
def test_magnitude_is_realistic_for_the_metric(
    metric: str, value: str, low: float, high: float
) -> None:
    request = make_request(metric, "finance", "May", 0)
    got = score(card(CHURN, title=metric.title(), value=value), request).checks["magnitude"]
    assert low <= got <= high, (metric, value, got)


def test_every_metric_reading_has_a_sane_range() -> None:
    for metric in METRICS:
        assert metric.readings, metric.name
        for reading in metric.readings:
            assert reading.floor <= reading.low <= reading.high <= reading.ceiling, metric.name
        typical = read_quantity(metric.typical)
        unit, size, _ = reading_fit(typical, metric)
        assert unit == 1.0 and size == 1.0, (metric.name, metric.typical)


# --- trend -----------------------------------------------------------------------------------


def test_trend_sign_must_match_polarity() -> None:
    assert checks_of(trend={"value": -0.8, "isPositive": True})["trend"] == 1.0  # churn fell
    wrong = score(card(trend={"value": -0.8, "isPositive": False}))
    assert wrong.checks["trend"] == pytest.approx(0.4)
    assert "a fall in churn rate is good news" in " | ".join(wrong.problems)
    tickets = make_request("customer support tickets", "retail", "May", 0)
    for positive in (True, False):  # neutral: no sign check
        result = score(card(CHURN, title="Support Tickets", value="1,284",
                            trend={"value": 4.0, "isPositive": positive}), tickets)  # fmt: skip
        assert result.checks["trend"] == 1.0


def test_a_flat_or_absent_trend_is_partial_and_the_example_trend_nothing() -> None:
    flat = score(card(trend={"value": 0, "isPositive": True}))
    assert flat.checks["trend"] == pytest.approx(0.25) and flat.canaries["flat_trend"]
    assert checks_of(trend=None)["trend"] == pytest.approx(0.25)
    wrong_sign = checks_of(trend={"value": -0.8, "isPositive": False})["trend"]
    assert 0.25 < wrong_sign < 0.6  # a change in the wrong colour still says more than none
    example = score(card(REVENUE, trend={"value": 12.5, "isPositive": True}), REVENUE)
    assert example.checks["trend"] == 0.0 and example.canaries["example_copied"]


def test_trend_size_is_realistic_per_metric() -> None:
    downloads = make_request("app downloads", "retail", "May", 0)
    launch = score(card(CHURN, title="App Downloads", value="64,900",
                        trend={"value": 240, "isPositive": True}), downloads)  # fmt: skip
    assert launch.checks["trend"] == 1.0  # a real +240% change after a launch
    assert checks_of(trend={"value": -240, "isPositive": True})["trend"] < 1.0
    assert checks_of(trend={"value": -0.001, "isPositive": True})["trend"] < 0.65
    uptime = make_request("uptime percentage", "retail", "May", 0)
    small = score(card(CHURN, title="Uptime", value="99.97%",
                       trend={"value": 0.02, "isPositive": True}), uptime)  # fmt: skip
    assert small.checks["trend"] == 1.0


# --- icon ------------------------------------------------------------------------------------


def test_icon_credit_ladder() -> None:
    assert checks_of(icon="user-minus")["icon"] == 1.0  # a catalog icon for churn
    assert checks_of(icon="UserMinus")["icon"] == pytest.approx(0.9)  # a spelling variant
    assert checks_of(icon="star")["icon"] == pytest.approx(0.3)  # Lucide, does not fit
    assert checks_of(icon="renew")["icon"] == 0.0  # not an icon
    assert checks_of(icon=None)["icon"] == pytest.approx(0.3)
    revenue_alias = score(card(REVENUE, icon="money-bill"), REVENUE).checks["icon"]
    assert 0.3 < revenue_alias < 1.0  # another set's name for a fitting icon
    example = score(card(REVENUE, icon="dollar"), REVENUE)
    assert example.checks["icon"] == 0.0 and example.canaries["example_copied"]


# --- description -----------------------------------------------------------------------------


def test_description_credit_for_period_domain_and_own_words() -> None:
    assert checks_of(description="Share of finance customers lost in Q3 2023")["description"] == 1.0
    no_domain = checks_of(description="Share of customers lost in Q3 2023")["description"]
    no_period = checks_of(description="Share of finance customers lost")["description"]
    restated = checks_of(description="Finance churn rate, Q3 2023")["description"]
    assert 1.0 > no_domain > restated and 1.0 > no_period > restated > 0.0
    assert checks_of(description=None)["description"] == pytest.approx(0.3)


def test_the_prompt_pasted_as_description_earns_nothing() -> None:
    pasted = score(card(description=CHURN.prompt))
    assert pasted.checks["description"] == 0.0 and pasted.canaries["prompt_copied"]
    prefixed = score(card(description="As requested: " + CHURN.prompt))
    assert prefixed.checks["description"] < 0.2 and prefixed.canaries["prompt_copied"]


@pytest.mark.parametrize(
    "description",
    [
        "Share of finance customers lost in Q2 2023",
        "Share of finance customers lost in August",
        "Share of finance customers lost this month",
        "Share of healthcare customers lost in Q3 2023",
        "Finance and insurance customers lost in Q3 2023",
        "Customers lost across finance, retail and media in Q3 2023",
    ],
)
def test_naming_another_period_or_domain_is_a_contradiction(description: str) -> None:
    result = score(card(description=description))
    assert result.checks["description"] == 0.0
    assert "the card names" in " | ".join(result.problems)


@pytest.mark.parametrize(
    "description",
    [
        "Share of finance customers lost in Q3 2023, down from 3.8% in August",
        "Finance accounts closed in Q3 2023 vs Q2 2023",
        "Finance customers lost in Q3 2023 compared to the same period in 2022",
    ],
)
def test_a_comparison_baseline_is_not_a_contradiction(description: str) -> None:
    assert checks_of(description=description)["description"] > 0.6


def test_months_lower_case_and_may_the_verb() -> None:
    request = make_request("revenue", "retail", "July", 0)
    lower = score(card(REVENUE, description="Retail takings booked across stores in july"), request)
    assert lower.checks["description"] == 1.0
    may = make_request("revenue", "retail", "March", 0)
    verb = score(card(REVENUE, description="Retail takings may vary; booked in March"), may)
    assert verb.checks["description"] == 1.0  # "may" the verb is not the month


def test_overlapping_domains_do_not_contradict() -> None:
    marketing = make_request("engagement rate", "marketing", "May", 0)
    social = score(
        card(CHURN, title="Engagement Rate", value="6.8%", icon="heart",
             description="Likes per post on our social media campaigns in May",
             trend={"value": 1.1, "isPositive": True}),
        marketing,
    )  # fmt: skip
    assert social.checks["description"] == 1.0, social.problems


def test_another_metric_named_in_the_description_costs() -> None:
    nps = make_request("net promoter score", "retail", "May", 0)
    props = {"title": "NPS", "value": "+42", "icon": "thumbs-up",
             "trend": {"value": 2.0, "isPositive": True}}  # fmt: skip
    own = score(card(CHURN, description="Promoters minus detractors in retail, May", **props), nps)
    other = score(card(CHURN, description="Customer satisfaction of retail buyers in May", **props),
                  nps)  # fmt: skip
    assert own.checks["description"] == 1.0
    assert other.checks["description"] == pytest.approx(0.5)


def test_the_example_description_earns_nothing() -> None:
    this_month = make_request("churn rate", "finance", "this month", 0)
    result = score(card(description="Total churn rate this month"), this_month)
    assert result.checks["description"] == 0.0 and result.canaries["example_copied"]


# --- no catalog request --------------------------------------------------------------------


def test_without_a_request_only_generic_checks_run() -> None:
    result = score(card(), None)
    assert result.score == 1.0 and result.checks == {}
    vague = score(card(value="lots", icon="renew"), None)
    assert 0.0 < vague.score < 1.0 and vague.layers["semantic"] < 1.0


def test_parse_request_round_trip_drives_the_checks() -> None:
    request = parse_request(CHURN.prompt)
    assert request == CHURN
    assert score(card(), request).score == 1.0


# --- the real corpus ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_results() -> list[tuple[dict, ScoreResult]]:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    return [
        (row, score_completion(row["completion"], parse_request(row["prompt"]), "stop"))
        for row in rows
    ]


def test_corpus_scores_spread(corpus_results: list) -> None:
    """Issue 9's bar: the real 3B corpus spreads (std >= 0.08, >= 20 distinct scores)."""
    scores = [result.score for _, result in corpus_results]
    assert len(scores) == 240
    assert statistics.pstdev(scores) >= 0.08
    assert len(set(scores)) >= 20
    assert max(scores) == 1.0 and min(scores) < 0.7


def test_corpus_quirks_are_named(corpus_results: list) -> None:
    everything = " || ".join(" | ".join(r.problems) for _, r in corpus_results)
    assert "icon 'renew' is not a Lucide icon" in everything
    assert "icon 'trend-up' is 'trending-up' in Lucide" in everything
    assert "a fall in churn rate is good news" in everything
    assert "the instructions' example" in everything


def test_corpus_fixing_the_trend_sign_never_lowers_a_score(corpus_results: list) -> None:
    fixed = 0
    for row, result in corpus_results:
        request = parse_request(row["prompt"])
        card_ = json.loads(row["completion"])
        trend = card_["props"].get("trend")
        polarity = request.metric_info.polarity.value
        if not isinstance(trend, dict) or polarity == "neutral" or not trend.get("value"):
            continue
        trend["isPositive"] = (trend["value"] > 0) == (polarity == "higher")
        rescored = score_completion(json.dumps(card_), request, "stop")
        assert rescored.score >= result.score
        fixed += rescored.score > result.score
    assert fixed >= 5


def test_corpus_information_removing_edits_never_raise_a_score(corpus_results: list) -> None:
    """Issue 9: trend set to 0 or the prompt pasted as description raised 179 of 240 scores."""
    for row, result in corpus_results:
        request = parse_request(row["prompt"])
        for edit in ({"trend": {"value": 0, "isPositive": True}}, {"description": row["prompt"]}):
            card_ = json.loads(row["completion"])
            card_["props"].update(edit)
            assert score_completion(json.dumps(card_), request, "stop").score <= result.score + 1e-9


# --- config ----------------------------------------------------------------------------------


def test_reward_config_is_flat_documented_and_collision_free() -> None:
    fields = RewardConfig.model_fields
    assert set(LAYER_WEIGHTS.values()) | set(SEMANTIC_WEIGHTS.values()) <= set(fields)
    for name, field in fields.items():
        assert field.annotation in (float, int, bool), name
        assert field.description, name
    taken = set(BaseEnvConfig.model_fields) | set(AdjustmentConfig.model_fields)
    assert not set(fields) & taken
    assert RewardConfig().model_dump() == DEFAULT_REWARD.model_dump()


def test_reward_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RewardConfig(weight_validity=0, weight_schema=0, weight_semantic=0, weight_formatting=0)
    with pytest.raises(ValueError, match="at least one"):
        RewardConfig(**dict.fromkeys(SEMANTIC_WEIGHTS.values(), 0.0))
    for bad in ({"weight_semantic": -1}, {"truncation_penalty": 2}, {"weight_icon": math.inf},
                {"weight_title": 1e308}, {"off_topic_cost": float("nan")}):  # fmt: skip
        with pytest.raises(ValueError):
            RewardConfig(**bad)


def test_config_penalties_take_effect() -> None:
    text = "Here is your card:\n" + json.dumps(card())
    lenient = RewardConfig(prose_penalty=0.0, validity_in_prose=1.0)
    assert score_completion(text, CHURN, "stop", lenient).score == 1.0
    harsh = RewardConfig(prose_penalty=1.0, prose_chars_full_penalty=10)
    assert score_completion(text, CHURN, "stop", harsh).layers["formatting"] == 0.0
    off_topic = json.dumps(card(title="Bounce Rate"))
    no_gate = RewardConfig(off_topic_cost=0.0)
    assert score_completion(off_topic, CHURN, "stop", no_gate).score > score(off_topic).score


def test_every_metric_has_a_perfect_answer() -> None:
    """No metric is impossible to satisfy: its catalog typical value, name and first icon."""
    for metric in METRICS:
        request = make_request(metric.name, "finance", "Q3 2023", 0)
        change = 3.5 if metric.polarity.value != "lower" else -3.5
        result = score(
            {"componentType": "metricCard", "props": {
                "title": metric.name.title(), "value": metric.typical,
                "description": "Measured across all finance accounts in Q3 2023",
                "icon": metric.icons[0], "trend": {"value": change, "isPositive": True}}},
            request,
        )  # fmt: skip
        assert result.problems == [] and result.score == 1.0, (metric.name, result.problems)


# --- canaries in the run statistics (wandb train/canary_<name>, the process summary) ---------


def test_run_stats_report_canary_rates_and_valid_json() -> None:
    from metric_cards.groups import ScoredRollout
    from metric_cards.run_stats import RolloutStats

    def rollout(text: str) -> ScoredRollout:
        result = score(text)
        return ScoredRollout(
            messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": text}],
            tokens=[1], masks=[1], result=result, score=result.score, finish_reason="stop",
            completion_tokens=1, adjustments={},
        )  # fmt: skip

    stats = RolloutStats()
    good = json.dumps(card())
    flat = json.dumps(card(trend={"value": 0, "isPositive": True}))
    stats.add_group([rollout(good), rollout(flat), rollout(good[:-2] + ",}}"), rollout("no")])
    metrics = stats.metrics("train")
    assert metrics["train/canary_flat_trend"] == 0.25
    assert metrics["train/canary_repaired_json"] == 0.25
    assert metrics["train/canary_example_copied"] == 0.0
    assert {f"train/canary_{name}" for name in CANARIES} <= set(metrics)
    assert metrics["train/percent_valid_json"] == 50.0  # the repaired one and "no" are not
    assert rollout(flat).record()["canaries"] == ["flat_trend"]
