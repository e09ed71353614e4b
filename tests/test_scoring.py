"""The reward: each layer on good and bad cards, their combination, and the real corpus."""

from __future__ import annotations

import json
import random
import statistics
from typing import Any

import pytest
from atroposlib.envs.base import BaseEnvConfig

from metric_cards import scoring
from metric_cards.adjustments import AdjustmentConfig
from metric_cards.catalog import METRICS, Request, make_request, parse_request
from metric_cards.extraction import extract_json
from metric_cards.scoring import (
    DEFAULT_REWARD,
    LAYERS,
    RewardConfig,
    ScoreResult,
    combine_layers,
    formatting_layer,
    score_completion,
    semantic_layer,
    validity_layer,
)

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
            "description": "Retail revenue in December",
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


def problems_of(value: Any, request: Request | None = CHURN) -> str:
    return " | ".join(score(value, request).problems)


# --- the whole -----------------------------------------------------------------------------


@pytest.mark.parametrize("request_", [CHURN, REVENUE])
def test_a_perfect_card_scores_one(request_: Request) -> None:
    result = score(card(request_), request_)
    assert result.problems == []
    assert result.layers == {"validity": 1.0, "schema": 1.0, "semantic": 1.0, "formatting": 1.0}
    assert result.score == 1.0


def test_result_shape() -> None:
    result = score(card())
    assert tuple(result.layers) == LAYERS == ("validity", "schema", "semantic", "formatting")
    assert result.extraction.method == "bare"
    with pytest.raises(AttributeError):
        result.score = 0.5  # type: ignore[misc]


def test_a_card_about_another_metric_loses_half_its_semantics() -> None:
    off_topic = score(card(title="Bounce Rate"))
    semantic = (0.25 * 0 + 0.20 + 0.15 + 0.15 + 0.10 + 0.15) * scoring.OFF_TOPIC_FACTOR
    assert off_topic.layers["semantic"] == pytest.approx(semantic)
    assert off_topic.score < 0.7 < score(card(trend={"value": -0.8, "isPositive": False})).score
    vague = score(card(title="Customer Numbers"))  # names nothing: only the title item is lost
    assert vague.score > off_topic.score


def test_perfect_beats_bad_icon_beats_wrong_title() -> None:
    perfect = score(card()).score
    bad_icon = score(card(icon="renew")).score
    wrong_title = score(card(icon="renew", title="Bounce Rate")).score
    assert perfect > bad_icon > wrong_title
    assert "icon 'renew' is not a Lucide icon" in problems_of(card(icon="renew"))
    assert "names bounce rate, not churn rate" in problems_of(card(title="Bounce Rate"))


def test_no_json_scores_zero() -> None:
    result = score("Sorry, I can't create that card.")
    assert result.score == 0.0
    assert result.layers == dict.fromkeys(LAYERS, 0.0)
    assert result.problems == ["no JSON object found"]


def test_score_is_the_documented_weighted_sum() -> None:
    config = RewardConfig(
        weight_validity=1, weight_schema=2, weight_semantic=3, weight_formatting=4
    )
    result = score_completion("Here: " + json.dumps(card(icon="renew")), CHURN, "stop", config)
    layers = result.layers
    expected = (
        1 * layers["validity"]
        + 2 * layers["schema"]
        + 3 * layers["semantic"]
        + 4 * layers["formatting"] * layers["schema"]
    ) / 10
    assert result.score == pytest.approx(expected, abs=1e-6)
    assert combine_layers(layers, config) == result.score


def test_formatting_earns_nothing_for_json_that_is_not_a_card() -> None:
    result = score({"foo": 1})
    assert result.layers["formatting"] == 1.0 and result.layers["schema"] < 0.2
    assert result.score < 0.2
    assert result.score < score(card(title="Bounce Rate", icon="renew")).score


def test_scores_are_deterministic_and_independent_of_memos() -> None:
    samples = [card(), card(icon="dollar"), card(value="140%"), "prose " + json.dumps(card())]
    first = [score(s) for s in samples]
    for memo in (scoring._title_verdict, scoring._value_verdict, scoring._icon_verdict):
        memo.cache_clear()
    assert [score(s) for s in samples] == first


@pytest.mark.parametrize(
    "odd",
    [
        {"value": 10**400, "isPositive": True},
        {"value": -(10**400), "isPositive": False},
        {"value": float("nan"), "isPositive": True},
        {"value": float("inf"), "isPositive": True},
        {"value": None, "isPositive": None},
        {"value": [1], "isPositive": {}},
        "up",
        [],
    ],
)
def test_odd_trend_values_do_not_break_scoring(odd: Any) -> None:
    for request in (CHURN, None):
        text = json.dumps(card(trend=odd))  # json.dumps writes NaN/Infinity, json.loads reads them
        result = score_completion(text, request, "stop")
        assert 0.0 <= result.score < 1.0
    assert score(card(trend=odd)).layers["semantic"] < score(card()).layers["semantic"]


def test_odd_values_elsewhere_do_not_break_scoring() -> None:
    for props in (
        {"value": "9" * 400 + "%"},
        {"value": 10**400},
        {"title": ["Churn"]},
        {"icon": {"name": "x"}},
        {"description": 5},
        {"value": "∞%"},
        {"title": "\u0000\ud800"},
    ):
        result = score(card(**props))
        assert 0.0 <= result.score < 1.0, props


def test_fuzzed_inputs_stay_in_range() -> None:
    rng = random.Random(1234)
    text = json.dumps(card(), indent=2)
    alphabet = "abc{}[]\":,'\n 0123456789.-truefalsenull<think>/```"
    samples = [text[: rng.randrange(len(text))] for _ in range(150)]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(80))) for _ in range(150)]
    for sample in samples:
        for request in (CHURN, None):
            result = score_completion(sample, request, rng.choice(["stop", "length", None]))
            assert 0.0 <= result.score <= 1.0
            assert all(0.0 <= result.layers[layer] <= 1.0 for layer in LAYERS)


# --- validity ------------------------------------------------------------------------------


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
    assert validity_layer(extract_json("[1, 2]"))[0] == 0.5


# --- formatting ----------------------------------------------------------------------------


def test_prose_costs_in_proportion() -> None:
    text = json.dumps(card())
    clean = score(text).score
    short = score("Here is the card:\n" + text).score
    long = score("Here is the card you asked for. " * 4 + "\n" + text + "\nAnything else?").score
    assert clean > short > long
    assert "characters of prose around the JSON" in problems_of("Here is the card:\n" + text)


def test_truncation_costs() -> None:
    text = json.dumps(card(), indent=2)
    complete = score(text).score
    said_length = score(text, finish="length")
    assert said_length.layers["formatting"] == 0.5
    assert "cut off" in " ".join(said_length.problems)
    cut = score(text[: text.index('"trend"')], finish="length")
    assert cut.extraction.repaired
    assert complete > said_length.score > cut.score > 0.3
    cut_unknown_reason = score(text[: text.index('"trend"')], finish=None)
    assert "the JSON is cut off" in cut_unknown_reason.problems


def test_overlong_answers_cost() -> None:
    rambling = card(description="Finance customers lost in Q3 2023. " * 60)  # ~2,100 chars
    layer, problems = formatting_layer(extract_json(json.dumps(rambling)), "stop")
    assert 0.5 <= layer < 1.0
    assert any("characters long (over 1000)" in p for p in problems)
    double = card(description="x" * 2100)
    assert formatting_layer(extract_json(json.dumps(double)), "stop")[0] == 0.5  # capped
    normal = formatting_layer(extract_json(json.dumps(card())), "stop")
    assert normal == (1.0, [])
    strict = RewardConfig(max_reasonable_chars=100, long_answer_penalty=0.2)
    assert formatting_layer(extract_json(json.dumps(card())), "stop", strict)[0] == 0.8


# --- schema (per-field credit; agreement with the models is in test_schema.py) ------------


def test_wrong_types_and_extra_keys_cost_schema_points() -> None:
    wrong_types = score(card(title=42, trend={"value": "12%", "isPositive": "yes"}))
    assert 0.5 < wrong_types.layers["schema"] < 1.0
    text = " | ".join(wrong_types.problems)
    assert "props.title must be a string" in text
    assert "props.trend.value must be a number" in text
    assert "props.trend.isPositive is not a boolean" in text
    extra = score({**card(), "version": 2, "props": {**card()["props"], "color": "red"}})
    assert extra.layers["schema"] < 1.0
    assert "unknown keys: version, props.color" in extra.problems
    assert score(card()).score > extra.score > wrong_types.score


# --- semantic: title -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "title", ["Churn Rate", "churn-rate", "Customer Churn", "CHURN", "Churn rate (%)"]
)
def test_title_names_the_metric_or_an_alias(title: str) -> None:
    assert "title" not in problems_of(card(title=title))


def test_title_repeating_the_period_costs_a_little() -> None:
    repeated = score(card(title="Churn Rate (Q3 2023)"))
    assert "the title repeats the time period" in " ".join(repeated.problems)
    assert score(card()).score > repeated.score > score(card(title="Customer Loss")).score


def test_title_partial_credit() -> None:
    partial = score(card(title="Customer Churn Numbers"), REVENUE)
    related = score(card(REVENUE, title="Revenue Generated"), REVENUE)
    unrelated = score(card(REVENUE, title="Monthly Figures"), REVENUE)
    assert related.score > unrelated.score
    assert partial.score <= unrelated.score + 0.05


# --- semantic: value format ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "good", "bad", "problem"),
    [
        ("revenue", "$12,345", "12345", "has no currency symbol"),
        ("revenue", "€1.2M", "12%", "is a percentage"),
        ("revenue", "$1,250,000", "$1250000", "lacks thousands separators"),
        ("conversion rate", "4.8%", "4.8", "lacks a % sign"),
        ("page views", "1,234,567", "1234567", "lacks thousands separators"),
        ("page views", "1.2M", "$1.2M", "is money"),
        ("session duration", "4m 32s", "272", "has no time unit"),
        ("session duration", "3:45", "45%", "is not a duration"),
        ("delivery time", "2.5 days", "2.5", "has no time unit"),
        ("customer satisfaction", "4.6/5", "$4.6", "is money"),
        ("inventory turnover", "5.2x", "52%", "is not written as a ratio"),
        ("inventory turnover", "4.2 turns", "$4.2", "is not written as a ratio"),
        ("revenue", "$48,250", "N/A", "has no number"),
    ],
)
def test_value_format_fits_the_unit(metric: str, good: str, bad: str, problem: str) -> None:
    request = make_request(metric, "retail", "December", 0)
    good_problems = score(card(REVENUE, title=metric.title(), value=good), request).problems
    bad_result = score(card(REVENUE, title=metric.title(), value=bad), request)
    assert not any("value" in p and "trend" not in p for p in good_problems), good_problems
    assert any(problem in p for p in bad_result.problems), bad_result.problems
    good_score = score(card(REVENUE, title=metric.title(), value=good), request).score
    assert good_score > bad_result.score


def test_score_values_accept_several_forms() -> None:
    csat = make_request("customer satisfaction", "retail", "December", 0)
    nps = make_request("net promoter score", "retail", "December", 0)
    for value in ("4.6/5", "87%", "4.8 out of 5", "92"):
        assert "value" not in problems_of(card(REVENUE, title="CSAT", value=value), csat)
    assert "value" not in problems_of(card(REVENUE, title="NPS", value="-12"), nps)


# --- semantic: plausibility ----------------------------------------------------------------


def test_rates_above_100_percent_are_implausible() -> None:
    impossible = score(card(value="140%"))
    assert "outside the plausible range 0 to 100" in " ".join(impossible.problems)
    # the value item and half the plausibility item are lost: 0.55 * (0.20 + 0.075)
    assert score(card(value="40%")).score - impossible.score == pytest.approx(0.15125)


def test_nps_out_of_bounds() -> None:
    nps = make_request("net promoter score", "finance", "Q3 2023", 0)
    good = score(card(title="Net Promoter Score", value="45", icon="thumbs-up"), nps)
    bad = score(card(title="Net Promoter Score", value="250", icon="thumbs-up"), nps)
    assert good.score > bad.score
    assert "value '250' is outside the plausible range -100 to 100" in bad.problems


def test_a_score_above_its_own_scale() -> None:
    csat = make_request("customer satisfaction", "finance", "Q3 2023", 0)
    over = score(card(title="CSAT", value="6/5", icon="smile"), csat)
    assert "value '6/5' is outside its own scale" in over.problems


def test_negative_amounts_are_implausible() -> None:
    assert "is negative" in problems_of(card(REVENUE, value="-$4,000"), REVENUE)


def test_trend_magnitude_has_partial_credit() -> None:
    def with_trend(change: float) -> float:
        return score(card(trend={"value": change, "isPositive": change < 0})).score

    assert with_trend(-0.8) == with_trend(-99) > with_trend(-150) > with_trend(-250)
    assert with_trend(-250) > with_trend(-400) == with_trend(-1000)
    assert "trend.value -150 is not a plausible percentage change" in problems_of(
        card(trend={"value": -150, "isPositive": True})
    )


# --- semantic: trend sign ------------------------------------------------------------------


def test_trend_sign_must_match_polarity() -> None:
    lower_is_better_wrong = score(card(trend={"value": -0.8, "isPositive": False}))
    assert score(card()).score > lower_is_better_wrong.score
    assert (
        "trend -0.8 with isPositive false: a fall in churn rate is good news, "
        "so isPositive should be true"
    ) in lower_is_better_wrong.problems
    up_bad = score(card(REVENUE, trend={"value": 6.4, "isPositive": False}), REVENUE)
    assert "a rise in revenue is good news" in " ".join(up_bad.problems)
    down_right = score(card(REVENUE, trend={"value": -6.4, "isPositive": False}), REVENUE)
    assert "isPositive should be" not in " ".join(down_right.problems)


def test_neutral_metrics_have_no_sign_check() -> None:
    tickets = make_request("customer support tickets", "finance", "Q3 2023", 0)
    for positive in (True, False):
        result = score(
            card(title="Support Tickets", value="1,204", icon="ticket",
                 trend={"value": 5.0, "isPositive": positive}),
            tickets,
        )  # fmt: skip
        assert "isPositive should be" not in " ".join(result.problems)


def test_missing_trend_is_half_credit() -> None:
    missing = score(card(trend=None))
    assert "no trend" in missing.problems
    assert (
        score(card()).score
        > missing.score
        > score(card(trend={"value": -0.8, "isPositive": False})).score
    )


# --- semantic: icon ------------------------------------------------------------------------


def test_icon_credit_ladder() -> None:
    fits = score(card(icon="user-minus")).score
    fits_as_alias = score(card(icon="user-times")).score  # Font Awesome name for user-x
    other_lucide = score(card(icon="clock")).score
    unknown = score(card(icon="renew")).score
    assert fits > fits_as_alias > other_lucide > unknown
    assert "icon 'clock' does not fit churn rate (e.g. 'user-minus')" in problems_of(
        card(icon="clock")
    )
    assert "icon 'dollar' is spelled 'dollar-sign' in Lucide" in problems_of(
        card(REVENUE, icon="dollar"), REVENUE
    )


# --- semantic: period and domain ----------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "description", "mentioned"),
    [
        ("Q3 2023", "Customers lost in Q2 2023", "'Q2 2023'"),
        ("Q3 2023", "Customers lost in Q3 2022", "'Q3 2022'"),
        ("Q3 2023", "Customers lost in the first quarter", "'FIRST QUARTER'"),
        ("Q3 2023", "Customers lost in December", "'December'"),
        ("Q3 2023", "Customers lost during 2021", "'2021'"),
        ("December", "Customers lost in November", "'November'"),
        ("December", "Customers lost in Q2", "'Q2'"),
        ("last 7 days", "Customers lost this month", "'this month'"),
        ("this month", "Customers lost last month", "'last month'"),
        ("last 24 hours", "Customers lost over the past week", "'past week'"),
    ],
)
def test_description_naming_another_period_is_a_contradiction(
    period: str, description: str, mentioned: str
) -> None:
    request = make_request("churn rate", "finance", period, 0)
    result = score(card(description=f"{description} (finance)"), request)
    assert f"the card mentions {mentioned}, but the request is for {period}" in result.problems
    consistent = score(card(description=f"Finance customers lost, {period}"), request)
    assert consistent.score > result.score


@pytest.mark.parametrize(
    ("period", "description"),
    [
        ("Q3 2023", "Finance churn for the third quarter of 2023"),
        ("Q3 2023", "Finance churn in August"),  # a month inside the quarter: no contradiction
        ("December", "Finance churn in Q4 (December)"),
        ("last 7 days", "Finance churn over the past week"),
        ("last 24 hours", "Finance churn today"),
        ("year-to-date", "Finance churn YTD"),
        ("this year", "Finance churn for 2023"),  # a model cannot know which year "this" is
        ("last 30 days", "Finance churn over the past 30 days"),
    ],
)
def test_period_mentions_in_other_words(period: str, description: str) -> None:
    request = make_request("churn rate", "finance", period, 0)
    result = score(card(description=description), request)
    assert not [p for p in result.problems if "mentions" in p], result.problems  # no contradiction
    named = not any("does not mention the period" in p for p in result.problems)
    assert named == ("August" not in description)  # a month is narrower than its quarter


@pytest.mark.parametrize(
    ("period", "description"),
    [
        ("this month", "Finance churn this month, up 0.4 points vs last month"),
        ("Q3 2023", "Finance churn in Q3 2023, down from Q2 2023"),
        ("December", "Finance churn in December (down 2% from November)"),
        ("December", "Finance churn in December, lower than in November"),
        ("this year", "Finance churn this year compared to the same period last year"),
    ],
)
def test_a_comparison_baseline_is_not_a_contradiction(period: str, description: str) -> None:
    request = make_request("churn rate", "finance", period, 0)
    assert score(card(description=description), request).problems == []


def test_calendar_names_confirm_this_month_quarter_and_year() -> None:
    for period, description in [
        ("this month", "Finance churn in November"),
        ("this quarter", "Finance churn in Q3 2023"),
        ("this year", "Finance churn during 2023"),
    ]:
        request = make_request("churn rate", "finance", period, 0)
        assert score(card(description=description), request).problems == [], period
    last_week = make_request("churn rate", "finance", "last 7 days", 0)
    unconfirmed = score(card(description="Finance churn in November"), last_week)
    assert unconfirmed.problems == ["the card does not mention the period (last 7 days)"]


def test_may_the_verb_is_not_may_the_month() -> None:
    request = make_request("churn rate", "finance", "December", 0)
    verb = score(card(description="Finance churn may rise in December"), request)
    assert verb.problems == []
    month = score(card(description="Finance churn in May"), request)
    assert "the card mentions 'May', but the request is for December" in month.problems


def test_domain_mentions_and_contradictions() -> None:
    wrong_domain = score(card(description="Healthcare churn in Q3 2023"))
    assert "the card mentions 'healthcare', but the request is for finance" in wrong_domain.problems
    no_domain = score(card(description="Customers lost in Q3 2023"))
    assert "the card does not mention the domain (finance)" in no_domain.problems
    no_period = score(card(description="Finance customers lost"))
    assert "the card does not mention the period (Q3 2023)" in no_period.problems
    banking = score(card(description="Banking customers lost in Q3 2023"))  # a finance word
    assert banking.problems == []
    ordered = [score(card()), no_domain, no_period, wrong_domain]
    assert [r.score for r in ordered] == sorted((r.score for r in ordered), reverse=True)
    assert no_domain.score > no_period.score > wrong_domain.score


def test_overlapping_domains_do_not_contradict() -> None:
    social = make_request("engagement rate", "social media", "December", 0)
    result = score(
        card(title="Engagement Rate", value="4.8%", icon="heart",
             trend={"value": 0.5, "isPositive": True},
             description="Engagement across our media channels in December"),
        social,
    )  # fmt: skip
    assert not any("mentions" in p for p in result.problems), result.problems


# --- requests outside the catalog ---------------------------------------------------------


def test_without_a_request_only_generic_checks_run() -> None:
    perfect = score(card(), None)
    assert perfect.score == 1.0 and perfect.problems == []
    odd_metric = score(card(title="Bounce Rate", value="140%"), None)
    assert odd_metric.score == 1.0  # nothing to compare the title or bounds against
    unknown_icon = score(card(icon="renew"), None)
    assert "icon 'renew' is not a Lucide icon" in unknown_icon.problems
    assert score(card(), None).score > unknown_icon.score
    assert score(card(value="N/A"), None).score < 1.0
    semantic, _ = semantic_layer(card(trend={"value": 900, "isPositive": True}), None)
    assert semantic < 1.0
    unknown_metric = Request("happiness index", "finance", "Q3 2023", 0, "")
    assert score(card(), unknown_metric).score == 1.0


def test_parse_request_round_trip_drives_the_checks() -> None:
    request = parse_request("Create a metric card for bounce rate in media for September.")
    assert request is not None
    good = card(REVENUE, title="Bounce Rate", value="45.3%", icon="log-out",
                trend={"value": -2.1, "isPositive": True},
                description="Media bounce rate for September")  # fmt: skip
    assert score(good, request).problems == []


# --- the real corpus -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_results(corpus_rows: list[dict]) -> list[tuple[dict, ScoreResult]]:
    return [
        (row, score_completion(row["completion"], parse_request(row["prompt"]), "stop"))
        for row in corpus_rows
    ]


def test_corpus_scores_spread_through_semantics(corpus_results: list) -> None:
    scores = [result.score for _, result in corpus_results]
    assert len(corpus_results) == 240
    assert all(parse_request(row["prompt"]) is not None for row, _ in corpus_results)
    for _, result in corpus_results:  # all valid JSON with the required fields...
        assert result.layers["validity"] == result.layers["schema"] == 1.0
        assert result.layers["formatting"] == 1.0
    # ...so everything that tells them apart is semantic
    assert len(set(scores)) >= 25
    assert statistics.pstdev(scores) > 0.02
    assert min(scores) < 0.88 and max(scores) == 1.0
    assert 0.9 < statistics.mean(scores) < 0.99


def test_corpus_quirks_are_named(corpus_results: list) -> None:
    problems = [" | ".join(result.problems) for _, result in corpus_results]
    everything = " || ".join(problems)
    assert "icon 'renew' is not a Lucide icon" in everything
    assert "icon 'trend-up' is spelled 'trending-up' in Lucide" in everything
    assert "the title repeats the time period" in everything
    assert "a fall in churn rate is good news, so isPositive should be true" in everything
    # the cards the README cites as quirky score below the best ones
    renew = next(r for row, r in corpus_results if '"renew"' in row["completion"])
    assert renew.score < 1.0


def test_corpus_contradicting_trend_sign_ranks_below_the_agreeing_one(
    corpus_results: list,
) -> None:
    churn = [(row, r) for row, r in corpus_results if parse_request(row["prompt"]).metric
             == "churn rate"]  # fmt: skip
    assert churn
    for row, result in churn:
        flipped = json.loads(row["completion"])
        flipped["props"]["trend"]["isPositive"] = flipped["props"]["trend"]["value"] < 0
        rescored = score_completion(json.dumps(flipped), parse_request(row["prompt"]), "stop")
        assert rescored.score >= result.score
        assert not any("isPositive should be" in p for p in rescored.problems)


# --- config --------------------------------------------------------------------------------


def test_reward_config_is_flat_documented_and_collision_free() -> None:
    fields = RewardConfig.model_fields
    assert {"weight_validity", "weight_schema", "weight_semantic", "weight_formatting"} <= set(
        fields
    )
    for name, field in fields.items():
        assert field.annotation in (float, int, bool), name
        assert field.description, name
    taken = set(BaseEnvConfig.model_fields) | set(AdjustmentConfig.model_fields)
    assert not set(fields) & taken
    assert RewardConfig() == DEFAULT_REWARD


def test_reward_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RewardConfig(weight_validity=0, weight_schema=0, weight_semantic=0, weight_formatting=0)
    with pytest.raises(ValueError):
        RewardConfig(weight_semantic=-1)
    with pytest.raises(ValueError):
        RewardConfig(truncation_penalty=2)


def test_config_penalties_take_effect() -> None:
    text = "Here is your card:\n" + json.dumps(card())
    lenient = RewardConfig(prose_penalty=0.0, validity_in_prose=1.0)
    assert score_completion(text, CHURN, "stop", lenient).score == 1.0
    harsh = RewardConfig(prose_penalty=1.0, prose_chars_full_penalty=10)
    assert score_completion(text, CHURN, "stop", harsh).layers["formatting"] == 0.0


def test_every_metric_has_a_perfect_answer() -> None:
    """No metric in the catalog is impossible to satisfy: a well-formed card for each scores 1."""
    examples = {
        "currency": "$12,345", "percent": "12.5%", "count": "12,345", "duration": "4m 32s",
        "score": "72", "ratio": "4.2x", "count_or_percent": "1,204",
    }  # fmt: skip
    for metric in METRICS:
        request = make_request(metric.name, "finance", "Q3 2023", 0)
        change = 3.5 if metric.polarity.value != "lower" else -3.5
        result = score(
            {"componentType": "metricCard", "props": {
                "title": metric.name.title(), "value": examples[metric.unit.value],
                "description": "Finance, Q3 2023", "icon": metric.icons[0]
                if metric.icons[0] not in ("pie-chart", "alert-triangle") else metric.icons[1],
                "trend": {"value": change, "isPositive": True}}},
            request,
        )  # fmt: skip
        assert result.problems == [] and result.score == 1.0, (metric.name, result.problems)
