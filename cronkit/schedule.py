"""Cron expressions: parsing and next-firing computation.

This module is cronkit's cron engine. It is pure: nothing here reads the clock.

Accepted syntax: five fields (minute hour day-of-month month day-of-week), six
fields with the *seconds last* (the order croniter reads them in), or one of the
aliases ``@yearly @annually @monthly @weekly @daily @midnight @hourly``. Fields take
``*``, numbers, names (``JAN``, ``MON``), ranges (wrapping ones too, ``FRI-MON``),
steps (``*/5``, ``10-50/20``, ``10/20``), lists, ``?`` (same as ``*``) in the two day
fields, and croniter's extras: ``L``, ``LW`` and ``15W`` in day-of-month; ``5#2``,
``5L`` and ``L5`` in day-of-week.

Firing times follow crontab(5) and cronie (DESIGN.md, "Cron semantics", rule 5).
croniter is deliberately not used to compute them: it gets DST, ``*/n`` in
day-of-week and one-value ranges wrong. The parser is our own for the same reason:
``croniter.expand`` turns ``12-12`` into ``*`` and drops the ``W`` information.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

__all__ = ["CronSyntaxError", "Schedule", "next_after", "parse"]

_UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)

_ALIASES = {
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
        (
            "jan",
            "feb",
            "mar",
            "apr",
            "may",
            "jun",
            "jul",
            "aug",
            "sep",
            "oct",
            "nov",
            "dec",
        )
    )
}
_DOW_NAMES = {
    name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}

# (label, low, high, names) in the order the fields are written.
_MINUTE = ("minute", 0, 59, None)
_HOUR = ("hour", 0, 23, None)
_DOM = ("day-of-month", 1, 31, None)
_MONTH = ("month", 1, 12, _MONTH_NAMES)
_DOW = ("day-of-week", 0, 7, _DOW_NAMES)  # 7 is Sunday too, as in crontab(5)
_SECOND_FIELD = ("second", 0, 59, None)

# Only ASCII whitespace separates fields: cron does not split on a no-break space.
_FIELD_SPLIT = re.compile(r"[ \t\n\r\f\v]+")
_NUMBER = re.compile(r"[0-9]+")
_NTH_DOW = re.compile(r"([0-9]+|[a-z]+)#([0-9]+)")
_LAST_DOW = re.compile(r"(?:([0-9]+|[a-z]+)l|l([0-9]+|[a-z]+))")
_NEAREST_WEEKDAY = re.compile(r"(?:([0-9]+)w|w([0-9]+))")
# "12-12" and "12-12" alone (no step) read as "12" when describing.
_EQUAL_RANGE = re.compile(r"(?<![\w/-])(\w+)-\1(?![\w/-])")

# A Gregorian calendar repeats itself, weekdays included, every 400 years: an
# expression that matches no day in 400 consecutive years never matches.
_CYCLE_YEARS = 400

_MONTH_LENGTHS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class CronSyntaxError(ValueError):
    """A cron expression cronkit refuses; the message names it and what is wrong."""

    def __init__(self, expr: object, reason: str) -> None:
        super().__init__(f"invalid cron expression {expr!r}: {reason}")
        self.expr = expr
        self.reason = reason


def _month_length(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_LENGTHS[month]


def _lookup(values: frozenset[int], high: int, missing: int) -> tuple[int, ...]:
    """Table t where t[v] is the smallest allowed value >= v, or ``missing``.

    One entry past ``high`` so that "value + 1" never needs a bounds check.
    """
    table = [missing] * (high + 2)
    nxt = missing
    for v in range(high, -1, -1):
        if v in values:
            nxt = v
        table[v] = nxt
    return tuple(table)


class _Field:
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


def _parse_field(expr: str, text: str, spec: tuple) -> _Field:
    label, low, high, names = spec
    field = _Field()
    if text == "?":
        if label not in ("day-of-month", "day-of-week"):
            raise CronSyntaxError(
                expr, f"'?' is only allowed in the day fields, not in {label}"
            )
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
                        expr, f"{label} {item!r}: occurrence {nth} out of range 1-5"
                    )
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
                raise CronSyntaxError(
                    expr, f"{label} step {step_text!r} is not a number"
                )
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


def _expand_range(
    label: str, low: int, high: int, first: int, last: int, step: int
) -> list[int]:
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


class Schedule:
    """A parsed cron expression. Build it with :func:`parse` (cached)."""

    __slots__ = (
        "_dom",
        "_dow",
        "_fields",
        "_hours",
        "_minutes",
        "_month_cache",
        "_months",
        "_seconds",
        "_simple_days",
        "expr",
        "fixed_time",
        "has_seconds",
    )

    def __init__(self, expr: str) -> None:
        if not isinstance(expr, str):
            raise CronSyntaxError(expr, "not a string")
        self.expr = expr
        text = expr.strip()
        lowered = text.lower()
        if lowered.startswith("@"):
            if lowered == "@reboot":
                raise CronSyntaxError(
                    expr, "@reboot has no schedule and is not supported"
                )
            if lowered not in _ALIASES:
                raise CronSyntaxError(expr, f"unknown alias {text!r}")
            text = _ALIASES[lowered]
        fields = _FIELD_SPLIT.split(text) if text else []
        if len(fields) not in (5, 6):
            raise CronSyntaxError(
                expr,
                f"expected 5 fields, or 6 with the seconds last, got {len(fields)}",
            )
        self._fields = tuple(fields)
        self.has_seconds = len(fields) == 6
        # Rule 5: only the text decides, as cronie does (first character is '*').
        self.fixed_time = not fields[0].startswith("*") and not fields[1].startswith(
            "*"
        )

        specs = (_MINUTE, _HOUR, _DOM, _MONTH, _DOW, _SECOND_FIELD)
        parsed = [
            _parse_field(expr, f, spec)
            for f, spec in zip(fields, specs[: len(fields)], strict=True)
        ]
        minutes, hours, dom, months, dow = parsed[:5]
        seconds = parsed[5].values if self.has_seconds else {0}
        for label, f in (("minute", minutes), ("hour", hours), ("month", months)):
            if not f.values:  # cannot happen with the grammar above; kept as a guard
                raise CronSyntaxError(expr, f"empty {label} field")
        self._seconds = _lookup(frozenset(seconds), 59, -1)
        self._minutes = _lookup(frozenset(minutes.values), 59, -1)
        self._hours = _lookup(frozenset(hours.values), 23, -1)
        self._months = _lookup(frozenset(months.values), 12, 0)
        self._dom = dom
        self._dow = dow
        dom_all = dom.values >= set(range(1, 32))
        dow_all = dow.values >= set(range(7))
        # Every day matches: either both fields cover everything, or one covers
        # everything and the OR rule (both restricted) applies.
        self._simple_days = (dom_all and dow_all) or (
            not dom.star and not dow.star and (dom_all or dow_all)
        )
        self._month_cache: dict[tuple[int, int], tuple[int, ...]] = {}
        if self._next_naive(2000, 1, 1, 0, 0, 0, 2000 + _CYCLE_YEARS) is None:
            raise CronSyntaxError(expr, "it never fires (no day matches)")

    def __repr__(self) -> str:
        return f"<Schedule {self.expr!r}>"

    # -- calendar search (naive wall-clock times) -------------------------------

    def _days(self, year: int, month: int) -> tuple[int, ...]:
        """Table t for this month: t[d] is the first matching day >= d, or 0."""
        key = (year, month)
        table = self._month_cache.get(key)
        if table is not None:
            return table
        length = _month_length(year, month)
        if self._simple_days:
            table = _ALL_DAYS[length]
        else:
            table = self._compute_days(year, month, length)
        if len(self._month_cache) >= 256:  # bounded: a long search must not grow it
            self._month_cache.clear()
        self._month_cache[key] = table
        return table

    def _compute_days(self, year: int, month: int, length: int) -> tuple[int, ...]:
        dom, dow = self._dom, self._dow
        dom_days = {d for d in dom.values if d <= length}
        if dom.last:
            dom_days.add(length)
        first_wd = (
            date(year, month, 1).weekday() + 1
        ) % 7  # cron numbering, Sunday = 0
        for wanted in dom.nearest:
            dom_days.add(_nearest_weekday(min(wanted, length), length, first_wd))
        if dom.last_weekday:
            dom_days.add(_nearest_weekday(length, length, first_wd))
        table = [0] * 33
        nxt = 0
        both = dom.star or dow.star  # crontab(5): both restricted -> either may match
        for d in range(length, 0, -1):
            wd = (first_wd + d - 1) % 7
            dow_ok = (
                wd in dow.values
                or (wd, (d - 1) // 7 + 1) in dow.nth
                or (wd in dow.last_dow and d + 7 > length)
            )
            dom_ok = d in dom_days
            if (dom_ok and dow_ok) if both else (dom_ok or dow_ok):
                nxt = d
            table[d] = nxt
        return tuple(table)

    def _next_naive(
        self, y: int, mo: int, d: int, h: int, mi: int, s: int, limit_year: int
    ) -> tuple[int, int, int, int, int, int] | None:
        """First matching wall-clock time >= the one given, or None past limit_year."""
        months, hours, minutes, seconds = (
            self._months,
            self._hours,
            self._minutes,
            self._seconds,
        )
        while True:
            if y > limit_year:
                return None
            m2 = months[mo]
            if m2 == 0:
                y, mo, d, h, mi, s = y + 1, 1, 1, 0, 0, 0
                continue
            if m2 != mo:
                mo, d, h, mi, s = m2, 1, 0, 0, 0
            d2 = self._days(y, mo)[d]
            if d2 == 0:
                mo, d, h, mi, s = mo + 1, 1, 0, 0, 0
                if mo == 13:
                    y, mo = y + 1, 1
                continue
            if d2 != d:
                d, h, mi, s = d2, 0, 0, 0
            h2 = hours[h]
            if h2 < 0:
                d, h, mi, s = d + 1, 0, 0, 0
                continue
            if h2 != h:
                h, mi, s = h2, 0, 0
            mi2 = minutes[mi]
            if mi2 < 0:
                h, mi, s = h + 1, 0, 0
                continue
            if mi2 != mi:
                mi, s = mi2, 0
            s2 = seconds[s]
            if s2 < 0:
                mi, s = mi + 1, 0
                continue
            return y, mo, d, h, mi, s2

    # -- real time -------------------------------------------------------------

    def next_after(self, after: datetime, tz: tzinfo | str) -> datetime:
        """Return the first firing strictly after ``after``, as an aware UTC datetime.

        ``after`` must be timezone-aware; ``tz`` is the cron's timezone (a ZoneInfo
        or an IANA name), in which the fields are read. DST follows crontab(5) and
        cronie: a fixed-time firing in a spring-forward gap runs at the first instant
        after the gap, one in a fall-back overlap runs once, at its first occurrence;
        other crons follow real time (gap times never happen, overlap times twice).
        """
        if isinstance(tz, str):
            tz = _zone(tz)
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError(f"after must be timezone-aware, got {after!r}")
        # Firings fall on whole seconds: the first candidate is the next whole second.
        a1 = (after - _EPOCH) // _SECOND + 1
        local = datetime.fromtimestamp(a1, tz)
        limit = min(local.year + _CYCLE_YEARS + 1, 9998)
        start = (
            local.year,
            local.month,
            local.day,
            local.hour,
            local.minute,
            local.second,
        )
        best: datetime | None = None
        off = local.utcoffset()
        other = local.replace(fold=1 - local.fold).utcoffset()
        if off != other:
            # a1 lies in a fall-back overlap: its wall time happens twice.
            off0, off1 = (off, other) if local.fold == 0 else (other, off)
            shift = int((off0 - off1) / _SECOND)
            trans = _transition(tz, a1 - shift, a1 + shift, off1)
            overlap_start = _wall(trans, off1)
            overlap_end = _wall(trans, off0)
            if self.fixed_time:
                # Overlap wall times fire at their first occurrence only; if a1 is in
                # the second one, those first occurrences are already past.
                if local.fold == 1:
                    start = overlap_end
            else:
                # Real time: the second occurrence of an overlap wall time may come
                # after a1 even though the wall time is earlier than a1's.
                lo = start if local.fold == 1 else overlap_start
                m = self._next_naive(*lo, limit)
                if m is not None and m < overlap_end:
                    best = datetime(*m, tzinfo=_UTC) - off1
                if local.fold == 1:
                    start = overlap_end
        while True:
            m = self._next_naive(*start, limit)
            if m is None:
                if best is not None:
                    return best
                raise CronSyntaxError(
                    self.expr, f"it never fires in time zone {getattr(tz, 'key', tz)}"
                )
            wall = datetime(*m, tzinfo=tz)
            off0 = wall.utcoffset()
            off1 = wall.replace(fold=1).utcoffset()
            utc_wall = datetime(*m, tzinfo=_UTC)
            if off0 >= off1:
                # A wall time that exists (fold=0 is its first occurrence if it is
                # in an overlap). Later wall times only give later instants.
                found = utc_wall - off0
                return found if best is None or found < best else best
            # Spring-forward gap: find the instant the clocks jump.
            naive_s = (utc_wall - _EPOCH) // _SECOND
            trans = _transition(
                tz, naive_s - int(off1 / _SECOND), naive_s - int(off0 / _SECOND), off1
            )
            if self.fixed_time:
                found = _EPOCH + timedelta(seconds=trans)
                return found if best is None or found < best else best
            # Real time: gap wall times never happen; resume at the end of the gap.
            start = _wall(trans, off1)

    def describe(self) -> str:
        """Describe the schedule in English words, e.g. "every 5 minutes"."""
        fields = list(self._fields)
        fields = [_EQUAL_RANGE.sub(r"\1", f) for f in fields]
        try:
            from cron_descriptor import ExpressionDescriptor, Options
        except ImportError:  # optional dependency
            return self._describe_fallback()
        if self.has_seconds:
            # cron-descriptor reads six fields with the seconds first.
            fields = [fields[5], *fields[:5]]
        try:
            options = Options(use_24hour_time_format=True, locale_code="en_US")
            text = ExpressionDescriptor(" ".join(fields), options).get_description()
        except Exception:  # cron-descriptor refuses some syntax we accept
            return self._describe_fallback()
        return text[:1].lower() + text[1:]

    def _describe_fallback(self) -> str:
        minute, hour, dom, month, dow = self._fields[:5]
        seconds = self._fields[5] if self.has_seconds else "0"
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
            for label, f in zip(labels[: len(self._fields)], self._fields, strict=True)
            if f not in ("*", "?")
        ]
        return "cron: " + (", ".join(parts) if parts else "every minute")


def _nearest_weekday(day: int, length: int, first_wd: int) -> int:
    """The weekday nearest ``day``, staying in the month (croniter's rule)."""
    wd = (first_wd + day - 1) % 7
    if wd == 6:  # Saturday: the Friday before, or the Monday after on the 1st
        return day - 1 if day > 1 else day + 2
    if wd == 0:  # Sunday: the Monday after, or the Friday before on the last day
        return day + 1 if day < length else day - 2
    return day


_ALL_DAYS = {
    length: tuple([0] + list(range(1, length + 1)) + [0] * (32 - length))
    for length in (28, 29, 30, 31)
}


def _wall(ts: int, offset: timedelta) -> tuple[int, int, int, int, int, int]:
    """Wall-clock fields of POSIX time ``ts`` at the given UTC offset."""
    w = _NAIVE_EPOCH + timedelta(seconds=ts) + offset
    return w.year, w.month, w.day, w.hour, w.minute, w.second


def _transition(tz: tzinfo, lo: int, hi: int, off_after: timedelta) -> int:
    """The first second in (lo, hi] whose UTC offset is ``off_after``.

    Called only when a DST transition is known to lie in that window (which is a
    few hours at most), so a bisection over seconds is exact and cheap.
    """
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == off_after:
            hi = mid
        else:
            lo = mid
    return hi


@functools.lru_cache(maxsize=1024)
def _zone(key: str) -> ZoneInfo:
    return ZoneInfo(key)


@functools.lru_cache(maxsize=1 << 17)
def parse(expr: str) -> Schedule:
    """Parse a cron expression (cached); raise CronSyntaxError if cronkit refuses it."""
    return Schedule(expr)


@functools.lru_cache(maxsize=1 << 16)
def _next_after_cached(
    expr: str, tz_key: object, tz: tzinfo, after: datetime
) -> datetime:
    return parse(expr).next_after(after, tz)


def next_after(expr: str, tz: str | tzinfo, after: datetime) -> datetime:
    """Return the first firing of ``expr`` in ``tz`` strictly after ``after``, in UTC.

    Cached on (expr, time zone key, after). See :meth:`Schedule.next_after`.
    """
    if isinstance(tz, str):
        zone: tzinfo = _zone(tz)
        key: object = tz
    else:
        zone = tz
        key = getattr(tz, "key", None) or tz
    return _next_after_cached(expr, key, zone, after)
