"""extract_json: fences, bare objects, <think> blocks, prose, lenient repair, the real corpus."""

from __future__ import annotations

import json

import pytest
from hostile_text import CARD  # the one sample card of the parser tests

from metric_cards.extraction import Extraction, extract_json, repair_json

PRETTY = json.dumps(CARD, indent=2)
COMPACT = json.dumps(CARD)


def test_corpus_completions_are_bare_objects(corpus_rows: list[dict]) -> None:
    for row in corpus_rows:
        found = extract_json(row["completion"])
        assert found.method == "bare"
        assert found.value == json.loads(row["completion"])
        assert (found.prose_chars, found.repaired) == (0, False)
        assert found.text == row["completion"].strip()


@pytest.mark.parametrize(
    "fence", ["```json\n{}\n```", "```\n{}\n```", "```JSON\n{}```", "```{}```"]
)
def test_a_whole_fenced_block_is_fenced(fence: str) -> None:
    found = extract_json("  " + fence.replace("{}", PRETTY) + "\n")
    assert (found.method, found.value, found.prose_chars, found.repaired) == (
        "fenced",
        CARD,
        0,
        False,
    )
    assert found.text == PRETTY  # the fences are stripped


def test_bare_object_with_surrounding_whitespace() -> None:
    found = extract_json("\n\n  " + COMPACT + "  \n")
    assert (found.method, found.value, found.text) == ("bare", CARD, COMPACT)


@pytest.mark.parametrize(
    "completion",
    [
        "<think>\nThe user wants revenue. {not json}\n</think>\n\n" + COMPACT,
        "<think>short</think>```json\n" + PRETTY + "\n```",
        "<THINK>x</THINK>" + COMPACT,
    ],
)
def test_answer_after_a_think_block(completion: str) -> None:
    found = extract_json(completion)
    assert (found.method, found.value, found.prose_chars) == ("after_think", CARD, 0)


def test_text_before_a_bare_closing_think_tag_is_prose() -> None:
    found = extract_json("I should pick a dollar icon.\n</think>\n" + COMPACT)
    assert (found.method, found.value) == ("in_prose", CARD)
    assert found.prose_chars == len("Ishouldpickadollaricon.</think>")


def test_an_unfinished_think_block_has_no_answer() -> None:
    assert extract_json("<think>I will answer " + COMPACT).method == "none"


def test_object_inside_prose_counts_the_prose() -> None:
    found = extract_json("Here it is:\n" + PRETTY + "\nHope it helps!")
    assert (found.method, found.value, found.repaired) == ("in_prose", CARD, False)
    assert found.prose_chars == len("Hereitis:") + len("Hopeithelps!")
    assert found.text == PRETTY


def test_fenced_block_inside_prose_does_not_count_the_fence_markers() -> None:
    found = extract_json("Sure!\n```json\n" + PRETTY + "\n```\nDone.")
    assert (found.method, found.value) == ("in_prose", CARD)
    assert found.prose_chars == len("Sure!") + len("Done.")


def test_think_text_is_not_prose() -> None:
    found = extract_json("<think>lots of thinking here</think>\nOK:\n" + COMPACT)
    assert (found.method, found.prose_chars) == ("in_prose", 3)


def test_the_card_is_preferred_over_other_objects_in_prose() -> None:
    text = 'Config {"debug": true} and the card: ' + COMPACT + ' and {"x": [1, 2, 3, 4]}'
    assert extract_json(text).value == CARD


def test_braces_inside_strings_do_not_confuse_the_scan() -> None:
    card = {"componentType": "metricCard", "props": {"title": "A {b} }", "value": "1"}}
    found = extract_json("Result: " + json.dumps(card) + " end")
    assert found.value == card


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (COMPACT[:-2] + ",}}", CARD),  # trailing comma
        (COMPACT[:-1] + ",\n}", CARD),
        (COMPACT.replace('"', "'"), CARD),  # single quotes
        (COMPACT.replace("true", "True"), CARD),  # Python literal
        (COMPACT.replace('"props":', '// the props\n"props":'), CARD),  # // comment
        (COMPACT.replace('"props":', '/* c */ "props":'), CARD),  # /* */ comment
        (COMPACT.replace('"props":', '# c\n"props":'), CARD),  # # comment
        ("{componentType: 'metricCard', props: {title: 'A', value: '1'}}", None),  # bare keys
    ],
)
def test_lenient_repair(broken: str, expected: dict | None) -> None:
    found = extract_json(broken)
    assert found.method == "repaired" and found.repaired
    if expected is None:
        expected = {"componentType": "metricCard", "props": {"title": "A", "value": "1"}}
    assert found.value == expected


def test_none_becomes_null_and_strings_keep_apostrophes() -> None:
    found = extract_json(
        "{'componentType': 'metricCard', 'props': {'title': \"Today's Revenue\", "
        "'value': '$1', 'icon': None}}"
    )
    assert found.value["props"] == {"title": "Today's Revenue", "value": "$1", "icon": None}


CUT_SOURCE = (
    '{"componentType": "metricCard", "props": {"title": "Revenue", "value": "$12,345", '
    '"trend": {"value": 12.5, "isPositive": true}}}'
)


@pytest.mark.parametrize(
    ("cut_after", "expected_props"),
    [
        ('"title": "Reve', {"title": "Reve"}),  # inside a string value: kept as written
        ('"title": "Revenue", "val', {"title": "Revenue"}),  # inside a key: dropped
        ('"title": "Revenue", "value":', {"title": "Revenue"}),  # key without value: dropped
        (  # half a number: the dangling "." goes
            '"trend": {"value": 12.',
            {"title": "Revenue", "value": "$12,345", "trend": {"value": 12}},
        ),
        (  # half a literal at the very end: completed
            '"isPositive": tr',
            {"title": "Revenue", "value": "$12,345", "trend": {"value": 12.5, "isPositive": True}},
        ),
    ],
)
def test_cut_off_objects_are_closed(cut_after: str, expected_props: dict) -> None:
    prefix = CUT_SOURCE[: CUT_SOURCE.index(cut_after) + len(cut_after)]
    found = extract_json(prefix)
    assert (found.method, found.repaired) == ("repaired", True)
    assert found.value == {"componentType": "metricCard", "props": expected_props}
    assert found.text == prefix


def test_every_prefix_of_a_card_is_handled() -> None:
    """Truncation anywhere never raises and never invents content that was not there."""
    for end in range(len(PRETTY) + 1):
        found = extract_json(PRETTY[:end])
        assert isinstance(found, Extraction)
        if found.value is not None:
            assert isinstance(found.value, dict)
            assert set(found.value) <= {"componentType", "props"}
            if isinstance(found.value.get("props"), dict):
                assert set(found.value["props"]) <= set(CARD["props"])
    props_opened = PRETTY[: PRETTY.index('"props": {') + len('"props": {')]
    assert extract_json(props_opened).value == {"componentType": "metricCard", "props": {}}


def test_fence_that_never_closes_is_repaired() -> None:
    found = extract_json("```json\n" + PRETTY[:-30])
    assert found.method == "repaired"
    assert found.value["props"]["title"] == "Revenue"
    assert found.prose_chars == 0  # the opening fence marker is not prose


@pytest.mark.parametrize("text", ["", "   ", "I cannot help with that.", "}", "{{{", "[1, 2"])
def test_nothing_found(text: str) -> None:
    assert extract_json(text) == Extraction(None, None, "none", 0, False)


def test_a_lone_opening_brace_is_an_empty_object_cut_off() -> None:
    found = extract_json("{")
    assert found == Extraction({}, "{", "repaired", 0, True, truncated=True)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 20000 + "]" * 20000,
        '{"a":' * 5000,
        "{" * 50000,
        "word {" * 20000,
        '{"a": "' + "x" * 10**5,
    ],
)
def test_pathological_input_neither_raises_nor_hangs(text: str) -> None:
    found = extract_json(text)
    assert isinstance(found, Extraction)


def test_non_string_input_is_nothing() -> None:
    assert extract_json(None).method == "none"  # type: ignore[arg-type]


def test_a_bare_array_is_found_as_json() -> None:
    found = extract_json("[" + COMPACT + "]")
    assert (found.method, found.value) == ("bare", [CARD])


def test_repair_json_reports_what_it_consumed() -> None:
    value, consumed = repair_json("{'a': 1,} and then prose")
    assert value == {"a": 1}
    assert consumed == len("{'a': 1,}")
    assert repair_json("{:::}") is None


def test_extraction_is_immutable() -> None:
    found = extract_json(COMPACT)
    with pytest.raises(AttributeError):
        found.method = "x"  # type: ignore[misc]


# --- strict JSON: what the front end's JSON.parse accepts -----------------------------------------


@pytest.mark.parametrize(
    ("broken", "trend_value"),
    [
        (COMPACT.replace("12.5", "NaN"), None),
        (COMPACT.replace("12.5", "Infinity"), None),
        (COMPACT.replace("12.5", "-Infinity"), None),
        (COMPACT.replace("12.5", "0x1F"), 31),
        (COMPACT.replace("12.5", "+12.5"), 12.5),
        (COMPACT.replace("12.5", ".5"), 0.5),
        (COMPACT.replace("true", "undefined"), None),
    ],
)
def test_what_json_parse_rejects_is_only_ever_repaired(broken: str, trend_value: object) -> None:
    found = extract_json(broken)
    assert (found.method, found.repaired, found.truncated) == ("repaired", True, False)
    trend = found.value["props"]["trend"]
    assert trend_value in (trend["value"], trend["isPositive"])
    for wrapper in ("Here: {}", "```json\n{}\n```", "<think>x</think>{}"):
        assert extract_json(wrapper.replace("{}", broken)).method == "repaired"


def test_an_unclosed_object_is_truncated_and_a_closed_one_is_not() -> None:
    cut = extract_json(COMPACT[:-3])
    assert (cut.method, cut.repaired, cut.truncated) == ("repaired", True, True)
    commented = extract_json(COMPACT.replace('"props":', '/* c */ "props":'))
    assert (commented.repaired, commented.truncated) == (True, False)


@pytest.mark.parametrize("digits", [309, 4301, 10_000])
def test_huge_integers_are_read_as_json_parse_reads_them(digits: int) -> None:
    found = extract_json(COMPACT.replace("12.5", "9" * digits))
    assert (found.method, found.repaired) == ("bare", False)
    assert found.value["props"]["trend"]["value"] == float("inf")


def test_integers_up_to_308_digits_stay_exact_and_1e400_is_infinite() -> None:
    exact = extract_json(COMPACT.replace("12.5", "9" * 308))
    assert exact.value["props"]["trend"]["value"] == 10**308 - 1
    assert float(exact.value["props"]["trend"]["value"]) > 0  # converts without OverflowError
    huge = extract_json(COMPACT.replace("12.5", "1e400"))
    assert (huge.method, huge.value["props"]["trend"]["value"]) == ("bare", float("inf"))


def test_a_lone_surrogate_escape_is_kept_as_parsed() -> None:
    found = extract_json(COMPACT.replace('"Revenue"', '"\\ud800"'))
    assert (found.method, found.value["props"]["title"]) == ("bare", "\ud800")
    raw = extract_json("Here: " + COMPACT.replace("Revenue", "\ud800"))
    assert (raw.method, raw.value["props"]["title"]) == ("in_prose", "\ud800")


# --- what is prose, and what is the answer --------------------------------------------------------


def test_a_card_inside_the_reasoning_with_nothing_after_is_no_answer() -> None:
    assert extract_json("<think>" + COMPACT + "</think>") == Extraction(
        None, None, "none", 0, False
    )
    assert extract_json("<think>" + COMPACT + "</think>\nThat is my answer.").method == "none"


def test_only_the_card_after_the_last_reasoning_block_counts() -> None:
    other = COMPACT.replace("Revenue", "Churn")
    found = extract_json("<think>a</think>" + other + "<think>b</think>" + COMPACT)
    assert (found.method, found.value) == ("in_prose", CARD)
    assert found.prose_chars == len(other.replace(" ", ""))


def test_a_second_card_is_prose() -> None:
    found = extract_json(COMPACT + "\n" + COMPACT)
    assert (found.method, found.value) == ("in_prose", CARD)
    assert found.prose_chars == len(COMPACT.replace(" ", ""))


@pytest.mark.parametrize("padding", ["```\n", "```json\n```\n", "``` ``` "])
def test_extra_and_empty_fences_around_a_card_are_prose(padding: str) -> None:
    wrapped = padding * 100 + "```json\n" + PRETTY + "\n```\n" + padding * 100
    found = extract_json(wrapped)
    assert (found.method, found.value) == ("in_prose", CARD)
    assert found.prose_chars == 200 * len("".join(padding.split()))


def test_the_one_fence_around_a_card_is_not_prose() -> None:
    found = extract_json("Sure:\n```json\n" + PRETTY + "\n```\n")
    assert (found.method, found.prose_chars) == ("in_prose", len("Sure:"))


# --- bounded resources and depth ------------------------------------------------------------------


def test_a_completion_over_the_cap_is_read_up_to_the_cap() -> None:
    from metric_cards.extraction import MAX_COMPLETION_CHARS

    padded = extract_json(COMPACT + " " * MAX_COMPLETION_CHARS)
    assert (padded.method, padded.value, padded.capped) == ("bare", CARD, True)
    assert extract_json(COMPACT).capped is False
    late = extract_json("x" * MAX_COMPLETION_CHARS + COMPACT)
    assert (late.method, late.value, late.capped) == ("none", None, True)
    cut = extract_json(" " * (MAX_COMPLETION_CHARS - 20) + COMPACT)
    assert (cut.method, cut.truncated, cut.capped) == ("repaired", True, True)


def test_nesting_deeper_than_the_limit_is_not_a_card() -> None:
    from metric_cards.extraction import MAX_JSON_DEPTH

    def nested(depth: int) -> str:  # a card whose title is nested `depth` levels deep
        title = '{"a": ' * (depth - 2) + "1" + "}" * (depth - 2)
        return COMPACT.replace('"Revenue"', title)

    assert extract_json(nested(MAX_JSON_DEPTH)).method == "bare"
    for text in (nested(MAX_JSON_DEPTH + 1), "Here: " + nested(MAX_JSON_DEPTH + 1)):
        assert extract_json(text) == Extraction(None, None, "none", 0, False)


@pytest.mark.parametrize(
    ("broken", "expected", "truncated"),
    [
        ("{'a': 'it\\'s'}", {"a": "it's"}, False),
        ("{'a': 'say \"hi\"'}", {"a": 'say "hi"'}, False),
        ('{"a": "x\\qy"}', {"a": "x\\qy"}, False),  # an escape JSON lacks: kept as written
        ('{"a": "\\u12"}', {"a": "\\u12"}, False),
        ('{"a": "line\nbreak\ttab"}', {"a": "line\nbreak\ttab"}, False),  # raw controls
        ('{"a": "abc\\', {"a": "abc"}, True),  # cut off inside an escape
        ('{"a": "abc\\"', {"a": 'abc"'}, True),
        ("{a: 0x1F, b: -0x10, c: 007, d: +.5e}", {"a": 31, "b": -16, "c": 7, "d": 0.5}, False),
        ('{"a": [1, 2,, 3,]}', {"a": [1, 2, 3]}, False),
        ('{"a": fal', {"a": False}, True),
        ('{"a": nu  ', {"a": None}, True),
        ('{"a": 1 /* never closed', {"a": 1}, True),
    ],
)
def test_repair_details(broken: str, expected: dict, truncated: bool) -> None:
    found = extract_json(broken)
    assert (found.method, found.value, found.truncated) == ("repaired", expected, truncated)
