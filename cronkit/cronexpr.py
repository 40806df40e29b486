"""Cron expressions: the language cronkit reads, parsed into plain sets; and their
description in words. Computing firing times from them is ``cronkit.schedule``'s work.

Accepted syntax (croniter's language): five fields (minute hour day-of-month month
day-of-week), six fields with the *seconds last* (the order croniter reads them in),
seven with a year last (1970-2099), or one of the aliases ``@yearly @annually @monthly
@weekly @daily @midnight @hourly``. Fields take ``*``, numbers, names (``JAN``,
``MON``), ranges (wrapping ones too, ``FRI-MON``), steps (``*/5``, ``10-50/20``,
``10/20``), lists, ``?`` (same as ``*``) in the two day fields, and croniter's extras:
``L``, ``LW``, ``15W`` and ranges up to ``L`` (``1-L``, ``25-L/2``) in day-of-month;
``5#2``, ``MON-FRI#1``, ``5L`` and ``L5`` in day-of-week.

A wrapping range steps along the wrap: ``THU-TUE/2`` is Thursday, Saturday, Monday and
``22-2/2`` in the hour field is 22, 0, 2 (cronie and cronsim refuse wrapping ranges;
croniter reads them so).

**Extensions drawn once.** croniter's ``H`` (Jenkins' hash: ``H``, ``H/15``,
``H(0-29)/10``) and ``R`` (random) stand for values drawn when a cron is saved, not at
each firing: :func:`expand` draws them (with croniter's own hashing, from a hash id:
a cron's site and uid) and gives the plain expression the engine reads, its fields in
cronkit's order. A cron keeps both, so every worker and every restart reads the same
times, and a newer croniter never moves a saved cron. :func:`expand` also reads
six or seven fields written *seconds first* (Quartz, Spring, cronsim:
``0 0 12 * * *`` is noon) when asked to.

The parser is our own: ``croniter.expand`` turns ``12-12`` into ``*`` and drops the
``W`` information.
"""

from __future__ import annotations

import re

__all__ = ["CronSyntaxError", "Expression", "Field", "expand", "hashed", "is_drawing",
           "seconds_first_differs"]

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
_YEAR: FieldSpec = ("year", 1970, 2099, None)  # croniter's years
_EVERY_YEAR = set(range(1970, 2100))
_SPECS = (_MINUTE, _HOUR, _DOM, _MONTH, _DOW, _SECOND, _YEAR)

# Only ASCII whitespace separates fields: cron does not split on a no-break space.
_FIELD_SPLIT = re.compile(r"[ \t\n\r\f\v]+")
_NUMBER = re.compile(r"[0-9]+")
_NTH_DOW = re.compile(r"([0-9]+|[a-z]+)(?:-([0-9]+|[a-z]+))?#([0-9]+)")
_LAST_DOW = re.compile(r"(?:([0-9]+|[a-z]+)l|l([0-9]+|[a-z]+))")
_NEAREST_WEEKDAY = re.compile(r"(?:([0-9]+)w|w([0-9]+))")
# A field croniter's hash expander draws: H or R, a range, a step (croniter's own).
_DRAWN = re.compile(r"[hr](?:\(([0-9]+)-([0-9]+)\))?(?:/([0-9]+))?", re.IGNORECASE)


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
    value 0 without a sixth field); ``year`` the years of a seventh field, or None
    (every year); ``fixed_time`` is cronie's reading of the DST rule: neither the
    minute nor the hour field starts with ``*``.
    """

    __slots__ = ("dom", "dow", "expr", "fields", "fixed_time", "has_seconds", "hour",
                 "minute", "month", "second", "year")

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
        if len(fields) not in (5, 6, 7):
            raise CronSyntaxError(
                expr, "expected 5 fields, 6 with the seconds last, or 7 with the seconds "
                f"and a year last, got {len(fields)}")
        for f in fields:
            if _DRAWN.fullmatch(f):
                raise CronSyntaxError(
                    expr, f"{f!r} is drawn when the cron is saved (cronkit.cronexpr.expand), "
                    "not read by the engine")
        self.fields = tuple(fields)
        self.has_seconds = len(fields) >= 6
        # Rule 5: only the text decides, as cronie does (first character is '*').
        self.fixed_time = not fields[0].startswith("*") and not fields[1].startswith("*")
        parsed = [parse_field(expr, f, spec)
                  for f, spec in zip(fields, _SPECS[: len(fields)], strict=True)]
        self.minute, self.hour, self.dom, self.month, self.dow = parsed[:5]
        self.year = parsed[6].values if len(parsed) == 7 and parsed[6].values != _EVERY_YEAR \
            else None
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
                nth = int(m.group(3))
                if not 1 <= nth <= 5:
                    raise CronSyntaxError(
                        expr, f"{label} {item!r}: occurrence {nth} out of range 1-5")
                first = value(m.group(1))
                days = _expand_range(label, low, high, first,
                                     value(m.group(2)) if m.group(2) else first, 1)
                field.nth.update((day % 7, nth) for day in days)
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
            # A day-of-month range may end on the month's last day: 1-L, 25-L/2.
            first, last = value(a), high if b == "l" and label == "day-of-month" else value(b)
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


# -- drawn once: H and R, and the seconds-first order ----------------------------------


def hashed(expr: str) -> bool:
    """Whether ``expr`` has a field croniter draws (``H``, ``R``, with a range or step)."""
    return any(_DRAWN.fullmatch(f) for f in _FIELD_SPLIT.split(expr.strip()))


def _fields_of(expr: str, seconds_first: bool) -> list[str]:
    """The fields of ``expr`` in cronkit's order (aliases kept whole)."""
    text = expr.strip()
    if text.startswith("@"):
        return [text]
    fields = _FIELD_SPLIT.split(text) if text else []
    if seconds_first:
        if len(fields) not in (6, 7):
            raise CronSyntaxError(
                expr, f"seconds first needs 6 fields, or 7 with a year last, got {len(fields)}")
        fields = [*fields[1:6], fields[0], *fields[6:]]
    return fields


def expand(expr: str, hash_id: str | bytes | None = None, seconds_first: bool = False) -> str:
    """The plain expression cronkit's engine reads for ``expr``, as written: its fields
    in cronkit's order (``seconds_first`` reads six or seven fields with the seconds
    first, as Quartz and cronsim do), and croniter's ``H`` and ``R`` drawn by croniter's
    own expander (``H`` from ``hash_id``, which a cron makes of its site and uid).
    Raise CronSyntaxError, naming ``expr``, if cronkit refuses it.

    An expression with nothing to draw, read seconds-last, is returned as written.
    Aliases are never hashed (croniter hashes them when given a hash id; cronkit keeps
    ``@daily`` at midnight)."""
    if not isinstance(expr, str):
        raise CronSyntaxError(expr, "not a string")
    fields = _fields_of(expr, seconds_first)
    if len(fields) in (5, 6, 7) and any(_DRAWN.fullmatch(f) for f in fields):
        fields = _draw(expr, fields, hash_id)
    canonical = " ".join(fields) if fields else expr
    try:
        Expression(canonical)
    except CronSyntaxError as exc:
        if canonical == expr:
            raise
        raise CronSyntaxError(expr, f"{exc.reason} (read as {canonical!r})") from None
    return canonical


def _draw(expr: str, fields: list[str], hash_id: str | bytes | None) -> list[str]:
    from croniter import croniter
    from croniter.croniter import CroniterError, HashExpander

    key = hash_id.encode("utf-8") if isinstance(hash_id, str) else hash_id
    expander = HashExpander(croniter)
    drawn = []
    for index, field in enumerate(fields):
        if not _DRAWN.fullmatch(field):
            drawn.append(field)
            continue
        if field[0] in "hH" and key is None:
            raise CronSyntaxError(expr, f"{field!r} needs a hash id (a cron's site and uid)")
        try:
            drawn.append(expander.expand(" ".join(fields).lower(), index, field.lower(),
                                         hash_id=key))
        except CroniterError as exc:
            raise CronSyntaxError(expr, f"{_SPECS[index][0]} {field!r}: {exc}") from None
    return drawn


def is_drawing(expr: str, expanded: str, seconds_first: bool = False) -> bool:
    """Whether ``expanded`` is what :func:`expand` can give for ``expr``: equal where
    ``expr`` draws nothing, and for each ``H`` or ``R`` field a value croniter's
    expander can draw (a kept drawing is checked so, not drawn again)."""
    try:
        fields = _fields_of(expr, seconds_first)
        if not any(_DRAWN.fullmatch(f) for f in fields):
            return expand(expr, seconds_first=seconds_first) == expanded
    except CronSyntaxError:
        return False
    drawn = expanded.split()
    return len(drawn) == len(fields) and all(
        _can_draw(i, f, d) if _DRAWN.fullmatch(f) else f == d
        for i, (f, d) in enumerate(zip(fields, drawn, strict=True)))


def _can_draw(index: int, token: str, drawn: str) -> bool:
    """Whether croniter's expander can turn ``token`` of field ``index`` (``H``,
    ``H(a-b)``, ``H/n``, ``H(a-b)/n``, or the same with ``R``) into ``drawn``."""
    from croniter import croniter

    m = _DRAWN.fullmatch(token)
    assert m is not None
    low, high = croniter.RANGES[index]     # the range croniter's expander draws in
    if m.group(1):
        low, high = int(m.group(1)), int(m.group(2))
    if m.group(3) is None:
        return drawn.isdigit() and low <= int(drawn) <= high
    step = int(m.group(3))
    first, _, rest = drawn.partition("-")
    if not rest:
        return drawn.isdigit() and int(drawn) == high
    return first.isdigit() and rest == f"{high}/{step}" and low <= int(first) <= min(
        low + step - 1, high)


def seconds_first_differs(expr: str) -> bool:
    """Whether six or seven fields ``expr`` would fire at other times if read seconds
    first (Quartz, Spring, cronsim) than seconds last, as cronkit reads it by default:
    what a preview warns of. False for five fields and aliases."""
    fields = _fields_of(expr, False)
    if len(fields) not in (6, 7):
        return False
    try:
        first = Expression(" ".join(_fields_of(expr, True)))
        last = Expression(" ".join(fields))
    except CronSyntaxError:
        return True   # valid one way only: the reading matters
    return _times_of(first) != _times_of(last)


def _times_of(e: Expression) -> tuple:
    def flat(f: Field) -> tuple:
        return (frozenset(f.values), f.star, f.last, f.last_weekday, frozenset(f.nearest),
                frozenset(f.nth), frozenset(f.last_dow))
    return (flat(e.second), flat(e.minute), flat(e.hour), flat(e.dom), flat(e.month),
            flat(e.dow), e.year)
