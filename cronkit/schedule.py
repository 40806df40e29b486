"""The cron engine: the firing times of a cron expression.

This module is pure: nothing here reads the clock. ``cronkit.cronexpr`` reads the
expressions (the syntax is described there); this module computes their times.

Firing times follow crontab(5) and cronie (DESIGN.md, "Cron semantics", rule 5).
croniter is deliberately not used to compute them: it gets DST, ``*/n`` in
day-of-week and one-value ranges wrong.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from .cronexpr import CronSyntaxError, Expression

__all__ = ["CronSyntaxError", "Schedule", "next_after", "parse"]

_UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)
_TICK = timedelta(microseconds=1)

# A Gregorian calendar repeats itself, weekdays included, every 400 years: an
# expression that matches no day in 400 consecutive years never matches.
_CYCLE_YEARS = 400

_MONTH_LENGTHS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


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


def _offset(dt: datetime) -> timedelta:
    """The UTC offset of an aware datetime (a ZoneInfo always has one)."""
    off = dt.utcoffset()
    assert off is not None
    return off


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
        "_years",
        "expr",
        "fixed_time",
        "has_seconds",
    )

    def __init__(self, expr: str) -> None:
        parsed = Expression(expr)
        self.expr = expr
        self._fields = parsed.fields
        self.has_seconds = parsed.has_seconds
        self.fixed_time = parsed.fixed_time
        self._seconds = _lookup(frozenset(parsed.second.values), 59, -1)
        self._minutes = _lookup(frozenset(parsed.minute.values), 59, -1)
        self._hours = _lookup(frozenset(parsed.hour.values), 23, -1)
        self._months = _lookup(frozenset(parsed.month.values), 12, 0)
        dom, dow = parsed.dom, parsed.dow
        self._dom, self._dow = dom, dow
        dom_all = dom.values >= set(range(1, 32))
        dow_all = dow.values >= set(range(7))
        # Every day matches: either both fields cover everything, or one covers
        # everything and the OR rule (both restricted) applies.
        self._simple_days = (dom_all and dow_all) or (
            not dom.star and not dow.star and (dom_all or dow_all)
        )
        self._month_cache: dict[tuple[int, int], tuple[int, ...]] = {}
        self._years = tuple(sorted(parsed.year)) if parsed.year is not None else None
        first = (self._years[0], self._years[-1]) if self._years else (2000, 2000 + _CYCLE_YEARS)
        if self._next_naive(first[0], 1, 1, 0, 0, 0, first[1]) is None:
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
        months, hours, minutes, seconds, years = (
            self._months,
            self._hours,
            self._minutes,
            self._seconds,
            self._years,
        )
        while True:
            if y > limit_year:
                return None
            if years is not None and y not in years:
                i = bisect.bisect_left(years, y)
                if i == len(years):
                    return None
                y, mo, d, h, mi, s = years[i], 1, 1, 0, 0, 0
                continue
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

    def next_after(self, after: datetime, tz: tzinfo | str) -> datetime | None:
        """Return the first firing strictly after ``after``, as an aware UTC datetime;
        None when there is none (only a year field ends a schedule: ``* * * * * 0 2030``
        has no firing after 2030).

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
        if self._years is not None:
            if local.year > self._years[-1]:
                return None
            limit = self._years[-1]
        start = (
            local.year,
            local.month,
            local.day,
            local.hour,
            local.minute,
            local.second,
        )
        best: datetime | None = None
        off = _offset(local)
        last = datetime.fromtimestamp(a1 - 1, tz)
        if _offset(last) < off:
            # a1 is the first instant after a spring-forward gap: the gap's wall times
            # (a fixed-time cron runs them at a1) lie before a1's wall time. Search from
            # the first of them: the wall time one second after a1 - 1 s, in its offset.
            w = last.replace(tzinfo=None) + _SECOND
            start = (w.year, w.month, w.day, w.hour, w.minute, w.second)
        other = _offset(local.replace(fold=1 - local.fold))
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
                if best is not None or self._years is not None:
                    return best
                raise CronSyntaxError(
                    self.expr, f"it never fires in time zone {getattr(tz, 'key', tz)}"
                )
            wall = datetime(*m, tzinfo=tz)
            off0 = _offset(wall)
            off1 = _offset(wall.replace(fold=1))
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

    def previous_before(self, before: datetime, tz: tzinfo | str) -> datetime | None:
        """Return the last firing strictly before ``before``, as an aware UTC datetime;
        None when there is none (before a year field's first year, or 400 years back).

        It is the firing :meth:`next_after` gives from just before it, found by
        bisection over :meth:`next_after`: the two always agree, DST rules included
        (``next_after(previous_before(t) - 1 µs) == previous_before(t)``)."""
        if isinstance(tz, str):
            tz = _zone(tz)
        if before.tzinfo is None or before.utcoffset() is None:
            raise ValueError(f"before must be timezone-aware, got {before!r}")
        before = before.astimezone(_UTC)

        def earlier(point: datetime) -> bool:
            found = self.next_after(point, tz)
            return found is not None and found < before

        floor = datetime(self._years[0], 1, 1, tzinfo=_UTC) - timedelta(days=2) \
            if self._years else before - timedelta(days=366 * (_CYCLE_YEARS + 1))
        span = timedelta(minutes=1)
        lo = before - span
        while not earlier(lo):       # gallop back until a firing lies in [lo, before)
            if lo <= floor:
                return None
            span *= 2
            lo = max(before - span, floor)
        hi = before                  # earlier(lo) holds, earlier(hi) does not
        while hi - lo > _SECOND:
            mid = lo + (hi - lo) / 2
            if earlier(mid):
                lo = mid
            else:
                hi = mid
        if earlier(hi - _TICK):
            lo = hi - _TICK
        return self.next_after(lo, tz)

    def times(self, start: datetime, end: datetime, tz: tzinfo | str,
              limit: int | None = None) -> Iterator[datetime]:
        """The firings from ``start`` to ``end``, both included (as croniter_range),
        oldest first, as aware UTC datetimes; at most ``limit`` of them when given."""
        if isinstance(tz, str):
            tz = _zone(tz)
        t: datetime | None = start - _TICK
        n = 0
        while limit is None or n < limit:
            assert t is not None
            t = self.next_after(t, tz)
            if t is None or t > end:
                return
            n += 1
            yield t


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
) -> datetime | None:
    return parse(expr).next_after(after, tz)


def next_after(expr: str, tz: str | tzinfo, after: datetime) -> datetime | None:
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
