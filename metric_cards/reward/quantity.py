"""The value grammar: read a card's value string as exactly one quantity, or say why not.

    value     := [approx] [sign] [currency] [sign] NUMBER [scale] [unit] [words]
    unit      := "%" | "percent" | "x" | "×" | "times" | currency-code | currency-symbol
               | "/" NUMBER | "out of" NUMBER | ":" NUMBER [":" NUMBER] | "'" NUMBER ["\""]
               | time-unit {NUMBER time-unit}
    words     := up to 3 words, one "per"/"/" word among them   ("1,204 new users",
                                                                "$210,000 revenue per employee")
    NUMBER    := digits with "," / "." thousands separators and one decimal mark; the mark is the
                 separator that comes last, unless a lone "," groups 3 digits ("4,8", "1.234,56",
                 "12,345")

The text is cut into tokens by one regex whose alternatives are single character classes (no
nested quantifiers), then read left to right by hand: linear time on any input. Anything left
over that holds a digit makes the value "several quantities"; other leftovers make it malformed.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

__all__ = ["Quantity", "read_quantity"]


class Quantity(NamedTuple):
    """One quantity read from a value string; `kind` is None when the string is not one.

    kind: "money" | "percent" | "ratio" | "duration" (number in seconds) | "fraction" (number is
    the percent of `scale`) | "colon" ("3:45": seconds if a time, a/b if a ratio; number holds
    the seconds, `ratio` the quotient) | "number" (a plain number, maybe followed by a noun).
    """

    kind: str | None
    number: float = math.nan
    ungrouped: bool = False  # 5+ integer digits written without thousands separators
    per: str = ""  # the denominator word ("employee" in "$184K per employee")
    problem: str = ""  # why it is not one quantity (kind None)
    ratio: float = math.nan  # for "colon": the quotient a/b


_TOKEN = re.compile(r"\d[\d.,]*|[^\W\d_]+|\s+|.", re.DOTALL)
_CURRENCY_SYMBOLS = frozenset("$€£¥₹₩₽₺₪₦")
_CURRENCY_CODES = frozenset(
    {"usd", "eur", "gbp", "jpy", "inr", "cad", "aud", "chf", "cny", "rmb", "sgd", "hkd", "nzd"}
    | {"dollar", "dollars", "euro", "euros", "us"}
)
_SIGNS = {"+": 1.0, "-": -1.0, "\u2212": -1.0, "\u2013": -1.0}
_APPROX = frozenset({"~", "≈", "approx", "about", "around", "approximately", "over", "under"})
_SCALES = {
    "k": 1e3, "thousand": 1e3, "mm": 1e6, "mn": 1e6, "million": 1e6, "mil": 1e6,
    "b": 1e9, "bn": 1e9, "billion": 1e9, "t": 1e12, "tn": 1e12, "trillion": 1e12,
}  # fmt: skip
_SECONDS = {
    "ms": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
    "w": 604800.0, "wk": 604800.0, "wks": 604800.0, "week": 604800.0, "weeks": 604800.0,
    "mo": 2629800.0, "mos": 2629800.0, "month": 2629800.0, "months": 2629800.0,
}  # fmt: skip
_DAY_QUALIFIERS = frozenset({"business", "working", "calendar", "work"})
_RATIO_MARKS = frozenset({"x", "×", "times"})
_PERCENT_WORDS = frozenset({"percent", "pct"})
_MAX_TOKENS = 40  # a value is a short label: longer strings are not one quantity


def _number(token: str) -> tuple[float, bool] | None:
    """(value, ungrouped) of a digit run with separators; None when malformed."""
    token = token.rstrip(".,")  # "12." / "5," : a full stop or comma after the number
    last_dot, last_comma = token.rfind("."), token.rfind(",")
    if last_dot < 0 and last_comma < 0:
        return float(token), len(token) >= 5
    # the decimal mark: the separator that comes last, unless it groups thousands
    mark = "." if last_dot > last_comma else ","
    other = "," if mark == "." else "."
    integer, _, fraction = token.rpartition(mark)
    if other in fraction:
        return None
    groups = integer.split(other) if other in integer else [integer]
    if mark in integer:  # the same separator twice: only as a thousands separator ("1,234,567")
        groups, fraction = token.split(mark), ""
        if not _thousands(groups):
            return None
    elif mark == "," and len(fraction) == 3 and other not in integer and integer != "0":
        groups, fraction = [integer, fraction], ""  # "12,345": grouping ("12.345" is a decimal)
    if len(groups) > 1 and not _thousands(groups):
        return None
    digits = "".join(groups)
    if not digits:
        return None
    text = digits + ("." + fraction if fraction else "")
    return float(text), len(groups) == 1 and len(digits) >= 5


def _thousands(groups: list[str]) -> bool:
    return 1 <= len(groups[0]) <= 3 and all(len(group) == 3 for group in groups[1:])


# The common shapes ("$1,250", "4.8%", "1,234"): an optional dollar sign, one digit run, an
# optional percent sign, nothing else. One anchored regex with a single character class under its
# quantifier (linear); the digit run is read by `_number` exactly as the full grammar reads it.
_SIMPLE_VALUE = re.compile(r"(\$?)([0-9][0-9.,]*)(%?)")


def _simple_quantity(value: str) -> Quantity | None:
    """The full grammar's reading of a value of a common shape; None for any other value."""
    match = _SIMPLE_VALUE.fullmatch(value)
    if match is None:
        return None
    money, token, percent = match.groups()
    if money and percent:
        return None  # the full grammar names this problem
    parsed = _number(token)
    if parsed is None:
        return Quantity(None, problem="has a malformed number")
    number, ungrouped = parsed
    if not math.isfinite(number):
        return Quantity(None, problem="is not a finite number")
    return Quantity("money" if money else "percent" if percent else "number", number, ungrouped)


def read_quantity(value: str) -> Quantity:
    """Read `value` by the grammar in the module docstring."""
    if len(value) <= 400:
        simple = _simple_quantity(value)
        if simple is not None:
            return simple
    tokens = [t for t in _TOKEN.findall(value[:400]) if not t.isspace()]
    if not tokens:
        return Quantity(None, problem="is empty")
    if len(tokens) > _MAX_TOKENS or len(value) > 400:
        return Quantity(None, problem="is too long to be one quantity")
    reader = _Reader(tokens)
    return reader.read()


class _Reader:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self, offset: int = 0) -> str:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else ""

    def lower(self, offset: int = 0) -> str:
        return self.peek(offset).lower()

    def read(self) -> Quantity:
        sign = 1.0
        money = False
        if self.lower() in _APPROX:
            self.at += 1
        if self.peek() in _SIGNS:
            sign = _SIGNS[self.peek()]
            self.at += 1
        if self.peek() in _CURRENCY_SYMBOLS or self.lower() in _CURRENCY_CODES:
            money = True
            self.at += 1
            if self.peek() in _CURRENCY_SYMBOLS:  # "US$", "R$"
                self.at += 1
            if self.peek() in _SIGNS:
                sign = _SIGNS[self.peek()]
                self.at += 1
        token = self.peek()
        if not token[:1].isdigit():
            if any(t[:1].isdigit() for t in self.tokens):
                return Quantity(None, problem="has words or symbols before its number")
            return Quantity(None, problem="has no number")
        parsed = _number(token)
        if parsed is None:
            return Quantity(None, problem="has a malformed number")
        number, ungrouped = parsed
        number *= sign
        self.at += 1
        kind = "money" if money else "number"
        per = ""
        ratio = math.nan
        # scale words: "1.2M", "$48.2K", "3 million"; a lower-case "m" alone is minutes
        word = self.peek()
        scale = _SCALES.get(word.lower()) if word != "m" else None
        if word == "M" or (word.lower() in ("m", "mm") and money):
            scale = 1e6
        if scale is not None:
            number *= scale
            ungrouped = False
            self.at += 1
        word = self.lower()
        if word == "%" or word in _PERCENT_WORDS:
            if money:
                return Quantity(None, problem="is money and a percentage at once")
            kind = "percent"
            self.at += 1
        elif word in _RATIO_MARKS and not money:
            kind = "ratio"
            self.at += 1
        elif word in _CURRENCY_CODES or word in _CURRENCY_SYMBOLS:
            kind = "money"
            self.at += 1
        elif word == "/" and self.peek(1)[:1].isdigit() and not money:
            scale_of = _number(self.peek(1))
            if scale_of is None or scale_of[0] <= 0:
                return Quantity(None, problem="has a malformed scale")
            kind = "fraction"
            number = 100.0 * number / scale_of[0]
            self.at += 2
        elif word == "out" and self.lower(1) == "of" and self.peek(2)[:1].isdigit():
            scale_of = _number(self.peek(2))
            if scale_of is None or scale_of[0] <= 0:
                return Quantity(None, problem="has a malformed scale")
            kind = "fraction"
            number = 100.0 * number / scale_of[0]
            self.at += 3
        elif word == ":" and self.peek(1)[:1].isdigit() and not money:
            second = _number(self.peek(1))
            if second is None:
                return Quantity(None, problem="has a malformed number")
            self.at += 2
            ratio = number / second[0] if second[0] else math.inf
            seconds = number * 60 + second[0]
            if self.peek() == ":" and self.peek(1)[:1].isdigit():  # h:mm:ss
                third = _number(self.peek(1))
                if third is None:
                    return Quantity(None, problem="has a malformed number")
                seconds = seconds * 60 + third[0]
                ratio = math.nan
                self.at += 2
            kind, number = "colon", seconds
        elif word in ("'", "′") and self.peek(1)[:1].isdigit() and not money:  # 4'32"
            second = _number(self.peek(1))
            if second is None:
                return Quantity(None, problem="has a malformed number")
            kind, number = "duration", number * 60 + second[0]
            self.at += 2
            if self.peek() in ('"', "″"):
                self.at += 1
        elif not money and (word in _SECONDS or (word in _DAY_QUALIFIERS and self._day_after())):
            duration = self._duration(number)
            if duration is None:
                return Quantity(None, problem="has a malformed duration")
            kind, number = "duration", duration
        # then only words: a noun or two ("1,204 new users"), a denominator ("$184K per
        # employee", "$210,000 revenue per employee", "42 units/hour")
        words = 0
        while self.at < len(self.tokens):
            token = self.lower()
            if token[:1].isdigit():
                return Quantity(None, problem="holds more than one quantity")
            if token in ("per", "/") and self.peek(1)[:1].isalpha() and not per:
                per = self.lower(1)
                self.at += 2
                continue
            if token[:1].isalpha() and words < 3:
                words += 1
            elif token != "." or self.at != len(self.tokens) - 1:
                if any(t[:1].isdigit() for t in self.tokens[self.at :]):
                    return Quantity(None, problem="holds more than one quantity")
                return Quantity(None, problem="has text around its quantity")
            self.at += 1
        if not math.isfinite(number):
            return Quantity(None, problem="is not a finite number")
        return Quantity(kind, number, ungrouped, per, "", ratio)

    def _day_after(self) -> bool:
        return self.lower(1) in ("day", "days")

    def _duration(self, number: float) -> float | None:
        """Seconds of "4m 32s", "1h 12m", "2 business days", starting at the first unit."""
        seconds = 0.0
        while True:
            if self.lower() in _DAY_QUALIFIERS:
                self.at += 1
            unit = _SECONDS.get(self.lower())
            if unit is None:
                return None
            seconds += number * unit
            self.at += 1
            if self.lower() == "and":
                self.at += 1
            following = self.peek()
            if not following[:1].isdigit() or self.lower(1) not in _SECONDS:
                return seconds
            parsed = _number(following)
            if parsed is None:
                return None
            number = parsed[0]
            self.at += 1
