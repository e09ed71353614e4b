"""The facts the semantic checks read, computed once per card: `CardFacts` (what the card says)
and `RequestFacts` (what was asked).

This is the reward's only fast path: strings that repeat across completions (titles, values,
icons, prompts) have their facts memoised in `BoundedMemo`s, bounded by the characters they hold,
not by entries, so a policy that writes megabyte titles cannot grow them. Every field is a plain
function of the strings; memoised or not, the facts are the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

from metric_cards.catalog import (
    FUNCTION_WORDS,
    METRICS_BY_NAME,
    MONTHS,
    PERIOD_TO_RELATIVE,
    SYSTEM_PROMPT,
    Metric,
    Request,
)
from metric_cards.icons import icon_match
from metric_cards.reward.mentions import (
    Mentions,
    metric_phrases,
    scan_mentions,
    singulars,
    words_of,
)
from metric_cards.reward.quantity import Quantity, read_quantity
from metric_cards.schema import ICON_MAX_LENGTH

__all__ = [
    "BoundedMemo",
    "CardFacts",
    "PeriodWanted",
    "RequestFacts",
    "TitleFacts",
    "card_facts",
    "request_facts",
]

K = TypeVar("K")
V = TypeVar("V")


class BoundedMemo(Generic[K, V]):
    """A memo of `compute(key)` for string-like keys holding at most `max_chars` characters of
    keys; keys longer than `max_key_chars` are computed and not kept. When full it starts over
    (the strings that repeat come back within a few groups)."""

    def __init__(
        self, compute: Callable[[K], V], max_chars: int = 1 << 20, max_key_chars: int = 512
    ) -> None:
        self.compute = compute
        self.max_chars = max_chars
        self.max_key_chars = max_key_chars
        self.chars = 0
        self.table: dict[K, V] = {}

    def __call__(self, key: K) -> V:
        found = self.table.get(key, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        return self.keep(key, self.compute(key))

    def keep(self, key: K, value: V) -> V:
        """Remember `value` (which must equal `compute(key)`) for `key`; returns it. For a caller
        that computes the value from data it already holds on a miss (`self.table.get` first)."""
        size = len(key) + 16 if key.__class__ is str else _size(key)  # type: ignore[arg-type]
        if size <= self.max_key_chars:
            if self.chars + size > self.max_chars:
                self.clear()
            self.table[key] = value
            self.chars += size
        return value

    def clear(self) -> None:
        self.table.clear()
        self.chars = 0


_MISSING = object()


def _size(key: Any) -> int:
    """Characters a key holds, plus a fixed cost per part (a tuple's strings; anything else in
    it, such as a trend's number and sign or a request, counts as one part)."""
    if key.__class__ is str:
        return len(key) + 16
    if isinstance(key, tuple):
        # a plain loop: a generator and sum() cost more than the few parts a key has
        size = 16 * len(key)
        for part in key:
            if part.__class__ is str:
                size += len(part)
        return size
    return 16


# --- what was asked ---

COPY_RUN = 6  # consecutive words shared with the prompt that count as copied from it


class PeriodWanted(NamedTuple):
    kind: str  # "month" | "quarter" | "relative"
    month: int = 0
    quarter: int = 0
    year: int = 0
    relative: str = ""  # a catalog.RELATIVE_PERIODS group


class RequestFacts(NamedTuple):
    request: Request
    metric: Metric
    period: PeriodWanted
    prompt_words: frozenset[str]  # singular words of the user prompt
    # runs of COPY_RUN consecutive words of the user prompt and of the system prompt (text
    # copied from either is not the model's own), and the words those runs are made of
    prompt_runs: frozenset[tuple[str, ...]]
    run_words: frozenset[str]


def _period_wanted(period: str) -> PeriodWanted:
    if period in PERIOD_TO_RELATIVE:
        return PeriodWanted("relative", relative=PERIOD_TO_RELATIVE[period])
    if period[:1] == "Q" and period[1:2].isdigit() and period[3:].isdigit():
        return PeriodWanted("quarter", quarter=int(period[1]), year=int(period[3:]))
    if period.lower() in MONTHS:
        return PeriodWanted("month", month=MONTHS.index(period.lower()) + 1)
    return PeriodWanted("relative", relative=period.lower())  # not in the catalog: exact only


def _runs(words: tuple[str, ...]) -> frozenset[tuple[str, ...]]:
    return frozenset(tuple(words[at : at + COPY_RUN]) for at in range(len(words) - COPY_RUN + 1))


_SYSTEM_WORDS_IN_ORDER = singulars(words_of(SYSTEM_PROMPT))
_SYSTEM_WORDS = frozenset(_SYSTEM_WORDS_IN_ORDER)
_SYSTEM_RUNS = _runs(_SYSTEM_WORDS_IN_ORDER)


def _request_facts(request: Request) -> RequestFacts | None:
    metric = METRICS_BY_NAME.get(request.metric)
    if metric is None:
        return None
    words = singulars(words_of(request.prompt))
    return RequestFacts(
        request=request,
        metric=metric,
        period=_period_wanted(request.period),
        prompt_words=frozenset(words),
        prompt_runs=_runs(words) | _SYSTEM_RUNS,
        run_words=frozenset(words) | _SYSTEM_WORDS,
    )


_REQUESTS: BoundedMemo[Request, RequestFacts | None] = BoundedMemo(_request_facts, 1 << 20)


def request_facts(request: Request | None) -> RequestFacts | None:
    """Facts of a catalog request; None for no request or a metric not in the catalog."""
    if request is None:
        return None
    return _REQUESTS(request)


# --- what the card says ---


class TitleFacts(NamedTuple):
    words: tuple[str, ...]  # singular lower-case words
    metrics: tuple[frozenset[str], ...]  # per metric phrase found: the metrics it may name
    spans: tuple[tuple[int, int], ...]  # per metric phrase found: its (start, end) word index
    loose_words: tuple[str, ...]  # words outside any metric phrase
    mentions: Mentions


# Only this much of a title or description is read: the schema layer already fails longer ones.
SCANNED_CHARS = 2000


def _title_facts(title: str) -> TitleFacts:
    title = title[:SCANNED_CHARS]
    raw = words_of(title)
    words = singulars(raw)
    found = metric_phrases(words)
    # the phrases are in order and do not overlap: the loose words are the gaps between them
    loose_words: tuple[str, ...] = ()
    gap_start = 0
    for start, end, _ in found:
        loose_words += words[gap_start:start]
        gap_start = end
    loose_words += words[gap_start:]
    return TitleFacts(  # positional, in field order, as in card_facts
        words,
        tuple([metrics for _, _, metrics in found]),  # metrics
        tuple([(start, end) for start, end, _ in found]),  # spans
        loose_words,
        scan_mentions(title, raw),  # mentions
    )


_TITLES: BoundedMemo[str, TitleFacts] = BoundedMemo(_title_facts)
_VALUES: BoundedMemo[str, Quantity] = BoundedMemo(read_quantity)


def _icon_facts(icon: str) -> tuple[str | None, str]:
    if len(icon) > ICON_MAX_LENGTH:
        return None, "unknown"
    return icon_match(icon)


_ICONS: BoundedMemo[str, tuple[str | None, str]] = BoundedMemo(_icon_facts)


class DescriptionFacts(NamedTuple):
    text: str
    words: tuple[str, ...]  # singular lower-case words
    content_words: frozenset[str]  # words of 3+ letters that are not function words
    metrics: tuple[
        tuple[int, int, frozenset[str]], ...
    ]  # metric names/aliases: (start, end, metrics)
    mentions: Mentions


def _description_facts(text: str) -> DescriptionFacts:
    text = text[:SCANNED_CHARS]
    raw = words_of(text)
    words = singulars(raw)
    content = frozenset(
        [word for word in words if len(word) >= 3 and word not in FUNCTION_WORDS and word.isalpha()]
    )
    metrics = tuple(metric_phrases(words))
    return DescriptionFacts(text, words, content, metrics, scan_mentions(text, raw))


_DESCRIPTIONS: BoundedMemo[str, DescriptionFacts] = BoundedMemo(_description_facts, 1 << 20)


class CardFacts(NamedTuple):
    """What one card's props say, read once. A field is None when the prop is absent; `*_raw`
    keeps the prop as written for props of the wrong type."""

    title: TitleFacts | None
    title_raw: Any
    value: Quantity | None
    value_raw: Any
    trend_raw: Any
    trend_value: float | None  # a finite number, or None
    trend_positive: bool | None
    icon: str | None  # the Lucide name
    icon_kind: str  # how it was matched ("exact", "alias", ...; "absent")
    icon_raw: Any
    description: DescriptionFacts | None
    description_raw: Any
    props: dict  # the props as written, for a check that needs a prop no field here reads


def trend_number(trend: Any) -> tuple[float | None, bool | None]:
    """What the trend check reads of a trend: a finite number and a boolean, or None for each
    (also the trend's part of the per-card verdict memo's key)."""
    if not isinstance(trend, dict):
        return None, None
    change = trend.get("value")
    positive = trend.get("isPositive")
    number: float | None = None
    if isinstance(change, (int, float)) and not isinstance(change, bool):
        try:
            number = float(change)
        except OverflowError:
            number = None
        if number is not None and not math.isfinite(number):
            number = None
    return number, positive if isinstance(positive, bool) else None


def card_facts(props: dict) -> CardFacts:
    """The facts of a card's props (a dict)."""
    title = props.get("title")
    value = props.get("value")
    trend = props.get("trend")
    icon = props.get("icon")
    description = props.get("description")
    trend_value, trend_positive = trend_number(trend)
    if isinstance(icon, str):
        icon_name, icon_kind = _ICONS(icon)
    else:
        icon_name, icon_kind = None, "absent" if icon is None else "unknown"
    # positional, in field order: a NamedTuple's keyword call costs several times more
    return CardFacts(
        _TITLES(title) if isinstance(title, str) else None,  # title
        title,  # title_raw
        _VALUES(value) if isinstance(value, str) else None,  # value
        value,  # value_raw
        trend,  # trend_raw
        trend_value,
        trend_positive,
        icon_name,  # icon
        icon_kind,
        icon,  # icon_raw
        _DESCRIPTIONS(description) if isinstance(description, str) else None,  # description
        description,  # description_raw
        props,
    )


# What completions contain (a benchmark's "cold" clears these; layers.py adds its memo of whole
# cards' verdicts) ...
CONTENT_MEMOS: list[BoundedMemo[Any, Any]] = [_TITLES, _VALUES, _ICONS, _DESCRIPTIONS]
# ... and what the env asks: one entry per prompt, shared by the K completions of its group.
MEMOS: list[BoundedMemo[Any, Any]] = [_REQUESTS, *CONTENT_MEMOS]
