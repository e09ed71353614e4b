"""The semantic checks: one small pure function per question the semantic layer asks.

Each takes the card's facts and the request's facts (`facts.py`) and returns a `Verdict`: a score
in [0, 1] (the formula is in the docstring), the problems that cost points, and the hacking
canaries it saw. `CHECKS` lists them by the name their weight has in `weights.py`; adding a check
is a function here, one entry in CHECKS and one weight field (docs/reward.md walks through it).

Every check is *exclusive*: it pays for the asked metric, period and domain and nothing else, so
naming everything at once, or copying the instructions' example card, earns nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from metric_cards.catalog import (
    DOMAIN_FITS,
    DOMAIN_WORDS,
    EXAMPLE_PROPS,
    GENERIC_METRIC_WORDS,
    METRICS,
    RELATIVE_FITS,
    TITLE_QUALIFIERS,
    Metric,
    Polarity,
    Reading,
)
from metric_cards.reward.facts import (
    COPY_RUN,
    CardFacts,
    PeriodWanted,
    RequestFacts,
    TitleFacts,
)
from metric_cards.reward.mentions import PeriodMention, singular, words_of
from metric_cards.reward.quantity import Quantity, read_quantity

__all__ = [
    "CHECKS",
    "Verdict",
    "description_check",
    "icon_check",
    "magnitude_check",
    "reading_fit",
    "title_check",
    "trend_check",
    "value_check",
]


class Verdict(NamedTuple):
    score: float
    problems: tuple[str, ...] = ()
    canaries: tuple[str, ...] = ()


FULL_MARKS = Verdict(1.0)  # the common verdict, made once (a Verdict is immutable)
COPY_ALL = 12  # words copied from the prompts that void the description (a catalog prompt: 11-17)
NO_CHANGE = 0.25  # a flat or absent trend: says nothing, so below a change of either sign
ABSENT = 0.3  # an optional prop left out: the instructions ask for it, so it is not free
_EXAMPLE_VALUE = read_quantity(EXAMPLE_PROPS["value"]).number  # 12345
# The example's number, and the same digits read with "." as a thousands mark ("$12.345")
_EXAMPLE_NUMBERS = frozenset({_EXAMPLE_VALUE, _EXAMPLE_VALUE / 1000})
_EXAMPLE_TREND = float(EXAMPLE_PROPS["trend"]["value"])  # 12.5
_EXAMPLE_ICON = EXAMPLE_PROPS["icon"].lower()  # "dollar"
_EXAMPLE_DESCRIPTION = frozenset(words_of(EXAMPLE_PROPS["description"]))  # total revenue this month
_DOMAIN_WORD_SETS = {
    domain: frozenset(word for phrase in phrases for word in words_of(phrase))
    for domain, phrases in DOMAIN_WORDS.items()
}


# --- title ---


def title_check(card: CardFacts, want: RequestFacts) -> Verdict:
    """The title names the asked metric (its name or an alias, singular or plural) and no other.

    1 − 0.1·padding, at least 0.3, when it names the metric, where padding counts words that
    are neither the metric, a usual qualifier ("Total", "Avg") nor the domain (the period
    belongs in the description);
    0 when it names any other catalog metric (even beside the asked one);
    otherwise 0.4 × the share of the metric's distinctive words it contains."""
    title = card.title
    name = want.metric.name
    if title is None or not title.words:
        return Verdict(0.0, ("no title",))
    others = [
        metrics
        for at, metrics in enumerate(title.metrics)
        if name not in metrics and not _modifies_the_metric(title, at, name)
    ]
    if others:
        named = sorted({metric for metrics in others for metric in metrics})
        several = len(others) > 1 or any(name in metrics for metrics in title.metrics)
        return Verdict(
            0.0,
            (f"title {card.title_raw!r} names {' / '.join(named)}, not (only) {name}",),
            ("several_metrics_in_title",) if several else (),
        )
    if title.metrics:
        domain_words = _DOMAIN_WORD_SETS.get(want.request.domain, frozenset())
        padding = 0  # a plain loop: most titles have no loose word or one
        for word in title.loose_words:
            if word not in TITLE_QUALIFIERS and word not in domain_words:
                padding += 1
        if not padding:
            return FULL_MARKS
        return Verdict(
            max(0.3, 1.0 - 0.1 * padding),
            (f"title {card.title_raw!r} has {padding} words beyond the metric's name",),
        )
    distinctive = [singular(w) for w in words_of(name) if w not in GENERIC_METRIC_WORDS]
    found = sum(1 for word in distinctive if word in title.words)
    return Verdict(
        0.4 * found / len(distinctive) if distinctive else 0.0,
        (f"title {card.title_raw!r} does not name {name}",),
    )


def _modifies_the_metric(title: TitleFacts, at: int, name: str) -> bool:
    """The metric phrase at `at` is one word right before a phrase naming the asked metric:
    a modifier ("Sales Conversion Rate", "Revenue Churn"), not a second metric."""
    start, end = title.spans[at]
    following = at + 1
    return (
        end - start == 1
        and following < len(title.spans)
        and title.spans[following][0] == end
        and name in title.metrics[following]
    )


# --- value and magnitude ---

# How well a quantity of one kind reads as a reading of another: 1 when it is that unit; a plain
# number lacks its unit ("4.8" for a rate); anything else is the wrong unit and earns nothing.
_KIND_FIT: dict[tuple[str, str], float] = {
    ("money", "money"): 1.0,
    ("percent", "percent"): 1.0,
    ("fraction", "percent"): 1.0,
    ("ratio", "ratio"): 1.0,
    ("duration", "duration"): 1.0,
    ("colon", "duration"): 1.0,
    ("colon", "ratio"): 1.0,
    ("number", "count"): 1.0,
    ("number", "score"): 1.0,
    ("number", "ratio"): 0.9,
    ("number", "money"): 0.4,
    ("number", "percent"): 0.3,
    ("number", "duration"): 0.2,
}


def _range_credit(number: float, reading: Reading) -> float:
    """1 in [low, high]; falling to 0 at floor/ceiling, on a log scale when floor > 0."""
    low, high, floor, ceiling = reading.low, reading.high, reading.floor, reading.ceiling
    if low <= number <= high:
        return 1.0
    if number < low:
        if number <= floor or low <= floor:
            return 0.0
        if floor > 0:
            return math.log(number / floor) / math.log(low / floor)
        return (number - floor) / (low - floor)
    if number >= ceiling or ceiling <= high:
        return 0.0
    if floor > 0:
        return math.log(ceiling / number) / math.log(ceiling / high)
    return (ceiling - number) / (ceiling - high)


def reading_fit(quantity: Quantity, metric: Metric) -> tuple[float, float, Reading | None]:
    """(unit fit, magnitude credit, reading) of the metric's reading that fits the quantity best."""
    best: tuple[float, float, Reading | None] = (0.0, 0.0, None)
    kind = quantity.kind
    if kind is None:
        return best
    for reading in metric.readings:
        fit = _KIND_FIT.get((kind, reading.kind), 0.0)
        if fit <= 0.0:
            continue
        number = quantity.ratio if kind == "colon" and reading.kind == "ratio" else quantity.number
        if math.isnan(number):
            continue
        credit = _range_credit(number, reading)
        if (fit, credit) > best[:2]:
            best = (fit, credit, reading)
    return best


def _is_example_value(quantity: Quantity) -> bool:
    return quantity.kind in ("money", "number") and abs(quantity.number) in _EXAMPLE_NUMBERS


def value_check(card: CardFacts, want: RequestFacts) -> Verdict:
    """The value is exactly one quantity in the metric's unit (`quantity.py`'s grammar).

    The unit fit of the metric's best reading: 1 in its unit ("4.8%", "$1.2M", "4m 32s"),
    × 0.85 for 5+ digits without thousands separators; a plain number missing its unit 0.2–0.4;
    the wrong unit, several quantities, or the instructions' example value ($12,345): 0."""
    quantity = card.value
    raw = card.value_raw
    if quantity is None:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return Verdict(0.1, ("value is a bare number, not a formatted string",))
        return Verdict(0.0, ("no value",) if raw is None else ("value is not a string",))
    if quantity.kind is None:
        return Verdict(0.0, (f"value {raw!r} {quantity.problem}",))
    if _is_example_value(quantity):
        return Verdict(0.0, (f"value {raw!r} is the instructions' example",), ("example_copied",))
    fit, _, reading = reading_fit(quantity, want.metric)
    name = want.metric.name
    if reading is None:
        wanted = " or ".join(sorted({r.kind for r in want.metric.readings}))
        return Verdict(0.0, (f"value {raw!r} is not in {name}'s unit ({wanted})",), ("wrong_unit",))
    if fit < 1.0:
        return Verdict(fit, (f"value {raw!r} lacks its unit ({reading.kind})",))
    if quantity.ungrouped and reading.kind in ("money", "count"):
        return Verdict(0.85, (f"value {raw!r} lacks thousands separators",))
    return FULL_MARKS


def magnitude_check(card: CardFacts, want: RequestFacts) -> Verdict:
    """The value is a realistic size for the metric (the catalog's ranges: uptime 95–100%,
    churn 0.5–15%, CTR 0.1–10%, ...): 1 inside the range, falling to 0 at the floor/ceiling
    (log scale for positive quantities), times the value check's unit fit (a number without
    its unit cannot be judged); 0 for a value in the wrong unit or the example value."""
    quantity = card.value
    if quantity is None or quantity.kind is None or _is_example_value(quantity):
        return Verdict(0.0)
    fit, credit, reading = reading_fit(quantity, want.metric)
    if reading is None:
        return Verdict(0.0)
    credit *= fit  # without its unit, "3.1" cannot be judged a realistic 3.1%
    if credit < 1.0:
        return Verdict(
            credit,
            (
                f"value {card.value_raw!r} is not a realistic {want.metric.name} "
                f"({reading.kind} {reading.low:g} to {reading.high:g})",
            ),
        )
    return FULL_MARKS


# --- trend ---


def trend_check(card: CardFacts, want: RequestFacts) -> Verdict:
    """A realistic non-zero change whose sign agrees with isPositive for the metric's polarity.

    0.6 + 0.4·size when isPositive == (the change is good news) (always, for a neutral metric),
    0.3 + 0.1·size when it is not (the change shows in the wrong colour), where size is 1 for
    trend_min ≤ |change| ≤ trend_max (the catalog's, per metric), |change| / trend_min below,
    falling linearly to 0 at 3 × trend_max. A flat trend (0) or none gets NO_CHANGE (0.25),
    below any real change; the instructions' example (12.5) gets 0."""
    if card.trend_raw is None:
        return Verdict(NO_CHANGE, ("no trend",))
    change = card.trend_value
    if change is None:
        return Verdict(0.0, ("trend.value is not a finite number",))
    if change == _EXAMPLE_TREND:
        return Verdict(0.0, ("trend 12.5 is the instructions' example",), ("example_copied",))
    if change == 0:
        return Verdict(NO_CHANGE, ("trend is 0: a flat trend says nothing",), ("flat_trend",))
    problems: list[str] = []
    size = abs(change)
    limit = want.metric.trend_max
    if size < want.metric.trend_min:
        size_credit = size / want.metric.trend_min
        problems.append(f"trend {change:g} is too small to show")
    elif size <= limit:
        size_credit = 1.0
    else:
        size_credit = max(0.0, 1.0 - (size - limit) / (2 * limit))
        problems.append(f"trend {change:g}% is not a realistic change for {want.metric.name}")
    positive = card.trend_positive
    polarity = want.metric.polarity
    if positive is None:
        sign = 0.0
        problems.append("trend.isPositive is not a boolean")
    elif polarity is Polarity.NEUTRAL:
        sign = 1.0
    else:
        good_news = change > 0 if polarity is Polarity.HIGHER_IS_BETTER else change < 0
        sign = 1.0 if positive == good_news else 0.0
        if not sign:
            problems.append(
                f"trend {change:g} with isPositive {str(positive).lower()}: a "
                f"{'rise' if change > 0 else 'fall'} in {want.metric.name} is "
                f"{'good' if good_news else 'bad'} news"
            )
    if not sign:  # a change is reported, shown in the wrong colour: above a flat trend
        return Verdict(0.3 + 0.1 * size_credit, tuple(problems))
    if not problems:  # the common case: a realistic change in the right colour
        return FULL_MARKS
    return Verdict(0.6 + 0.4 * size_credit, tuple(problems))


# --- icon ---

# An exact Lucide name renders; a case/separator variant ("TrendingUp") or one of Lucide's old
# names renders in most set-ups; another icon set's name ("dollar", "money-bill") does not.
_ICON_KIND_FACTOR = {"exact": 1.0, "variant": 0.9, "legacy": 0.85, "alias": 0.4}


def icon_check(card: CardFacts, want: RequestFacts) -> Verdict:
    """A Lucide icon that fits the metric: one of the catalog's icons for it 1, any other Lucide
    icon 0.3, times 0.9/0.85/0.4 for a variant spelling/old name/other set's alias; unknown 0;
    absent 0.3; the instructions' example ("dollar") 0."""
    raw = card.icon_raw
    if raw is None:
        return Verdict(ABSENT, ("no icon",))
    if isinstance(raw, str) and raw.strip().lower() == _EXAMPLE_ICON:
        return Verdict(0.0, (f"icon {raw!r} is the instructions' example",), ("example_copied",))
    if card.icon is None:
        return Verdict(0.0, (f"icon {raw!r} is not a Lucide icon",))
    factor = _ICON_KIND_FACTOR.get(card.icon_kind, 0.0)
    problems = [] if card.icon_kind == "exact" else [f"icon {raw!r} is {card.icon!r} in Lucide"]
    if card.icon in _fitting_icons(want.metric):
        return Verdict(factor, tuple(problems)) if problems else FULL_MARKS
    problems.append(f"icon {card.icon!r} does not fit {want.metric.name}")
    return Verdict(0.3 * factor, tuple(problems))


_FITTING: dict[str, frozenset[str]] = {}


def _fitting_icons(metric: Metric) -> frozenset[str]:
    fitting = _FITTING.get(metric.name)
    if fitting is None:
        from metric_cards.icons import resolve_icon

        fitting = frozenset(resolve_icon(icon) or icon for icon in metric.icons)
        _FITTING[metric.name] = fitting
    return fitting


# --- description: period, domain, own words ---


def period_fit(want: PeriodWanted, mention: PeriodMention) -> bool | None:
    """True: the mention names the asked period; False: another one (a month for a quarter, "this
    month" for "July", Q2 for Q3); None: neither (a bare year consistent with the request)."""
    kind, payload = mention.kind, mention.payload
    if kind == "year":
        if want.kind == "quarter":
            return None if payload == want.year else False
        return None  # "in 2023" for July or for "this year": the model cannot know the date
    if want.kind == "relative":
        if kind != "relative":
            return False
        return payload == want.relative or payload in RELATIVE_FITS.get(want.relative, ())
    if want.kind == "month":
        return kind == "month" and payload == want.month
    quarter_ok = kind == "quarter" and payload[0] == want.quarter
    return quarter_ok and payload[1] in (None, want.year)


def description_check(card: CardFacts, want: RequestFacts) -> Verdict:
    """The description is the model's own sentence naming the asked period and domain.

    named × own × (1 − copied), where named = 0.3 + 0.35·(period named) + 0.35·(domain named)
    (in the title or the description), halved when the description names another metric by its
    full catalog name; own = 0.4 + 0.3·min(2, content words not in the prompt); copied =
    min(1, c / COPY_ALL (12)) for c the description's words inside a run of COPY_RUN (6)
    consecutive words that the user or system prompt also has (what was copied counts, not its
    share of a padded sentence). 0 when the title or description names
    another period or domain (a comparison's baseline, "down from 3.8% in August", is not a
    mention) or is the instructions' example; 0.3 without a description."""
    request = want.request
    title_mentions = card.title.mentions if card.title is not None else None
    description = card.description
    mentions = [m for m in (title_mentions, description and description.mentions) if m]
    period_named = False
    for found in mentions:
        for mention in found.periods:
            if mention.baseline:
                continue
            fit = period_fit(want.period, mention)
            if fit is False:
                return Verdict(
                    0.0,
                    (f"the card names {mention.written!r}, not {request.period}",),
                )
            period_named = period_named or bool(fit)
    domain = request.domain
    fits = DOMAIN_FITS.get(domain, frozenset())
    domain_named = False
    for found in mentions:
        for other, written in found.domain_names:
            if other != domain and other not in fits:
                return Verdict(0.0, (f"the card names {written!r}, not {domain}",))
        domain_named = domain_named or domain in found.domains
    if description is None or not description.words:
        return Verdict(ABSENT, ("no description",))
    if "total" in description.words and _is_example_description(card, want):
        return Verdict(
            0.0,
            (f"description {description.text!r} is the instructions' example",),
            ("example_copied",),
        )
    problems = []
    if not period_named:
        problems.append(f"the card does not name the period ({request.period})")
    if not domain_named:
        problems.append(f"the card does not name the domain ({domain})")
    named = (6 + 7 * period_named + 7 * domain_named) / 20  # 0.3 + 0.35 + 0.35, exactly
    other = _other_metric_named(description.words, description.metrics, want.metric.name)
    if other:
        named *= 0.5
        problems.append(f"the description names {other}, another metric")
    new_words = len(description.content_words - want.prompt_words)
    own = (4 + 3 * min(2, new_words)) / 10  # 0.4 + 0.3 per new word, exactly
    if new_words < 2:
        problems.append("the description only repeats the request's words")
    copied_words = _copied_words(description.words, want)
    copied = min(1.0, copied_words / COPY_ALL)
    canaries: tuple[str, ...] = ()
    if copied_words:
        canaries = ("prompt_copied",)
        problems.append(f"the description copies {copied_words} words of the prompt")
    return Verdict(named * own * (1.0 - copied), tuple(problems), canaries)


def _is_example_description(card: CardFacts, want: RequestFacts) -> bool:
    """The description is "Total <metric> this month" (the instructions' example) in other
    words: nothing but the example's words, the metric's and the title's."""
    description = card.description
    assert description is not None
    leftover = set(description.words) - _metric_words(want.metric.name)
    if card.title is not None:
        leftover.difference_update(card.title.words)
    return "total" in leftover and leftover <= _EXAMPLE_DESCRIPTION


_METRIC_WORDS: dict[str, frozenset[str]] = {}


def _metric_words(name: str) -> frozenset[str]:
    found = _METRIC_WORDS.get(name)
    if found is None:
        found = _METRIC_WORDS[name] = frozenset(singular(w) for w in words_of(name))
    return found


def _other_metric_named(
    words: tuple[str, ...], spans: tuple[tuple[int, int, frozenset[str]], ...], name: str
) -> str:
    """A catalog metric the description names by its full name (of two or more words: "revenue"
    or "sales" also describe other metrics), other than the asked one; "" when none."""
    for start, end, metrics in spans:
        if name in metrics:
            continue
        for metric in metrics:
            if _MULTIWORD_NAMES.get(metric) == words[start:end]:
                return metric
    return ""


_MULTIWORD_NAMES = {
    m.name: tuple(singular(w) for w in words_of(m.name)) for m in METRICS if " " in m.name
}


def _copied_words(words: tuple[str, ...], want: RequestFacts) -> int:
    """How many of `words` lie inside a run of COPY_RUN consecutive words that the user or the
    system prompt also has."""
    prompt_words, prompt_runs = want.run_words, want.prompt_runs
    covered = 0
    last_covered = -1  # index of the last word counted
    streak = 0  # words in a row, up to here, that the prompt has
    for at, word in enumerate(words):
        streak = streak + 1 if word in prompt_words else 0
        if streak < COPY_RUN:
            continue
        start = at - COPY_RUN + 1
        if words[start : at + 1] in prompt_runs:
            covered += start + COPY_RUN - max(start, last_covered + 1)
            last_covered = start + COPY_RUN - 1
    return covered


CHECKS: dict[str, Callable[[CardFacts, RequestFacts], Verdict]] = {
    "title": title_check,
    "value": value_check,
    "magnitude": magnitude_check,
    "trend": trend_check,
    "icon": icon_check,
    "description": description_check,
}
