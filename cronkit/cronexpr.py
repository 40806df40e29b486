"""Cron expressions: the language cronkit reads, parsed into plain sets; and their
description in words. Computing firing times from them is ``cronkit.schedule``'s work.

Accepted syntax: five fields (minute hour day-of-month month day-of-week), six
fields with the *seconds last* (the order croniter reads them in), or one of the
aliases ``@yearly @annually @monthly @weekly @daily @midnight @hourly``. Fields take
``*``, numbers, names (``JAN``, ``MON``), ranges (wrapping ones too, ``FRI-MON``),
steps (``*/5``, ``10-50/20``, ``10/20``), lists, ``?`` (same as ``*``) in the two day
fields, and croniter's extras: ``L``, ``LW`` and ``15W`` in day-of-month; ``5#2``,
``5L`` and ``L5`` in day-of-week.

The parser is our own: ``croniter.expand`` turns ``12-12`` into ``*`` and drops the
``W`` information.
"""

from __future__ import annotations

import re

__all__ = ["CronSyntaxError", "Expression", "Field", "describe", "describe_fallback"]

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTH_NAMES = {
    name: i + 1
    for i, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
_DOW_NAMES = {
    name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}

#: (label, low, high, names) of a field.
FieldSpec = tuple[str, int, int, dict[str, int] | None]

# In the order the fields are written.
_MINUTE: FieldSpec = ("minute", 0, 59, None)
_HOUR: FieldSpec = ("hour", 0, 23, None)
_DOM: FieldSpec = ("day-of-month", 1, 31, None)
_MONTH: FieldSpec = ("month", 1, 12, _MONTH_NAMES)
_DOW: FieldSpec = ("day-of-week", 0, 7, _DOW_NAMES)  # 7 is Sunday too, as in crontab(5)
_SECOND: FieldSpec = ("second", 0, 59, None)
_SPECS = (_MINUTE, _HOUR, _DOM, _MONTH, _DOW, _SECOND)

# Only ASCII whitespace separates fields: cron does not split on a no-break space.
_FIELD_SPLIT = re.compile(r"[ \t\n\r\f\v]+")
_NUMBER = re.compile(r"[0-9]+")
_NTH_DOW = re.compile(r"([0-9]+|[a-z]+)#([0-9]+)")
_LAST_DOW = re.compile(r"(?:([0-9]+|[a-z]+)l|l([0-9]+|[a-z]+))")
_NEAREST_WEEKDAY = re.compile(r"(?:([0-9]+)w|w([0-9]+))")
# "12-12" and "12-12" alone (no step) read as "12" when describing.
_EQUAL_RANGE = re.compile(r"(?<![\w/-])(\w+)-\1(?![\w/-])")


class CronSyntaxError(ValueError):
    """A cron expression cronkit refuses; the message names it and what is wrong."""

    def __init__(self, expr: object, reason: str) -> None:
        super().__init__(f"invalid cron expression {expr!r}: {reason}")
        self.expr = expr
        self.reason = reason


class Field:
    """The parsed content of one field: plain values plus the day-field extras."""

    __slots__ = ("last", "last_dow", "last_weekday", "nearest", "nth", "star", "values")

    def __init__(self) -> None:
        self.values: set[int] = set()
        self.star = False  # the field starts with '*' (or is '?'): "unrestricted"
        self.last = False  # day-of-month L
        self.last_weekday = False  # day-of-month LW
        self.nearest: set[int] = set()  # day-of-month nW
        self.nth: set[tuple[int, int]] = set()  # day-of-week d#n
        self.last_dow: set[int] = set()  # day-of-week dL / Ld


class Expression:
    """A cron expression read into its fields; raise CronSyntaxError if refused.

    ``fields`` is the text of each field (an alias replaced by what it stands for);
    ``minute`` ... ``second`` the parsed :class:`Field` of each (``second`` is the
    value 0 without a sixth field); ``fixed_time`` is cronie's reading of the DST rule:
    neither the minute nor the hour field starts with ``*``.
    """

    __slots__ = ("dom", "dow", "expr", "fields", "fixed_time", "has_seconds", "hour",
                 "minute", "month", "second")

    def __init__(self, expr: str) -> None:
        if not isinstance(expr, str):
            raise CronSyntaxError(expr, "not a string")
        self.expr = expr
        text = expr.strip()
        lowered = text.lower()
        if lowered.startswith("@"):
            if lowered == "@reboot":
                raise CronSyntaxError(expr, "@reboot has no schedule and is not supported")
            if lowered not in ALIASES:
                raise CronSyntaxError(expr, f"unknown alias {text!r}")
            text = ALIASES[lowered]
        fields = _FIELD_SPLIT.split(text) if text else []
        if len(fields) not in (5, 6):
            raise CronSyntaxError(
                expr, f"expected 5 fields, or 6 with the seconds last, got {len(fields)}")
        self.fields = tuple(fields)
        self.has_seconds = len(fields) == 6
        # Rule 5: only the text decides, as cronie does (first character is '*').
        self.fixed_time = not fields[0].startswith("*") and not fields[1].startswith("*")
        parsed = [parse_field(expr, f, spec)
                  for f, spec in zip(fields, _SPECS[: len(fields)], strict=True)]
        self.minute, self.hour, self.dom, self.month, self.dow = parsed[:5]
        if self.has_seconds:
            self.second = parsed[5]
        else:
            self.second = Field()
            self.second.values.add(0)
        for label, f in (("minute", self.minute), ("hour", self.hour), ("month", self.month)):
            if not f.values:  # cannot happen with the grammar above; kept as a guard
                raise CronSyntaxError(expr, f"empty {label} field")


def parse_field(expr: str, text: str, spec: FieldSpec) -> Field:
    """Read the field ``text`` of ``expr`` (``spec`` says which field it is)."""
    label, low, high, names = spec
    field = Field()
    if text == "?":
        if label not in ("day-of-month", "day-of-week"):
            raise CronSyntaxError(expr, f"'?' is only allowed in the day fields, not in {label}")
        text = "*"
    field.star = text.startswith("*")

    def value(token: str) -> int:
        if _NUMBER.fullmatch(token):
            v = int(token)
        elif names is not None and token in names:
            v = names[token]
        else:
            raise CronSyntaxError(expr, f"{label} {token!r} is not a number or a name")
        if not low <= v <= high:
            raise CronSyntaxError(expr, f"{label} {v} out of range {low}-{high}")
        return v

    for item in text.lower().split(","):
        if not item:
            raise CronSyntaxError(expr, f"empty item in {label} field {text!r}")
        if label == "day-of-month":
            if item == "l":
                field.last = True
                continue
            if item in ("lw", "wl"):
                field.last_weekday = True
                continue
            m = _NEAREST_WEEKDAY.fullmatch(item)
            if m:
                field.nearest.add(value(m.group(1) or m.group(2)))
                continue
        if label == "day-of-week":
            m = _NTH_DOW.fullmatch(item)
            if m:
                nth = int(m.group(2))
                if not 1 <= nth <= 5:
                    raise CronSyntaxError(
                        expr, f"{label} {item!r}: occurrence {nth} out of range 1-5")
                field.nth.add((value(m.group(1)) % 7, nth))
                continue
            m = _LAST_DOW.fullmatch(item)
            if m and item != "l":
                field.last_dow.add(value(m.group(1) or m.group(2)) % 7)
                continue
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not _NUMBER.fullmatch(step_text):
                raise CronSyntaxError(expr, f"{label} step {step_text!r} is not a number")
            step = int(step_text)
            if step == 0:
                raise CronSyntaxError(expr, f"{label} step 0 is not allowed")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = value(a), value(b)
        else:
            first = value(base)
            # "10/20" means "10-<max>/20"; "10" alone is just 10.
            last = high if slash else first
        field.values.update(_expand_range(label, low, high, first, last, step))
    return field


def _expand_range(label: str, low: int, high: int, first: int, last: int, step: int) -> list[int]:
    if label == "day-of-week":
        # Sunday is 0 or 7. Fold to 0..6 before handling a wrap such as SAT-SUN (6-0).
        if first == 7 and last < 7:
            first = 0
        if first <= last:
            return [v % 7 for v in range(first, last + 1, step)]
        low, high = 0, 6
    if first <= last:
        # A one-value range such as 12-12 is that value (croniter widens it to '*').
        return list(range(first, last + 1, step))
    # A wrapping range (croniter accepts them): 22-2 is 22,23,0,1,2.
    size = high - low + 1
    span = (last - first) % size
    return [low + (first - low + k) % size for k in range(0, span + 1, step)]


# -- in words ------------------------------------------------------------------


def describe(fields: tuple[str, ...], has_seconds: bool) -> str:
    """Describe the fields in English words, e.g. "every 5 minutes" (cron-descriptor
    when installed, else :func:`describe_fallback`)."""
    words = [_EQUAL_RANGE.sub(r"\1", f) for f in fields]
    try:
        from cron_descriptor import ExpressionDescriptor, Options
    except ImportError:  # optional dependency
        return describe_fallback(fields, has_seconds)
    if has_seconds:
        # cron-descriptor reads six fields with the seconds first.
        words = [words[5], *words[:5]]
    try:
        options = Options(use_24hour_time_format=True, locale_code="en_US")
        text = ExpressionDescriptor(" ".join(words), options).get_description()
    except Exception:  # cron-descriptor refuses some syntax we accept
        return describe_fallback(fields, has_seconds)
    return text[:1].lower() + text[1:]


def describe_fallback(fields: tuple[str, ...], has_seconds: bool) -> str:
    """A plain description, for when cron-descriptor is missing or refuses the fields."""
    minute, hour, dom, month, dow = fields[:5]
    seconds = fields[5] if has_seconds else "0"
    rest_all = dom in ("*", "?") and month == "*" and dow in ("*", "?")
    if rest_all and seconds == "0":
        if minute == "*" and hour == "*":
            return "every minute"
        if minute.startswith("*/") and hour == "*":
            return f"every {minute[2:]} minutes"
        if minute.isdigit() and hour == "*":
            return f"at minute {int(minute)} of every hour"
        if minute.isdigit() and hour.isdigit():
            return f"at {int(hour):02d}:{int(minute):02d} every day"
    labels = ("minute", "hour", "day-of-month", "month", "day-of-week", "second")
    parts = [
        f"{label} {f}"
        for label, f in zip(labels[: len(fields)], fields, strict=True)
        if f not in ("*", "?")
    ]
    return "cron: " + (", ".join(parts) if parts else "every minute")
