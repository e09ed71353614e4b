"""The honest realistic card for a catalog request: the yardstick every exploit is measured against.

What a careful dashboard engineer would ship for the request, written without looking at the
reward: the asked metric as the title (title case, nothing else), one value in the metric's unit
with a realistic magnitude for that metric and period, the period and the domain named in a
sentence of the card's own (not the prompt's wording), a realistic non-zero trend whose sign
agrees with `isPositive` for the metric's polarity, and the metric's first catalog (Lucide) icon.

Values, trends and sentences are fixed per metric here, by hand, from typical real-world figures;
the choice inside each range is a stable hash of (metric, domain, period), so the same request
always gets the same card on every machine. `scripts/search_exploits.py` and
`tests/test_reward_exploits.py` both build their honest cards with `honest_card`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from metric_cards.catalog import METRICS, Polarity, Request

__all__ = [
    "HONEST_METRICS",
    "card_text",
    "honest_card",
    "honest_description",
    "honest_icon",
    "honest_title",
    "honest_trend",
    "honest_value",
    "period_phrase",
]


def _unit_interval(*parts: str) -> float:
    """A stable number in [0, 1) for these strings (the same on every machine and run)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


# How much of a month a period covers: scale-free totals (revenue, page views...) grow with it.
_PERIOD_MONTHS = {
    "last 24 hours": 1 / 30,
    "last 7 days": 7 / 30,
    "last 30 days": 1.0,
    "this month": 1.0,
    "this quarter": 3.0,
    "this year": 12.0,
    "year-to-date": 8.0,
}


def _months(period: str) -> float:
    if period in _PERIOD_MONTHS:
        return _PERIOD_MONTHS[period]
    if period.startswith("Q"):
        return 3.0
    return 1.0  # a month name


def period_phrase(period: str) -> str:
    """How the period reads inside a sentence: "in Q3 2023", "over the last 7 days"."""
    if period.startswith("last "):
        return f"over the {period}"
    if period.startswith("this ") or period == "year-to-date":
        return period
    return f"in {period}"


def _grouped(number: float) -> str:
    return f"{round(number):,}"


def _money(amount: float) -> str:
    if amount >= 1e6:
        return f"${amount / 1e6:.2f}M"
    if amount >= 100:
        return f"${_grouped(amount)}"
    return f"${amount:.2f}"


def _count(amount: float) -> str:
    if amount >= 1e6:
        return f"{amount / 1e6:.1f}M"
    return _grouped(amount)


def _duration_minutes(minutes: float) -> str:
    whole = int(minutes)
    return f"{whole}m {round((minutes - whole) * 60):02d}s"


# metric -> (value from (u, months), description sentence with {domain} and {period},
#            |trend| range in percent). u in [0, 1) picks the point inside the realistic range.
_Value = Callable[[float, float], str]
_SPECS: dict[str, tuple[_Value, str, tuple[float, float]]] = {
    "revenue": (
        lambda u, m: _money((0.6 + 1.4 * u) * 1e6 * m),
        "Gross income booked by our {domain} business {period}, net of refunds.",
        (2.0, 14.0),
    ),
    "user growth": (
        lambda u, m: f"{1.5 + 10 * u:.1f}%",
        "Net increase in registered accounts on our {domain} platform {period}.",
        (1.0, 9.0),
    ),
    "conversion rate": (
        lambda u, m: f"{1.8 + 3.2 * u:.1f}%",
        "Share of {domain} prospects who completed a purchase {period}.",
        (0.5, 8.0),
    ),
    "customer acquisition cost": (
        lambda u, m: _money(45 + 260 * u),
        "Average promotional spend to win one new {domain} customer {period}.",
        (1.0, 9.0),
    ),
    "average order value": (
        lambda u, m: _money(38 + 140 * u),
        "Mean basket size per checkout in our {domain} channel {period}.",
        (1.0, 7.0),
    ),
    "customer lifetime value": (
        lambda u, m: _money(450 + 2300 * u),
        "Expected gross profit per {domain} customer over the relationship, measured {period}.",
        (1.0, 8.0),
    ),
    "page views": (
        lambda u, m: _count((0.4 + 1.6 * u) * 1e6 * m),
        "Pages loaded across our {domain} site {period}.",
        (2.0, 15.0),
    ),
    "bounce rate": (
        lambda u, m: f"{34 + 26 * u:.1f}%",
        "Share of {domain} landings that left after a single page {period}.",
        (0.5, 6.0),
    ),
    "churn rate": (
        lambda u, m: f"{1.5 + 5 * u:.1f}%",
        "Share of {domain} subscribers who cancelled {period}.",
        (0.2, 1.5),
    ),
    "active users": (
        lambda u, m: _count((18_000 + 60_000 * u) * min(1.0, m) ** 0.5),
        "Distinct people who signed in to our {domain} app {period}.",
        (1.0, 9.0),
    ),
    "session duration": (
        lambda u, m: _duration_minutes(2 + 6 * u),
        "Mean time spent per sitting on our {domain} site {period}.",
        (1.0, 8.0),
    ),
    "retention rate": (
        lambda u, m: f"{70 + 22 * u:.1f}%",
        "Share of {domain} customers still active at the end of the window, {period}.",
        (0.5, 4.0),
    ),
    "engagement rate": (
        lambda u, m: f"{3 + 9 * u:.1f}%",
        "Interactions per impression on our {domain} posts {period}.",
        (0.5, 8.0),
    ),
    "click-through rate": (
        lambda u, m: f"{1.2 + 3.3 * u:.2f}%",
        "Share of ad impressions that led to a click for our {domain} ads {period}.",
        (0.5, 9.0),
    ),
    "inventory turnover": (
        lambda u, m: f"{4 + 6 * u:.1f}x",
        "How many times our {domain} stock was sold and replaced, annualised, measured {period}.",
        (1.0, 8.0),
    ),
    "profit margin": (
        lambda u, m: f"{8 + 16 * u:.1f}%",
        "Share of every dollar billed that our {domain} operations kept as profit {period}.",
        (0.5, 4.0),
    ),
    "return on investment": (
        lambda u, m: f"{12 + 160 * u:.0f}%",
        "Gain on {domain} ad spend relative to its cost {period}.",
        (2.0, 15.0),
    ),
    "customer satisfaction": (
        lambda u, m: f"{3.9 + 0.9 * u:.1f}/5",
        "Average post-purchase survey rating from our {domain} clients {period}.",
        (0.5, 5.0),
    ),
    "net promoter score": (
        lambda u, m: f"{25 + 37 * u:.0f}",
        "Promoters minus detractors among surveyed {domain} clients {period}.",
        (1.0, 9.0),
    ),
    "sales growth": (
        lambda u, m: f"{4 + 14 * u:.1f}%",
        "Change in booked orders for our {domain} business {period}, against the prior period.",
        (1.0, 9.0),
    ),
    "market share": (
        lambda u, m: f"{6 + 22 * u:.1f}%",
        "Our portion of total {domain} spend captured {period}.",
        (0.5, 5.0),
    ),
    "employee productivity": (
        lambda u, m: f"${120 + 140 * u:.0f}K per employee",
        "Annualised output in dollars per full-time {domain} employee, measured {period}.",
        (1.0, 7.0),
    ),
    "website traffic": (
        lambda u, m: _count((60_000 + 240_000 * u) * m),
        "Visits to our {domain} website from all channels {period}.",
        (2.0, 14.0),
    ),
    "operational costs": (
        lambda u, m: _money((180_000 + 520_000 * u) * m),
        "Running expenses of our {domain} operations {period}, excluding capital spend.",
        (1.0, 8.0),
    ),
    "customer support tickets": (
        lambda u, m: _count((900 + 2600 * u) * m),
        "Help-desk requests opened by {domain} customers {period}.",
        (2.0, 12.0),
    ),
    "app downloads": (
        lambda u, m: _count((9_000 + 40_000 * u) * m),
        "New installs of our {domain} mobile app across both app marketplaces {period}.",
        (2.0, 16.0),
    ),
    "subscription renewals": (
        lambda u, m: _count((1_200 + 4_800 * u) * m),
        "Plans our {domain} subscribers extended for another term {period}.",
        (1.0, 8.0),
    ),
    "delivery time": (
        lambda u, m: f"{1.6 + 2.8 * u:.1f} days",
        "Average time from order to doorstep for {domain} shipments {period}.",
        (2.0, 12.0),
    ),
    "error rate": (
        lambda u, m: f"{0.2 + 1.6 * u:.2f}%",
        "Share of {domain} requests that failed {period}.",
        (2.0, 20.0),
    ),
    "uptime percentage": (
        lambda u, m: f"{99.9 + 0.09 * u:.2f}%",
        "Share of time our {domain} services passed availability probes {period}.",
        (0.01, 0.08),
    ),
}

HONEST_METRICS: tuple[str, ...] = tuple(_SPECS)
assert set(HONEST_METRICS) == {m.name for m in METRICS}, "every catalog metric needs a spec"

_POLARITY = {m.name: m.polarity for m in METRICS}
_ICON = {m.name: m.icons[0] for m in METRICS}


def honest_title(request: Request) -> str:
    """The catalog name in title case ("Click-Through Rate")."""
    return request.metric.title()


def honest_value(request: Request) -> str:
    value_of, _, _ = _SPECS[request.metric]
    return value_of(
        _unit_interval("value", request.metric, request.domain, request.period),
        _months(request.period),
    )


def honest_description(request: Request) -> str:
    _, sentence, _ = _SPECS[request.metric]
    return sentence.format(domain=request.domain, period=period_phrase(request.period))


def honest_trend(request: Request) -> dict[str, Any]:
    """A realistic non-zero change; one request in four reports a bad period (sign and
    isPositive still agree with the metric's polarity)."""
    _, _, (low, high) = _SPECS[request.metric]
    u = _unit_interval("trend", request.metric, request.domain, request.period)
    size = round(low + (high - low) * u, 2)
    improved = _unit_interval("sign", request.metric, request.domain, request.period) >= 0.25
    polarity = _POLARITY[request.metric]
    if polarity is Polarity.LOWER_IS_BETTER:
        rising = not improved
    else:  # a neutral metric (support tickets): rising counts as bad news for the team
        rising = improved if polarity is Polarity.HIGHER_IS_BETTER else not improved
    is_positive = improved if polarity is not Polarity.NEUTRAL else not rising
    return {"value": size if rising else -size, "isPositive": is_positive}


def honest_icon(request: Request) -> str:
    """The metric's first catalog icon (a Lucide name)."""
    return _ICON[request.metric]


def honest_card(request: Request) -> dict[str, Any]:
    return {
        "componentType": "metricCard",
        "props": {
            "title": honest_title(request),
            "value": honest_value(request),
            "description": honest_description(request),
            "trend": honest_trend(request),
            "icon": honest_icon(request),
        },
    }


def card_text(card: Any) -> str:
    """A card as a model would write it: pretty-printed strict JSON, nothing around it."""
    return json.dumps(card, indent=2, ensure_ascii=False)
