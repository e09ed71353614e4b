"""The prompt catalog: what a user can ask for, and how to read a request back from a prompt.

The domains, metric types, time periods and templates are the original environment's. Each metric
is extended with the unit its value should be written in, its polarity (is a rise good news?) and
Lucide icons that fit it; the semantic layer of the reward checks answers against these.
"""

from __future__ import annotations

import hashlib
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
    """How a metric's value should be written on the card."""

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
class Metric:
    name: str  # as it appears in prompts
    unit: Unit
    polarity: Polarity
    icons: tuple[str, ...]  # Lucide icon names that fit, best first
    aliases: tuple[str, ...] = ()  # other ways a title may name it (lower case)
    bounds: tuple[float, float] | None = None  # plausible range of the numeric value


METRICS: tuple[Metric, ...] = (
    Metric("revenue", Unit.CURRENCY, Polarity.HIGHER_IS_BETTER,
           ("dollar-sign", "circle-dollar-sign", "banknote", "trending-up", "wallet"),
           ("sales", "income", "earnings")),
    Metric("user growth", Unit.COUNT_OR_PERCENT, Polarity.HIGHER_IS_BETTER,
           ("users", "user-plus", "trending-up", "chart-line"), ("new users", "users")),
    Metric("conversion rate", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("percent", "target", "mouse-pointer-click", "trending-up", "shopping-cart"),
           ("conversion", "conversions"), (0, 100)),
    Metric("customer acquisition cost", Unit.CURRENCY, Polarity.LOWER_IS_BETTER,
           ("user-plus", "dollar-sign", "circle-dollar-sign", "wallet", "banknote"),
           ("cac", "acquisition cost", "cost per acquisition", "cpa")),
    Metric("average order value", Unit.CURRENCY, Polarity.HIGHER_IS_BETTER,
           ("shopping-cart", "shopping-bag", "receipt", "dollar-sign", "circle-dollar-sign"),
           ("aov", "avg order value", "avg. order value", "order value")),
    Metric("customer lifetime value", Unit.CURRENCY, Polarity.HIGHER_IS_BETTER,
           ("gem", "dollar-sign", "heart-handshake", "users", "circle-dollar-sign"),
           ("clv", "ltv", "cltv", "lifetime value")),
    Metric("page views", Unit.COUNT, Polarity.HIGHER_IS_BETTER,
           ("eye", "file-text", "chart-bar", "monitor"), ("pageviews", "views", "page view")),
    Metric("bounce rate", Unit.PERCENT, Polarity.LOWER_IS_BETTER,
           ("log-out", "undo-2", "arrow-left", "trending-down", "percent"), ("bounce",), (0, 100)),
    Metric("churn rate", Unit.PERCENT, Polarity.LOWER_IS_BETTER,
           ("user-minus", "user-x", "trending-down", "log-out", "percent"),
           ("churn", "customer churn"), (0, 100)),
    Metric("active users", Unit.COUNT, Polarity.HIGHER_IS_BETTER,
           ("users", "user-check", "activity"), ("dau", "mau", "wau", "active user")),
    Metric("session duration", Unit.DURATION, Polarity.HIGHER_IS_BETTER,
           ("clock", "timer", "hourglass", "history"),
           ("session length", "avg session duration", "average session duration", "time on site")),
    Metric("retention rate", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("user-check", "repeat", "refresh-cw", "heart", "percent"),
           ("retention", "customer retention"), (0, 100)),
    Metric("engagement rate", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("heart", "thumbs-up", "message-circle", "activity", "percent"),
           ("engagement",), (0, 100)),
    Metric("click-through rate", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("mouse-pointer-click", "mouse-pointer", "pointer", "percent"),
           ("ctr", "click through rate", "clickthrough rate"), (0, 100)),
    Metric("inventory turnover", Unit.RATIO, Polarity.HIGHER_IS_BETTER,
           ("package", "boxes", "warehouse", "refresh-cw", "repeat"),
           ("inventory turns", "stock turnover", "turnover"), (0, 100)),
    Metric("profit margin", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("percent", "trending-up", "chart-pie", "dollar-sign", "piggy-bank"),
           ("margin", "net margin", "gross margin", "net profit margin"), (-100, 100)),
    Metric("return on investment", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("trending-up", "chart-line", "piggy-bank", "percent", "dollar-sign"),
           ("roi",), (-100, 1000)),
    Metric("customer satisfaction", Unit.SCORE, Polarity.HIGHER_IS_BETTER,
           ("smile", "star", "thumbs-up", "heart", "message-square-heart"),
           ("csat", "satisfaction", "customer satisfaction score")),
    Metric("net promoter score", Unit.SCORE, Polarity.HIGHER_IS_BETTER,
           ("thumbs-up", "star", "smile", "megaphone", "users"),
           ("nps", "promoter score"), (-100, 100)),
    Metric("sales growth", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("trending-up", "chart-line", "chart-column-increasing", "shopping-cart"),
           ("sales", "growth", "revenue growth"), (-100, 1000)),
    Metric("market share", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("chart-pie", "globe", "percent", "target", "chart-column"), ("share",), (0, 100)),
    Metric("employee productivity", Unit.RATIO, Polarity.HIGHER_IS_BETTER,
           ("briefcase", "user-cog", "gauge", "activity", "users"),
           ("productivity", "output per employee", "revenue per employee")),
    Metric("website traffic", Unit.COUNT, Polarity.HIGHER_IS_BETTER,
           ("globe", "eye", "users", "activity", "chart-line"),
           ("traffic", "visits", "visitors", "sessions", "site visits")),
    Metric("operational costs", Unit.CURRENCY, Polarity.LOWER_IS_BETTER,
           ("receipt", "wallet", "dollar-sign", "trending-down", "factory", "banknote"),
           ("operating costs", "opex", "operational cost", "operating expenses", "costs")),
    Metric("customer support tickets", Unit.COUNT, Polarity.NEUTRAL,
           ("ticket", "headset", "life-buoy", "message-square", "inbox"),
           ("support tickets", "tickets", "support requests")),
    Metric("app downloads", Unit.COUNT, Polarity.HIGHER_IS_BETTER,
           ("download", "smartphone", "cloud-download", "arrow-down-to-line"),
           ("downloads", "installs", "app installs")),
    Metric("subscription renewals", Unit.COUNT_OR_PERCENT, Polarity.HIGHER_IS_BETTER,
           ("refresh-cw", "repeat", "rotate-cw", "calendar-check", "credit-card"),
           ("renewals", "renewal rate", "subscription renewal")),
    Metric("delivery time", Unit.DURATION, Polarity.LOWER_IS_BETTER,
           ("truck", "clock", "timer", "package"),
           ("avg delivery time", "average delivery time", "delivery", "shipping time")),
    Metric("error rate", Unit.PERCENT, Polarity.LOWER_IS_BETTER,
           ("triangle-alert", "circle-alert", "bug", "circle-x", "octagon-alert"),
           ("errors", "failure rate"), (0, 100)),
    Metric("uptime percentage", Unit.PERCENT, Polarity.HIGHER_IS_BETTER,
           ("server", "activity", "circle-check", "shield-check", "wifi"),
           ("uptime", "availability", "system uptime"), (0, 100)),
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
