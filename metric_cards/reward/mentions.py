"""What a title or description names: metrics, periods and domains, found as word sequences.

Text is cut into lower-case words by one single-class regex, and phrases are looked up as word
tuples, longest first, at each position (a dict lookup per length): linear in the text. The word
lists live in `metric_cards.catalog`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from metric_cards.catalog import (
    AMBIGUOUS_MONTHS,
    COMPARISON_CUES,
    DOMAIN_NAMES,
    DOMAIN_WORDS,
    METRICS,
    MONTH_ABBREVIATIONS,
    MONTH_PREPOSITIONS,
    MONTHS,
    QUARTER_WORDS,
    RELATIVE_PERIODS,
)

__all__ = [
    "Mentions",
    "PeriodMention",
    "metric_phrases",
    "scan_mentions",
    "singular",
    "singulars",
    "words_of",
]

_WORD = re.compile(r"[^\W_]+")
_BASELINE_WINDOW = 6  # how far before a period a comparison cue is looked for
# Words that may stand between a comparison cue and the period it compares with ("down from
# 3.8% in August", "compared to the same period last year"); numbers may too.
_BASELINE_LINKS = frozenset(
    {"to", "with", "the", "in", "of", "same", "period", "time", "a", "an", "during", "for", "at"}
)


def words_of(text: str) -> list[str]:
    """Lower-case words and numbers ("Q3 2023": "q3", "2023"; "e-commerce": "e", "commerce")."""
    return _WORD.findall(text.lower())


def singular(word: str) -> str:
    """A crude singular, enough to match "Conversions" to "conversion" and "costs" to "cost"."""
    if len(word) > 3 and word[-1] == "s" and word[-2] not in "su" and not word.endswith("is"):
        return word[:-1]
    return word


_SINGULARS: dict[str, str] = {}
_MAX_SINGULARS = 50_000  # words of up to 32 characters: a bound of about 3 MB


def singulars(words: list[str]) -> tuple[str, ...]:
    """`singular` of each word (looked up: the same words come back in every card)."""
    known = _SINGULARS
    out = []
    for word in words:
        found = known.get(word)
        if found is None:
            found = singular(word)
            if len(word) <= 32:
                if len(known) >= _MAX_SINGULARS:
                    known.clear()
                known[word] = found
        out.append(found)
    return tuple(out)


class _PhraseIndex:
    """Phrases as word tuples -> payload; `find` returns the longest match at each position."""

    def __init__(self, phrases: Iterable[tuple[tuple[str, ...], Any]]) -> None:
        self.table: dict[tuple[str, ...], Any] = {}
        for words, payload in phrases:
            self.table[words] = payload
        # first word -> the lengths of the phrases it starts, longest first
        sizes: dict[str, set[int]] = {}
        for words in self.table:
            sizes.setdefault(words[0], set()).add(len(words))
        self.sizes = {word: tuple(sorted(found, reverse=True)) for word, found in sizes.items()}

    def find(self, words: Sequence[str]) -> list[tuple[int, int, Any]]:
        found = []
        sizes_of, table = self.sizes, self.table
        at, count = 0, len(words)
        while at < count:
            sizes = sizes_of.get(words[at])
            if sizes is not None:
                for size in sizes:
                    if at + size > count:
                        continue
                    payload = (
                        table[(words[at],)]
                        if size == 1
                        else table.get(tuple(words[at : at + size]))
                    )
                    if payload is not None:
                        found.append((at, at + size, payload))
                        at += size
                        break
                else:
                    at += 1
            else:
                at += 1
        return found


def _metric_index() -> _PhraseIndex:
    names: dict[tuple[str, ...], set[str]] = {}
    for metric in METRICS:
        for phrase in (metric.name, *metric.aliases):
            key = tuple(singular(word) for word in words_of(phrase))
            names.setdefault(key, set()).add(metric.name)
    return _PhraseIndex((key, frozenset(value)) for key, value in names.items())


_METRICS = _metric_index()


def metric_phrases(words: Sequence[str]) -> list[tuple[int, int, frozenset[str]]]:
    """(start, end, metrics it may name) for each metric name or alias among singular `words`."""
    return _METRICS.find(words)


class PeriodMention(NamedTuple):
    kind: str  # "month" | "quarter" | "year" | "relative"
    payload: Any  # month number, (quarter, year or None), year, relative group
    written: str
    baseline: bool  # named as the baseline of a comparison ("down from 3.8% in August")


class Mentions(NamedTuple):
    periods: tuple[PeriodMention, ...]
    domains: frozenset[str]  # every domain any of whose words appear
    domain_names: tuple[tuple[str, str], ...]  # (domain, as written) for domains named outright


NO_MENTIONS = Mentions((), frozenset(), ())


def _context_index() -> _PhraseIndex:
    entries: list[tuple[tuple[str, ...], Any]] = []
    for domain, phrases in DOMAIN_WORDS.items():
        for phrase in phrases:
            entries.append((tuple(words_of(phrase)), ("domain", domain, DOMAIN_NAMES.get(phrase))))
    for group, phrases in RELATIVE_PERIODS.items():
        for phrase in phrases:
            entries.append((tuple(words_of(phrase)), ("relative", group, None)))
    for index, month in enumerate(MONTHS, start=1):
        entries.append(((month,), ("month", index, None)))
    for abbreviation, index in MONTH_ABBREVIATIONS.items():
        entries.append(((abbreviation,), ("month", index, None)))
    for quarter in range(1, 5):
        entries.append(((f"q{quarter}",), ("quarter", quarter, None)))
    for word, quarter in QUARTER_WORDS.items():
        entries.append(((word, "quarter"), ("quarter", quarter, None)))
    return _PhraseIndex(entries)


_CONTEXT = _context_index()
_YEAR_CUES = frozenset({"in", "for", "during", "of", "throughout", "fy"})


def _year(word: str) -> int | None:
    """2023 for "2023", "fy2023", "23" (after a quarter); None otherwise."""
    if word.startswith("fy"):
        word = word[2:]
    if len(word) == 4 and word.isdigit() and word[:2] in ("19", "20"):
        return int(word)
    if len(word) == 2 and word.isdigit():
        return 2000 + int(word)
    return None


def _is_baseline(words: list[str], start: int) -> bool:
    """The period at `start` is what the card compares with: a comparison cue comes before it
    with only numbers and linking words in between."""
    for at in range(start - 1, max(-1, start - 1 - _BASELINE_WINDOW), -1):
        word = words[at]
        if word in COMPARISON_CUES:
            return True
        if not (word in _BASELINE_LINKS or word[:1].isdigit()):
            return False
    return False


def scan_mentions(text: str, words: list[str] | None = None) -> Mentions:
    """The periods and domains `text` names (`words`: its `words_of`, if already cut)."""
    if words is None:
        words = words_of(text)
    found = _CONTEXT.find(words)
    maybe_years = "19" in text or "20" in text
    if not found and not maybe_years:
        return NO_MENTIONS  # most titles: a metric's name and a qualifier
    periods: list[PeriodMention] = []
    domains: set[str] = set()
    names: list[tuple[str, str]] = []
    for start, end, (kind, payload, name) in found:
        if kind == "domain":
            domains.add(payload)
            if name is not None:
                names.append((name, " ".join(words[start:end])))
            continue
        written = " ".join(words[start:end])
        year_word = words[end] if end < len(words) else ""
        if year_word in ("of", "fy") and end + 1 < len(words):
            year_word = words[end + 1]
        if kind == "month" and written in AMBIGUOUS_MONTHS:
            before = words[start - 1] if start else ""
            capitalised = written.capitalize() in text or written.upper() in text
            if not (capitalised or before in MONTH_PREPOSITIONS or _year(year_word)):
                continue
        if kind == "quarter":
            year = _year(year_word) if len(year_word) == 4 or year_word.startswith("fy") else None
            payload = (payload, year)
        periods.append(PeriodMention(kind, payload, written, _is_baseline(words, start)))
    # bare years that name a period ("in 2023", "FY2023"), not counts ("2023 users")
    if not maybe_years:
        return Mentions(tuple(periods), frozenset(domains), tuple(names))
    for at, word in enumerate(words):
        if len(word) < 4 or not (word[0] in "12" or word[:2] == "fy"):
            continue
        year = _year(word)
        if year is None:
            continue
        before = words[at - 1] if at else ""
        if before in _YEAR_CUES or word.startswith("fy"):
            periods.append(PeriodMention("year", year, word, _is_baseline(words, at)))
    return Mentions(tuple(periods), frozenset(domains), tuple(names))
