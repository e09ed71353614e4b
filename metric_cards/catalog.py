"""The prompt catalog: what a user can ask for, and how to read a request back from a prompt.

The domains, metric types, time periods and templates are the original environment's. Each metric
is extended with the unit its value should be written in, its polarity (is a rise good news?) and
Lucide icons that fit it; the semantic layer of the reward checks answers against these.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass
from enum import Enum
from functools import lru_cache

SYSTEM_PROMPT = """You are an AI specialized in generating JSON data for a MetricCard React component.

Your task is to create a JSON object following this structure:
```json
{
  "componentType": "metricCard",
  "props": {
    "title": "Revenue",
    "value": "$12,345",
    "description": "Total revenue this month",
    "trend": {
      "value": 12.5,
      "isPositive": true
    },
    "icon": "dollar"
  }
}
```

Required properties:
- componentType: Must be exactly "metricCard"
- props.title: The metric name/label
- props.value: The metric value (formatted appropriately)

Optional properties:
- props.description: Additional context about the metric
- props.trend: An object with 'value' (percentage) and 'isPositive' (boolean)
- props.icon: Name of the icon (e.g., "dollar", "users", "trending-up")
- props.className: CSS class name for custom styling

IMPORTANT:
1. Ensure the generated JSON is valid
2. Format numeric values appropriately (add commas, currency symbols, or percentage signs as needed)
3. Use appropriate icons based on the metric type
4. Make sure trend values and descriptions are realistic

You will receive a query describing what kind of metric is needed. Generate the appropriate JSON response.
"""

DOMAINS: tuple[str, ...] = (
    "e-commerce", "finance", "healthcare", "education", "real estate", "social media",
    "marketing", "transportation", "manufacturing", "hospitality", "technology", "energy",
    "retail", "agriculture", "media", "telecommunications", "insurance", "entertainment",
)  # fmt: skip

TIME_PERIODS: tuple[str, ...] = (
    "this month", "this quarter", "this year", "last 30 days", "last 7 days", "last 24 hours",
    "year-to-date", "Q1 2023", "Q2 2023", "Q3 2023", "Q4 2023", "Q1 2024", "Q2 2024",
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip

# {metric}, {domain} and {period} are filled in; the wording is the original environment's.
TEMPLATES: tuple[str, ...] = (
    "Create a metric card for {metric} in {domain} for {period}.",
    "Generate a JSON output for a {domain} dashboard showing {metric} during {period}.",
    "I need a metric card showing {metric} statistics for our {domain} business for {period}.",
    "Design a metric component that displays {metric} for our {domain} platform for {period}.",
    "Provide a metric card JSON for {metric} in our {domain} analytics for {period}.",
)


class Unit(str, Enum):
    """How a metric's value should be written on the card (its main reading; see `Reading`)."""

    CURRENCY = "currency"  # "$12,345", "€1.2M"
    PERCENT = "percent"  # "4.8%"
    COUNT = "count"  # "12,345", "1.2M"
    DURATION = "duration"  # "4m 32s", "2.5 days", "3:45"
    SCORE = "score"  # a bounded number: "4.6/5", "87%", "72" (NPS: -100..100)
    RATIO = "ratio"  # "5.2x", "5.2"
    COUNT_OR_PERCENT = "count_or_percent"  # "+12%" or "1,204 new users"


class Polarity(str, Enum):
    """Whether a rise in the metric is good news (decides what trend.isPositive should say)."""

    HIGHER_IS_BETTER = "higher"
    LOWER_IS_BETTER = "lower"
    NEUTRAL = "neutral"  # no sign check: a rise is neither clearly good nor bad


@dataclass(frozen=True)
class Reading:
    """One way a metric's value may be written, and the magnitudes real dashboards show.

    kind: "money" ($, €, USD...), "percent", "count" (a plain number, maybe with a noun),
    "duration" (in seconds), "ratio" ("5.2x", "3:1" or a plain number), "score" (a plain number
    on the metric's own scale). Fractions ("4.6/5") are read as a percent of their scale.
    Full credit in [low, high]; outside, credit falls to 0 at `floor` / `ceiling` (on a log scale
    when floor > 0, linearly otherwise). A scale-free amount (money, counts) gets sanity bounds
    relative to what the metric usually is.
    """

    kind: str
    low: float
    high: float
    floor: float
    ceiling: float


@dataclass(frozen=True)
class Metric:
    name: str  # as it appears in prompts
    unit: Unit
    polarity: Polarity
    icons: tuple[str, ...]  # Lucide icon names that fit, best first
    aliases: tuple[str, ...]  # other ways a title may name it (lower case)
    readings: tuple[Reading, ...]  # accepted value forms and realistic ranges
    typical: str  # a realistic value as a dashboard would show it
    trend_max: float = 50.0  # largest realistic |trend.value| (percent change per period)
    trend_min: float = 0.1  # smallest change a dashboard shows for it (uptime moves by 0.01)


def _r(kind: str, low: float, high: float, floor: float, ceiling: float) -> Reading:
    return Reading(kind, low, high, floor, ceiling)


_MONEY_TOTAL = _r("money", 1e3, 1e10, 100, 1e12)  # revenue or costs of a business for a period
_WEB_COUNT = _r("count", 1e3, 1e9, 50, 1e11)  # page views, visits, downloads
GROWTH_TREND_MAX = 300.0  # counts that can double or triple in a period (a launch, a campaign)

METRICS: tuple[Metric, ...] = (
    Metric("revenue", Unit.CURRENCY, Polarity.HIGHER_IS_BETTER,
           ("dollar-sign", "circle-dollar-sign", "banknote", "trending-up", "wallet"),
           ("sales", "income", "earnings", "mrr", "arr", "monthly recurring revenue",
            "annual recurring revenue", "recurring revenue", "gmv", "gross merchandise value",
            "total revenue", "net revenue", "gross revenue"),
           (_MONEY_TOTAL,), "$1.24M"),
    Metric("user growth", Unit.COUNT_OR_PERCENT, Polarity.HIGHER_IS_BETTER,
           ("users", "user-plus", "trending-up", "chart-line"),
           ("new users", "users", "user acquisition", "new signups", "signups", "sign ups"),
           (_r("percent", -20, 150, -90, 1000), _r("count", 10, 1e7, 1, 1e9)), "+8.4%",
           GROWTH_TREND_MAX),
    Metric("conversion rate", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("percent", "target", "mouse-pointer-click", "trending-up", "shopping-cart"),
           ("conversion", "conversions", "cvr", "conversion ratio"),
           (_r("percent", 0.5, 30, 0.05, 80),), "3.2%"),
    Metric("customer acquisition cost", Unit.CURRENCY, Polarity.LOWER_IS_BETTER,
           ("user-plus", "dollar-sign", "circle-dollar-sign", "wallet", "banknote"),
           ("cac", "acquisition cost", "cost per acquisition", "cpa", "cost per customer",
            "customer acquisition costs"),
           (_r("money", 5, 2000, 0.5, 20000),), "$142"),
    Metric("average order value", Unit.CURRENCY, Polarity.HIGHER_IS_BETTER,
           ("shopping-cart", "shopping-bag", "receipt", "dollar-sign", "circle-dollar-sign"),
           ("aov", "avg order value", "avg. order value", "order value", "basket size",
            "average basket size"),
           (_r("money", 10, 1000, 1, 10000),), "$86.40"),
    Metric("customer lifetime value", Unit.CURRENCY, Polarity.HIGHER_IS_BETTER,
           ("gem", "dollar-sign", "heart-handshake", "users", "circle-dollar-sign"),
           ("clv", "ltv", "cltv", "lifetime value", "customer ltv", "customer value"),
           (_r("money", 50, 50000, 5, 1e6),), "$1,850"),
    Metric("page views", Unit.COUNT, Polarity.HIGHER_IS_BETTER,
           ("eye", "file-text", "chart-bar", "monitor"),
           ("pageviews", "views", "page view", "page impressions", "impressions"),
           (_WEB_COUNT,), "482,310", GROWTH_TREND_MAX),
    Metric("bounce rate", Unit.PERCENT, Polarity.LOWER_IS_BETTER,
           ("log-out", "undo-2", "arrow-left", "trending-down", "percent"), ("bounce",),
           (_r("percent", 20, 90, 5, 100),), "41.3%"),
    Metric("churn rate", Unit.PERCENT, Polarity.LOWER_IS_BETTER,
           ("user-minus", "user-x", "trending-down", "log-out", "percent"),
           ("churn", "customer churn", "attrition", "attrition rate", "customer attrition",
            "cancellation rate", "customer churn rate"),
           (_r("percent", 0.5, 15, 0.05, 50),), "2.7%"),
    Metric("active users", Unit.COUNT, Polarity.HIGHER_IS_BETTER,
           ("users", "user-check", "activity"),
           ("dau", "mau", "wau", "active user", "users", "daily active users",
            "monthly active users", "weekly active users"),
           (_r("count", 100, 1e9, 5, 1e10),), "18,240", GROWTH_TREND_MAX),
    Metric("session duration", Unit.DURATION, Polarity.HIGHER_IS_BETTER,
           ("clock", "timer", "hourglass", "history"),
           ("session length", "avg session duration", "average session duration",
            "time on site", "avg. session duration", "average session length", "time on page"),
           (_r("duration", 10, 3600, 1, 14400),), "4m 32s"),
    Metric("retention rate", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("user-check", "repeat", "refresh-cw", "heart", "percent"),
           ("retention", "customer retention", "user retention", "customer retention rate"),
           (_r("percent", 20, 99.5, 5, 100),), "87.5%"),
    Metric("engagement rate", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("heart", "thumbs-up", "message-circle", "activity", "percent"),
           ("engagement", "user engagement"),
           (_r("percent", 0.5, 60, 0.05, 100),), "6.8%"),
    Metric("click-through rate", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("mouse-pointer-click", "mouse-pointer", "pointer", "percent"),
           ("ctr", "click through rate", "clickthrough rate"),
           (_r("percent", 0.1, 10, 0.01, 40),), "2.4%"),
    Metric("inventory turnover", Unit.RATIO, Polarity.HIGHER_IS_BETTER,
           ("package", "boxes", "warehouse", "refresh-cw", "repeat"),
           ("inventory turns", "stock turnover", "turnover", "inventory turnover ratio",
            "stock turns"),
           (_r("ratio", 1, 50, 0.1, 200),), "6.2x"),
    Metric("profit margin", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("percent", "trending-up", "chart-pie", "dollar-sign", "piggy-bank"),
           ("margin", "net margin", "gross margin", "net profit margin", "operating margin",
            "gross profit margin"),
           (_r("percent", -20, 60, -100, 95),), "18.6%"),
    Metric("return on investment", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("trending-up", "chart-line", "piggy-bank", "percent", "dollar-sign"),
           ("roi",), (_r("percent", -50, 500, -100, 2000), _r("ratio", 0.5, 6, 0.05, 21)),
           "142%", GROWTH_TREND_MAX),
    Metric("customer satisfaction", Unit.SCORE, Polarity.HIGHER_IS_BETTER,
           ("smile", "star", "thumbs-up", "heart", "message-square-heart"),
           ("csat", "satisfaction", "customer satisfaction score", "csat score",
            "satisfaction score"),
           (_r("percent", 60, 100, 20, 100), _r("score", 3, 5, 1, 5), _r("score", 60, 100, 20, 100),
            _r("score", 6, 10, 2, 10)), "4.6/5"),
    Metric("net promoter score", Unit.SCORE, Polarity.HIGHER_IS_BETTER,
           ("thumbs-up", "star", "smile", "megaphone", "users"),
           ("nps", "promoter score", "nps score"), (_r("score", -20, 80, -100, 100),), "+42"),
    Metric("sales growth", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("trending-up", "chart-line", "chart-column-increasing", "shopping-cart"),
           ("sales", "growth", "revenue growth", "sales increase"),
           (_r("percent", -20, 100, -90, 1000),), "+12.3%", GROWTH_TREND_MAX),
    Metric("market share", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("chart-pie", "globe", "percent", "target", "chart-column"), ("share",),
           (_r("percent", 0.5, 60, 0.01, 100),), "14.2%"),
    Metric("employee productivity", Unit.RATIO, Polarity.HIGHER_IS_BETTER,
           ("briefcase", "user-cog", "gauge", "activity", "users"),
           ("productivity", "output per employee", "revenue per employee", "workforce productivity",
            "labor productivity", "labour productivity", "sales per employee"),
           (_r("money", 20, 1e6, 5, 1e7), _r("percent", 50, 150, 10, 300), _r("ratio", 0.5, 5, 0.05, 50),
            _r("count", 1, 1e5, 0.1, 1e7)), "$184K per employee"),
    Metric("website traffic", Unit.COUNT, Polarity.HIGHER_IS_BETTER,
           ("globe", "eye", "users", "activity", "chart-line"),
           ("traffic", "visits", "visitors", "sessions", "site visits", "web traffic",
            "unique visitors", "site traffic"),
           (_WEB_COUNT,), "126,480", GROWTH_TREND_MAX),
    Metric("operational costs", Unit.CURRENCY, Polarity.LOWER_IS_BETTER,
           ("receipt", "wallet", "dollar-sign", "trending-down", "factory", "banknote"),
           ("operating costs", "opex", "operational cost", "operating expenses", "costs",
            "operational expenses", "operating cost"),
           (_MONEY_TOTAL,), "$842,300"),
    Metric("customer support tickets", Unit.COUNT, Polarity.NEUTRAL,
           ("ticket", "headset", "life-buoy", "message-square", "inbox"),
           ("support tickets", "tickets", "support requests", "support cases", "help desk tickets"),
           (_r("count", 10, 1e6, 1, 1e8),), "1,284", GROWTH_TREND_MAX),
    Metric("app downloads", Unit.COUNT, Polarity.HIGHER_IS_BETTER,
           ("download", "smartphone", "cloud-download", "arrow-down-to-line"),
           ("downloads", "installs", "app installs", "app download"),
           (_r("count", 100, 1e9, 5, 1e10),), "64,900", GROWTH_TREND_MAX),
    Metric("subscription renewals", Unit.COUNT_OR_PERCENT, Polarity.HIGHER_IS_BETTER,
           ("refresh-cw", "repeat", "rotate-cw", "calendar-check", "credit-card"),
           ("renewals", "renewal rate", "subscription renewal", "subscription renewal rate"),
           (_r("count", 10, 1e7, 1, 1e9), _r("percent", 40, 99, 5, 100)), "3,412"),
    Metric("delivery time", Unit.DURATION, Polarity.LOWER_IS_BETTER,
           ("truck", "clock", "timer", "package"),
           ("avg delivery time", "average delivery time", "delivery", "shipping time",
            "time to deliver", "lead time", "delivery times"),
           (_r("duration", 900, 14 * 86400, 60, 60 * 86400),), "2.4 days"),
    Metric("error rate", Unit.PERCENT, Polarity.LOWER_IS_BETTER,
           ("triangle-alert", "circle-alert", "bug", "circle-x", "octagon-alert"),
           ("errors", "failure rate", "error percentage"),
           (_r("percent", 0.01, 5, 0, 50),), "0.42%", trend_min=0.01),
    Metric("uptime percentage", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("server", "activity", "circle-check", "shield-check", "wifi"),
           ("uptime", "availability", "system uptime", "service availability"),
           (_r("percent", 95, 100, 80, 100),), "99.95%", trend_min=0.01),
)  # fmt: skip

METRICS_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}


@dataclass(frozen=True)
class Request:
    """What a prompt asks for. Serialised into every rollout group as `metric_card.request`."""

    metric: str
    domain: str
    period: str
    template: int  # index into TEMPLATES
    prompt: str

    @property
    def metric_info(self) -> Metric:
        return METRICS_BY_NAME[self.metric]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Request:
        return cls(
            metric=data["metric"],
            domain=data["domain"],
            period=data["period"],
            template=int(data.get("template", -1)),
            prompt=data.get("prompt", ""),
        )


def make_request(metric: str, domain: str, period: str, template: int) -> Request:
    prompt = TEMPLATES[template].format(metric=metric, domain=domain, period=period)
    return Request(metric=metric, domain=domain, period=period, template=template, prompt=prompt)


@lru_cache(maxsize=1)
def _template_patterns() -> tuple[re.Pattern[str], ...]:
    alt = {
        "metric": "|".join(re.escape(m.name) for m in METRICS),
        "domain": "|".join(re.escape(d) for d in DOMAINS),
        "period": "|".join(re.escape(p) for p in TIME_PERIODS),
    }
    patterns = []
    for template in TEMPLATES:
        regex = re.escape(template)
        for field, choices in alt.items():
            regex = regex.replace(re.escape("{" + field + "}"), f"(?P<{field}>{choices})")
        patterns.append(re.compile(regex))
    return tuple(patterns)


@lru_cache(maxsize=4096)
def parse_request(prompt: str) -> Request | None:
    """Read the request back from a prompt made from the catalog; None when it isn't one."""
    text = prompt.strip()
    for index, pattern in enumerate(_template_patterns()):
        match = pattern.fullmatch(text)
        if match:
            return Request(
                metric=match["metric"],
                domain=match["domain"],
                period=match["period"],
                template=index,
                prompt=text,
            )
    return None


def _stable_hash(*parts: str) -> int:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


# One (metric, domain, period) combination in EVAL_POOL_MODULUS is held out for evaluation, under
# every template, so no eval request is ever seen in training, whatever the eval size or the seed.
EVAL_POOL_MODULUS = 10


def is_held_out(metric: str, domain: str, period: str) -> bool:
    return _stable_hash("eval", metric, domain, period) % EVAL_POOL_MODULUS == 0


@lru_cache(maxsize=1)
def _all_triples() -> tuple[tuple[str, str, str], ...]:
    return tuple((m.name, d, p) for m in METRICS for d in DOMAINS for p in TIME_PERIODS)


@lru_cache(maxsize=1)
def training_triples() -> tuple[tuple[str, str, str], ...]:
    return tuple(t for t in _all_triples() if not is_held_out(*t))


@lru_cache(maxsize=1)
def held_out_triples() -> tuple[tuple[str, str, str], ...]:
    return tuple(t for t in _all_triples() if is_held_out(*t))


def eval_requests(size: int) -> list[Request]:
    """The fixed held-out eval set: the same `size` requests on every machine and every run."""
    pool = sorted(held_out_triples(), key=lambda t: _stable_hash("order", *t))
    if size > len(pool):
        raise ValueError(f"eval set size {size} is larger than the held-out pool ({len(pool)})")
    return [
        make_request(m, d, p, _stable_hash("template", m, d, p) % len(TEMPLATES))
        for m, d, p in pool[:size]
    ]


class TrainingPrompts:
    """An endless, seeded stream of training requests (never one from the held-out pool)."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._triples = training_triples()

    def __iter__(self) -> TrainingPrompts:
        return self

    def __next__(self) -> Request:
        metric, domain, period = self._rng.choice(self._triples)
        return make_request(metric, domain, period, self._rng.randrange(len(TEMPLATES)))


# --- what the reward reads: the instructions' example card and the words that name things ------


def _example_props() -> dict:
    """The props of the example card in SYSTEM_PROMPT: a policy that copies them has learnt the
    instructions' placeholder, not the request (the reward pays nothing for them)."""
    start = SYSTEM_PROMPT.index("```json") + len("```json")
    return json.loads(SYSTEM_PROMPT[start : SYSTEM_PROMPT.index("```", start)])["props"]


EXAMPLE_PROPS: dict = _example_props()

MONTHS: tuple[str, ...] = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
MONTH_ABBREVIATIONS: dict[str, int] = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
    "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
# Month names that are also ordinary words: they name a month only capitalised, after a
# preposition ("in may") or before a year ("may 2023").
AMBIGUOUS_MONTHS = frozenset({"may", "march", "mar", "jan", "dec"})
MONTH_PREPOSITIONS = frozenset({"in", "during", "for", "of", "since", "from", "through", "until"})
# Relative periods, grouped by what they mean; hyphens are read as spaces. ("Monthly" or "annual"
# say how a rate is counted, not which period the card covers: they are not here.)
RELATIVE_PERIODS: dict[str, tuple[str, ...]] = {
    "day": ("last 24 hours", "past 24 hours", "previous 24 hours", "24 hours", "24 hrs", "24h",
            "24 hour", "today", "past day", "last day"),
    "week": ("last 7 days", "past 7 days", "previous 7 days", "7 days", "seven days", "7 day",
             "past week", "last week", "this week", "current week", "week to date"),
    "month30": ("last 30 days", "past 30 days", "previous 30 days", "30 days", "thirty days",
                "30 day", "past month"),
    "prev_month": ("last month", "previous month", "prior month"),
    "month": ("this month", "current month", "month to date", "mtd"),
    "quarter": ("this quarter", "current quarter", "quarter to date", "qtd", "past quarter"),
    "prev_quarter": ("last quarter", "previous quarter", "prior quarter"),
    "year": ("this year", "current year", "year to date", "ytd", "so far this year",
             "past year", "past 12 months", "last 12 months"),
    "prev_year": ("last year", "previous year", "prior year"),
}  # fmt: skip
# Which relative mentions fit which requested relative period (besides the same group).
RELATIVE_FITS: dict[str, frozenset[str]] = {
    "month30": frozenset({"month", "prev_month"}), "month": frozenset({"month30"}),
}  # fmt: skip
# The catalog's relative periods as RELATIVE_PERIODS groups.
PERIOD_TO_RELATIVE: dict[str, str] = {
    "this month": "month", "this quarter": "quarter", "this year": "year", "year-to-date": "year",
    "last 30 days": "month30", "last 7 days": "week", "last 24 hours": "day",
}  # fmt: skip
QUARTER_WORDS: dict[str, int] = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4,
}  # fmt: skip
# Words before a period that make it the baseline of a comparison ("down from 3.8% in August",
# "vs last month"), not the period the card reports on.
COMPARISON_CUES = frozenset(
    {"from", "vs", "versus", "compared", "than", "since", "against", "relative"}
)
# Words that say a domain: any of them earns the "domain named" credit.
DOMAIN_WORDS: dict[str, tuple[str, ...]] = {
    "e-commerce": ("e commerce", "ecommerce", "online store", "online shop", "online retail"),
    "finance": ("finance", "financial", "fintech", "banking", "bank"),
    "healthcare": ("healthcare", "health care", "health", "patient", "patients", "hospital",
                   "hospitals", "clinic", "clinics", "medical"),
    "education": ("education", "educational", "student", "students", "school", "schools",
                  "course", "courses", "learning", "learners", "edtech"),
    "real estate": ("real estate", "property", "properties", "listing", "listings", "realty"),
    "social media": ("social media", "social network", "social platform", "followers"),
    "marketing": ("marketing", "campaign", "campaigns"),
    "transportation": ("transportation", "transport", "logistics", "fleet", "transit"),
    "manufacturing": ("manufacturing", "manufacturer", "production", "factory", "factories",
                      "plant", "plants"),
    "hospitality": ("hospitality", "hotel", "hotels", "guest", "guests", "booking", "bookings",
                    "restaurant", "restaurants"),
    "technology": ("technology", "tech", "software", "saas"),
    "energy": ("energy", "power", "utility", "utilities", "electricity"),
    "retail": ("retail", "retailer", "store", "stores", "shop", "shops", "shoppers"),
    "agriculture": ("agriculture", "agricultural", "agri", "farm", "farms", "farming", "crop",
                    "crops"),
    "media": ("media", "streaming", "publishing", "publisher", "news"),
    "telecommunications": ("telecommunications", "telecommunication", "telecom", "telecoms",
                           "telco"),
    "insurance": ("insurance", "insurer", "policy", "policies", "policyholder", "policyholders",
                  "claims", "premiums"),
    "entertainment": ("entertainment", "gaming", "movie", "movies", "concert", "concerts"),
}  # fmt: skip
# Words that name a domain outright, or say it unmistakably: naming another domain than the
# requested one this way is a contradiction (the other DOMAIN_WORDS, like "store" or "policy",
# may be incidental and only earn credit).
DOMAIN_NAMES: dict[str, str] = {
    phrase: domain
    for domain, phrases in {
        "e-commerce": ("e commerce", "ecommerce", "online store", "online shop", "online retail"),
        "finance": ("finance", "financial", "fintech", "banking"),
        "healthcare": ("healthcare", "health care", "patient", "patients", "hospital",
                       "hospitals", "clinic", "clinics", "medical"),
        "education": ("education", "educational", "student", "students", "school", "schools",
                      "learners", "edtech"),
        "real estate": ("real estate", "realty"),
        "social media": ("social media", "social network", "followers"),
        "marketing": ("marketing",),
        "transportation": ("transportation", "transport", "logistics", "fleet", "transit"),
        "manufacturing": ("manufacturing", "manufacturer", "factory", "factories"),
        "hospitality": ("hospitality", "hotel", "hotels", "restaurant", "restaurants"),
        "technology": ("technology", "saas"),
        "energy": ("energy", "electricity"),
        "retail": ("retail", "retailer"),
        "agriculture": ("agriculture", "agricultural", "farm", "farms", "farming", "crop",
                        "crops"),
        "media": ("media", "streaming", "publishing", "publisher"),
        "telecommunications": ("telecommunications", "telecommunication", "telecom",
                               "telecoms", "telco"),
        "insurance": ("insurance", "insurer", "policyholder", "policyholders"),
        "entertainment": ("entertainment", "gaming", "movie", "movies", "concert", "concerts"),
    }.items()
    for phrase in phrases
}  # fmt: skip
assert all(phrase in DOMAIN_WORDS[domain] for phrase, domain in DOMAIN_NAMES.items())
# Domains that overlap: naming one of these in a request for the key is no contradiction
# (a marketing team runs campaigns on social media).
DOMAIN_FITS: dict[str, frozenset[str]] = {
    "social media": frozenset({"media", "marketing"}), "e-commerce": frozenset({"retail"}),
    "retail": frozenset({"e-commerce"}), "media": frozenset({"entertainment", "social media"}),
    "entertainment": frozenset({"media"}), "marketing": frozenset({"social media"}),
}  # fmt: skip
# Title words that are neither padding nor a metric: qualifiers a dashboard label often carries.
TITLE_QUALIFIERS = frozenset(
    {"total", "average", "avg", "mean", "median", "net", "gross", "overall", "current", "rate",
     "monthly", "weekly", "daily", "annual", "yearly", "quarterly", "customer", "user", "score",
     "of", "for", "in", "the", "and", "per", "by", "our", "on", "a", "an", "to", "kpi"}
)  # fmt: skip
# Words of a metric's name that do not identify it: a title made of them earns no partial credit.
GENERIC_METRIC_WORDS = frozenset(
    {"of", "on", "the", "a", "an", "and", "per", "rate", "customer", "average", "total", "value",
     "score", "time", "percentage"}
)  # fmt: skip
# Words that carry no content of their own when judging whether a description is the model's
# own sentence.
FUNCTION_WORDS = frozenset(
    {"the", "and", "for", "our", "with", "this", "that", "from", "into", "over", "across", "per",
     "are", "was", "were", "has", "have", "its", "their", "all", "any", "each", "than", "vs",
     "during", "within", "showing", "shows", "show", "displays", "display", "metric", "metrics",
     "card", "dashboard", "data", "statistics", "stats", "value", "period"}
)  # fmt: skip
