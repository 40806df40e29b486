"""Tests for cronkit.schedule, the cron-expression engine.

The core of these tests is a brute-force oracle, written here independently of the
module: fixed-time crons are evaluated by walking local wall-clock minutes day by day
(gap times moved to the first instant after the gap, overlap times read at their first
occurrence, duplicates merged); other crons by walking real UTC minutes and reading
them in the cron's time zone. ``next_after`` must agree with it around real DST
transitions and on hypothesis-generated expressions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cronkit.schedule import CronSyntaxError, Schedule, next_after, parse

MINUTE = timedelta(minutes=1)
ZONES = [
    "Europe/Paris",
    "America/New_York",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "UTC",
]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --------------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """A cron expression as plain sets, built without cronkit.schedule."""

    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    doms: frozenset[int]
    months: frozenset[int]
    dows: frozenset[int]  # 0 = Sunday
    dom_star: bool
    dow_star: bool
    fixed: bool


def oracle_field(text: str, lo: int, hi: int) -> set[int]:
    """Tiny independent reader for '*', 'a', 'a-b', '/n' and lists (no names)."""
    out: set[int] = set()
    for item in text.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            a, b = lo, hi
        elif "-" in base:
            a, b = (int(x) for x in base.split("-"))
        else:
            a = int(base)
            b = hi if step else a
        out.update(range(a, b + 1, int(step or 1)))
    return out


def oracle_spec(expr: str) -> Spec:
    f = expr.split()
    seconds = oracle_field(f[5], 0, 59) if len(f) == 6 else {0}
    dows = {d % 7 for d in oracle_field(f[4], 0, 6)}
    return Spec(
        frozenset(seconds),
        frozenset(oracle_field(f[0], 0, 59)),
        frozenset(oracle_field(f[1], 0, 23)),
        frozenset(oracle_field(f[2], 1, 31)),
        frozenset(oracle_field(f[3], 1, 12)),
        frozenset(dows),
        f[2].startswith("*"),
        f[4].startswith("*"),
        not f[0].startswith("*") and not f[1].startswith("*"),
    )


def day_matches(spec: Spec, d: date) -> bool:
    if d.month not in spec.months:
        return False
    dom_ok = d.day in spec.doms
    dow_ok = d.isoweekday() % 7 in spec.dows
    if spec.dom_star or spec.dow_star:
        return dom_ok and dow_ok
    return dom_ok or dow_ok


def oracle_resolve(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant a fixed-time cron runs for this wall time (rule 5)."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first  # exists; fold=0 is the first occurrence when it is ambiguous
    # In a spring-forward gap: walk real minutes until the clock has passed it.
    t = wall.replace(tzinfo=tz, fold=1).astimezone(UTC) - timedelta(hours=3)
    t = t.replace(second=0)
    while t.astimezone(tz).replace(tzinfo=None) <= wall:
        t += MINUTE
    return t


def oracle_fixed_day(spec: Spec, tz: ZoneInfo, d: date) -> list[datetime]:
    if not day_matches(spec, d):
        return []
    out = {
        oracle_resolve(datetime.combine(d, time(h, m, s)), tz)
        for h in spec.hours
        for m in spec.minutes
        for s in spec.seconds
    }
    return sorted(out)


def oracle_fixed_window(
    spec: Spec, tz: ZoneInfo, start: datetime, end: datetime
) -> list[datetime]:
    out: set[datetime] = set()
    d = start.astimezone(tz).date() - timedelta(days=1)
    while d <= end.astimezone(tz).date() + timedelta(days=1):
        out.update(oracle_fixed_day(spec, tz, d))
        d += timedelta(days=1)
    return sorted(x for x in out if start < x <= end)


def minute_matches(spec: Spec, local: datetime) -> bool:
    return (
        local.minute in spec.minutes
        and local.hour in spec.hours
        and day_matches(spec, local.date())
    )


def oracle_real_window(
    spec: Spec, tz: ZoneInfo, start: datetime, end: datetime
) -> list[datetime]:
    out = []
    t = start.replace(second=0, microsecond=0)
    while t <= end:
        if minute_matches(spec, t.astimezone(tz)):
            out.extend(t + timedelta(seconds=s) for s in sorted(spec.seconds))
        t += MINUTE
    return [x for x in out if start < x <= end]


def oracle_window(
    spec: Spec, tz: ZoneInfo, start: datetime, end: datetime
) -> list[datetime]:
    if spec.fixed:
        return oracle_fixed_window(spec, tz, start, end)
    return oracle_real_window(spec, tz, start, end)


def oracle_next(
    spec: Spec, tz: ZoneInfo, after: datetime, horizon_days: int = 1500
) -> datetime | None:
    """First firing strictly after ``after``, or None within the horizon."""
    if spec.fixed:
        # A later wall time never runs before an earlier one, so the first day with
        # a firing after ``after`` holds the answer.
        d = after.astimezone(tz).date() - timedelta(days=1)
        for _ in range(horizon_days):
            found = [x for x in oracle_fixed_day(spec, tz, d) if x > after]
            if found:
                return found[0]
            d += timedelta(days=1)
        return None
    t = after.astimezone(UTC).replace(second=0, microsecond=0)
    stop = after + timedelta(days=horizon_days)
    while t < stop:
        local = t.astimezone(tz)
        if not day_matches(spec, local.date()):
            # Skip towards the next local midnight, stopping short of it by more than
            # any DST shift so that no minute of the next day is jumped over.
            midnight = datetime.combine(
                local.date() + timedelta(days=1), time(), tzinfo=tz
            )
            t = max(t + MINUTE, midnight.astimezone(UTC) - timedelta(hours=3))
            continue
        if local.hour not in spec.hours:
            # Transitions in the tested zones happen on local hour boundaries.
            t += MINUTE * (60 - local.minute)
            continue
        if local.minute in spec.minutes:
            found = [t + timedelta(seconds=s) for s in sorted(spec.seconds)]
            found = [x for x in found if x > after]
            if found:
                return found[0]
        t += MINUTE
    return None


def transitions(zone: str, year: int) -> list[datetime]:
    """UTC instants where the zone's offset changes during the year (by the minute)."""
    tz = ZoneInfo(zone)
    out = []
    t = utc(year, 1, 1)
    prev = t.astimezone(tz).utcoffset()
    while t.year == year:
        nxt = t + timedelta(hours=1)
        if nxt.astimezone(tz).utcoffset() != prev:
            m = t
            while m.astimezone(tz).utcoffset() == prev:
                m += MINUTE
            out.append(m)
            prev = nxt.astimezone(tz).utcoffset()
        t = nxt
    return out


def chain(
    schedule: Schedule, tz: ZoneInfo, start: datetime, end: datetime
) -> list[datetime]:
    out = []
    t = start
    while True:
        t = schedule.next_after(t, tz)
        if t > end:
            return out
        out.append(t)


FIXED_EXPRS = [
    "30 2 * * *",
    "0 2 * * *",
    "0,30 1-3 * * *",
    "15 1 * * 0",
    "45 1 * * *",
    "15 2 * * *",
]
WILD_EXPRS = [
    "*/15 * * * *",
    "0 * * * *",
    "30 * * * *",
    "* 2 * * *",
    "*/30 1-3 * * *",
    "* * * * *",
]


def windows() -> list[tuple[str, datetime]]:
    out = []
    for zone in ZONES:
        found = transitions(zone, 2024)
        assert bool(found) == (zone not in ("Asia/Kolkata", "UTC"))
        out.extend((zone, t) for t in found)
        if not found:
            out.append((zone, utc(2024, 3, 31, 1)))
    return out


WINDOWS = windows()


def test_oracle_sees_the_expected_transitions() -> None:
    assert transitions("Europe/Paris", 2024) == [
        utc(2024, 3, 31, 1),
        utc(2024, 10, 27, 1),
    ]
    assert transitions("Australia/Lord_Howe", 2024) == [
        utc(2024, 4, 6, 15),
        utc(2024, 10, 5, 15, 30),
    ]


@pytest.mark.parametrize("expr", FIXED_EXPRS + WILD_EXPRS)
@pytest.mark.parametrize(("zone", "transition"), WINDOWS, ids=lambda v: str(v))
def test_chained_next_after_matches_oracle_around_transitions(
    expr: str, zone: str, transition: datetime
) -> None:
    tz = ZoneInfo(zone)
    spec = oracle_spec(expr)
    schedule = parse(expr)
    assert schedule.fixed_time == spec.fixed
    start, end = transition - timedelta(hours=30), transition + timedelta(hours=30)
    expected = oracle_window(
        spec, tz, start - timedelta(days=2), end + timedelta(days=3)
    )
    assert chain(schedule, tz, start, end) == [x for x in expected if start < x <= end]
    # Also from arbitrary instants (odd seconds, microseconds) inside the window.
    q = start + timedelta(seconds=17, microseconds=5)
    while q < end:
        want = next((x for x in expected if x > q), None) or oracle_next(spec, tz, q)
        assert schedule.next_after(q, tz) == want, q
        q += timedelta(minutes=23, seconds=11)


@pytest.mark.parametrize(
    "expr", ["30 2 * * * 0,30", "*/20 * * * * 10", "* 2 * * * */20"]
)
@pytest.mark.parametrize("zone", ["Europe/Paris", "Australia/Lord_Howe"])
def test_seconds_around_transitions_match_oracle(expr: str, zone: str) -> None:
    tz = ZoneInfo(zone)
    spec = oracle_spec(expr)
    schedule = parse(expr)
    for transition in transitions(zone, 2024):
        start, end = transition - timedelta(hours=6), transition + timedelta(hours=6)
        assert chain(schedule, tz, start, end) == oracle_window(spec, tz, start, end)


# --------------------------------------------------------------------------------
# Truth table: DST cases with the expected UTC instants written out
# --------------------------------------------------------------------------------

TRUTH = [
    # Europe/Paris: spring 2024-03-31 02:00 CET -> 03:00 CEST (01:00Z)
    (
        "Europe/Paris",
        "30 2 * * *",
        utc(2024, 3, 30, 12),
        [utc(2024, 3, 31, 1), utc(2024, 4, 1, 0, 30)],
    ),
    (
        "Europe/Paris",
        "0 2 * * *",
        utc(2024, 3, 30, 12),
        [utc(2024, 3, 31, 1), utc(2024, 4, 1, 0)],
    ),
    # Gap times that collapse to the same instant fire once.
    (
        "Europe/Paris",
        "0,30 2 * * *",
        utc(2024, 3, 30, 12),
        [utc(2024, 3, 31, 1), utc(2024, 4, 1, 0)],
    ),
    (
        "Europe/Paris",
        "0,30 2,3 * * *",
        utc(2024, 3, 30, 23),
        [utc(2024, 3, 31, 1), utc(2024, 3, 31, 1, 30)],
    ),
    (
        "Europe/Paris",
        "*/30 * * * *",
        utc(2024, 3, 31, 0, 15),
        [utc(2024, 3, 31, 0, 30), utc(2024, 3, 31, 1), utc(2024, 3, 31, 1, 30)],
    ),
    (
        "Europe/Paris",
        "* 2 * * *",
        utc(2024, 3, 30, 23),
        [utc(2024, 4, 1, 0), utc(2024, 4, 1, 0, 1)],
    ),
    # Europe/Paris: fall 2024-10-27 03:00 CEST -> 02:00 CET (01:00Z)
    (
        "Europe/Paris",
        "30 2 * * *",
        utc(2024, 10, 26, 12),
        [utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)],
    ),
    (
        "Europe/Paris",
        "30 2 * * *",
        utc(2024, 10, 27, 0, 45),
        [utc(2024, 10, 28, 1, 30)],
    ),
    (
        "Europe/Paris",
        "30 2 * * *",
        utc(2024, 10, 27, 1, 10),
        [utc(2024, 10, 28, 1, 30)],
    ),
    (
        "Europe/Paris",
        "*/30 * * * *",
        utc(2024, 10, 26, 23, 50),
        [
            utc(2024, 10, 27, 0),
            utc(2024, 10, 27, 0, 30),
            utc(2024, 10, 27, 1),
            utc(2024, 10, 27, 1, 30),
            utc(2024, 10, 27, 2),
        ],
    ),
    (
        "Europe/Paris",
        "*/30 * * * *",
        utc(2024, 10, 27, 0, 45),
        [utc(2024, 10, 27, 1), utc(2024, 10, 27, 1, 30)],
    ),
    (
        "Europe/Paris",
        "* 2 * * *",
        utc(2024, 10, 27, 0, 59),
        [utc(2024, 10, 27, 1), utc(2024, 10, 27, 1, 1)],
    ),
    ("Europe/Paris", "* 2 * * *", utc(2024, 10, 27, 1, 59), [utc(2024, 10, 28, 1)]),
    # America/New_York: spring 2024-03-10 (07:00Z), fall 2024-11-03 (06:00Z)
    (
        "America/New_York",
        "30 2 * * *",
        utc(2024, 3, 9, 12),
        [utc(2024, 3, 10, 7), utc(2024, 3, 11, 6, 30)],
    ),
    (
        "America/New_York",
        "0 * * * *",
        utc(2024, 3, 10, 6),
        [utc(2024, 3, 10, 7), utc(2024, 3, 10, 8)],
    ),
    (
        "America/New_York",
        "30 1 * * *",
        utc(2024, 11, 2, 12),
        [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)],
    ),
    (
        "America/New_York",
        "*/30 * * * *",
        utc(2024, 11, 3, 5),
        [
            utc(2024, 11, 3, 5, 30),
            utc(2024, 11, 3, 6),
            utc(2024, 11, 3, 6, 30),
            utc(2024, 11, 3, 7),
        ],
    ),
    (
        "America/New_York",
        "30 1 * * *",
        utc(2024, 11, 3, 6, 10),
        [utc(2024, 11, 4, 6, 30)],
    ),
    # Australia/Sydney (southern hemisphere): fall 2024-04-07 (16:00Z on the 6th),
    # spring 2024-10-06 (16:00Z on the 5th)
    (
        "Australia/Sydney",
        "30 2 * * *",
        utc(2024, 10, 5),
        [utc(2024, 10, 5, 16), utc(2024, 10, 6, 15, 30)],
    ),
    (
        "Australia/Sydney",
        "30 2 * * *",
        utc(2024, 4, 6),
        [utc(2024, 4, 6, 15, 30), utc(2024, 4, 7, 16, 30)],
    ),
    (
        "Australia/Sydney",
        "*/30 * * * *",
        utc(2024, 4, 6, 15),
        [
            utc(2024, 4, 6, 15, 30),
            utc(2024, 4, 6, 16),
            utc(2024, 4, 6, 16, 30),
            utc(2024, 4, 6, 17),
        ],
    ),
    (
        "Australia/Sydney",
        "0 * * * *",
        utc(2024, 10, 5, 15),
        [utc(2024, 10, 5, 16), utc(2024, 10, 5, 17)],
    ),
    # Australia/Lord_Howe: 30-minute shift. Fall 2024-04-07 02:00 -> 01:30 (15:00Z
    # on the 6th), spring 2024-10-06 02:00 -> 02:30 (15:30Z on the 5th)
    (
        "Australia/Lord_Howe",
        "15 2 * * *",
        utc(2024, 10, 5),
        [utc(2024, 10, 5, 15, 30), utc(2024, 10, 6, 15, 15)],
    ),
    (
        "Australia/Lord_Howe",
        "45 1 * * *",
        utc(2024, 4, 6),
        [utc(2024, 4, 6, 14, 45), utc(2024, 4, 7, 15, 15)],
    ),
    (
        "Australia/Lord_Howe",
        "*/15 * * * *",
        utc(2024, 4, 6, 14, 40),
        [
            utc(2024, 4, 6, 14, 45),
            utc(2024, 4, 6, 15),
            utc(2024, 4, 6, 15, 15),
            utc(2024, 4, 6, 15, 30),
        ],
    ),
    (
        "Australia/Lord_Howe",
        "*/15 * * * *",
        utc(2024, 10, 5, 15, 10),
        [utc(2024, 10, 5, 15, 15), utc(2024, 10, 5, 15, 30), utc(2024, 10, 5, 15, 45)],
    ),
    # No DST at all.
    (
        "Asia/Kolkata",
        "30 2 * * *",
        utc(2024, 3, 30, 12),
        [utc(2024, 3, 30, 21), utc(2024, 3, 31, 21)],
    ),
    (
        "UTC",
        "30 2 * * *",
        utc(2024, 3, 30, 12),
        [utc(2024, 3, 31, 2, 30), utc(2024, 4, 1, 2, 30)],
    ),
]


@pytest.mark.parametrize(("zone", "expr", "after", "expected"), TRUTH)
def test_dst_truth_table(
    zone: str, expr: str, after: datetime, expected: list[datetime]
) -> None:
    tz = ZoneInfo(zone)
    got = []
    t = after
    for _ in expected:
        t = parse(expr).next_after(t, tz)
        assert t.tzinfo is UTC
        got.append(t)
    assert got == expected


def test_wildcard_cron_runs_the_repeated_hour_twice() -> None:
    tz = ZoneInfo("Europe/Paris")
    fired = chain(parse("* 2 * * *"), tz, utc(2024, 10, 26, 12), utc(2024, 10, 27, 12))
    assert len(fired) == 120
    assert (
        chain(parse("* 2 * * *"), tz, utc(2024, 3, 30, 12), utc(2024, 3, 31, 12)) == []
    )


# --------------------------------------------------------------------------------
# Field semantics
# --------------------------------------------------------------------------------


def firings(
    expr: str, after: datetime, count: int, zone: str = "UTC"
) -> list[datetime]:
    out = []
    t = after
    for _ in range(count):
        t = parse(expr).next_after(t, ZoneInfo(zone))
        out.append(t)
    return out


def days_of(times: list[datetime]) -> list[int]:
    return [t.day for t in times]


def test_dom_and_dow_both_restricted_either_matches() -> None:
    # September 2024: Fridays are 6, 13, 20, 27.
    got = firings("0 0 13 * 5", utc(2024, 9, 1), 8)
    assert [(t.month, t.day) for t in got] == [
        (9, 6),
        (9, 13),
        (9, 20),
        (9, 27),
        (10, 4),
        (10, 11),
        (10, 13),
        (10, 18),
    ]


def test_dom_or_dow_star_means_both_must_match() -> None:
    assert days_of(firings("0 0 13 * *", utc(2024, 9, 1), 2)) == [13, 13]
    assert days_of(firings("0 0 * * 5", utc(2024, 9, 1), 3)) == [6, 13, 20]
    # '*/2' in day-of-month starts with '*': odd days that are also Mondays.
    got = firings("0 0 */2 * 1", utc(2024, 9, 1), 3)
    assert [(t.month, t.day) for t in got] == [(9, 9), (9, 23), (10, 7)]


def test_star_step_in_dow_is_not_a_restriction() -> None:
    # '*/2' = Sun, Tue, Thu, Sat but it starts with '*', so the 1st must also be one
    # of those (croniter would fire on every such weekday OR the 1st).
    got = firings("0 0 1 * */2", utc(2024, 1, 1), 3)
    assert got == [utc(2024, 2, 1), utc(2024, 6, 1), utc(2024, 8, 1)]
    got = firings("0 0 * * */2", utc(2024, 9, 1), 4)  # 2024-09-01 is a Sunday
    assert days_of(got) == [3, 5, 7, 8]


def test_one_value_range_is_that_value() -> None:
    assert firings("0 12-12 * * *", utc(2024, 1, 1), 2) == [
        utc(2024, 1, 1, 12),
        utc(2024, 1, 2, 12),
    ]
    assert firings("0 0 1 JAN-JAN *", utc(2024, 1, 1), 1) == [utc(2025, 1, 1)]
    assert firings("0 0 * * 3-3", utc(2024, 9, 1), 2) == [
        utc(2024, 9, 4),
        utc(2024, 9, 11),
    ]


def test_seconds_field_is_last() -> None:
    s = parse("0 0 * * * */20")
    assert s.has_seconds and s.fixed_time
    assert firings("0 0 * * * */20", utc(2024, 1, 1), 4) == [
        utc(2024, 1, 1, 0, 0, 20),
        utc(2024, 1, 1, 0, 0, 40),
        utc(2024, 1, 2),
        utc(2024, 1, 2, 0, 0, 20),
    ]
    assert firings("* * * * * 30", utc(2024, 1, 1, 0, 0, 30), 2) == [
        utc(2024, 1, 1, 0, 1, 30),
        utc(2024, 1, 1, 0, 2, 30),
    ]
    assert not parse("* * * * *").has_seconds


def test_strictly_after() -> None:
    assert firings("0 * * * *", utc(2024, 1, 1, 5), 1) == [utc(2024, 1, 1, 6)]
    assert firings("0 * * * *", utc(2024, 1, 1, 4, 59, 59, 999999), 1) == [
        utc(2024, 1, 1, 5)
    ]
    assert firings("0 * * * *", utc(2024, 1, 1, 5, 0, 0, 1), 1) == [utc(2024, 1, 1, 6)]


def test_after_in_another_zone_and_tz_as_string() -> None:
    paris = datetime(2024, 1, 1, 12, tzinfo=ZoneInfo("Europe/Paris"))
    assert parse("0 12 * * *").next_after(paris, "Europe/Paris") == utc(2024, 1, 2, 11)
    assert next_after("0 12 * * *", "Europe/Paris", paris) == utc(2024, 1, 2, 11)
    assert next_after("0 12 * * *", ZoneInfo("Europe/Paris"), paris) == utc(
        2024, 1, 2, 11
    )


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse("* * * * *").next_after(datetime(2024, 1, 1), ZoneInfo("UTC"))


@pytest.mark.parametrize(
    ("alias", "equivalent", "fixed"),
    [
        ("@yearly", "0 0 1 1 *", True),
        ("@annually", "0 0 1 1 *", True),
        ("@monthly", "0 0 1 * *", True),
        ("@weekly", "0 0 * * 0", True),
        ("@daily", "0 0 * * *", True),
        ("@midnight", "0 0 * * *", True),
        ("@hourly", "0 * * * *", False),
        ("@DAILY", "0 0 * * *", True),
    ],
)
def test_aliases(alias: str, equivalent: str, fixed: bool) -> None:
    s = parse(alias)
    assert s.expr == alias and s.fixed_time is fixed and not s.has_seconds
    after = utc(2024, 5, 17, 13, 7)
    assert firings(alias, after, 3) == firings(equivalent, after, 3)


def test_names_lists_wrapping_ranges() -> None:
    got = firings("0 9 * * MON-FRI", utc(2024, 9, 6, 10), 2)  # from a Friday
    assert got == [utc(2024, 9, 9, 9), utc(2024, 9, 10, 9)]
    got = firings("0 0 * * SAT-SUN", utc(2024, 9, 2), 3)
    assert days_of(got) == [7, 8, 14]
    assert days_of(firings("0 0 1 nov-feb *", utc(2024, 3, 1), 4)) == [1, 1, 1, 1]
    assert [t.month for t in firings("0 0 1 nov-feb *", utc(2024, 3, 1), 4)] == [
        11,
        12,
        1,
        2,
    ]
    assert [t.hour for t in firings("0 22-1 * * *", utc(2024, 1, 1, 12), 4)] == [
        22,
        23,
        0,
        1,
    ]
    assert [t.minute for t in firings("10/20 * * * *", utc(2024, 1, 1), 3)] == [
        10,
        30,
        50,
    ]
    assert days_of(firings("0 0 * * 7", utc(2024, 9, 2), 1)) == [8]


def test_croniter_extras() -> None:
    assert firings("0 0 L * *", utc(2024, 1, 31), 2) == [
        utc(2024, 2, 29),
        utc(2024, 3, 31),
    ]
    # 15 June 2024 is a Saturday -> Friday 14; 15 September is a Sunday -> Monday 16.
    assert firings("0 0 15W * *", utc(2024, 6, 1), 1) == [utc(2024, 6, 14)]
    assert firings("0 0 15W * *", utc(2024, 9, 1), 1) == [utc(2024, 9, 16)]
    # 1 June 2024 is a Saturday: the nearest weekday inside the month is Monday 3.
    assert firings("0 0 1W * *", utc(2024, 5, 31), 1) == [utc(2024, 6, 3)]
    # Last weekday: 31 August 2024 is a Saturday -> Friday 30.
    assert firings("0 0 LW * *", utc(2024, 8, 1), 1) == [utc(2024, 8, 30)]
    assert firings("0 0 * * 1#2", utc(2024, 9, 1), 2) == [
        utc(2024, 9, 9),
        utc(2024, 10, 14),
    ]
    assert firings("0 0 * * MON#2", utc(2024, 9, 1), 1) == [utc(2024, 9, 9)]
    assert firings("0 0 * * 5L", utc(2024, 9, 1), 2) == [
        utc(2024, 9, 27),
        utc(2024, 10, 25),
    ]
    assert firings("0 0 * * L5", utc(2024, 9, 1), 1) == [utc(2024, 9, 27)]
    assert firings("0 0 ? * 1", utc(2024, 9, 1), 1) == [utc(2024, 9, 2)]


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("61 * * * *", "minute 61 out of range 0-59"),
        ("* 24 * * *", "hour 24 out of range 0-23"),
        ("* * 0 * *", "day-of-month 0 out of range 1-31"),
        ("* * 32 * *", "day-of-month 32"),
        ("* * * 13 *", "month 13"),
        ("* * * * 8", "day-of-week 8"),
        ("* * * * * 60", "second 60"),
        ("* * * *", "got 4"),
        ("* * * * * * * *", "got 8"),
        ("* * * * * 0 1969", "year 1969 out of range 1970-2099"),
        ("* * * * * 0 2100", "year 2100"),
        ("", "got 0"),
        ("   ", "got 0"),
        ("hello world", "got 2"),
        ("a * * * *", "minute 'a'"),
        ("* * * FOO *", "month 'foo'"),
        ("* * * * MON-FOO", "day-of-week 'foo'"),
        ("* * * MON *", "month 'mon'"),
        ("1,,2 * * * *", "empty item"),
        ("-1 * * * *", "minute ''"),
        ("*/0 * * * *", "step 0"),
        ("*/x * * * *", "step 'x'"),
        ("1-2-3 * * * *", "minute '2-3'"),
        ("? * * * *", "'?'"),
        ("0 0 * * 1#6", "occurrence 6"),
        ("0 0 * * 1#0", "occurrence 0"),
        ("0 0 32W * *", "day-of-month 32"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("@reboot", "@reboot"),
        ("@every_minute", "unknown alias"),
        ("H * * * *", "drawn when the cron is saved"),
        ("0 0 L-2 * *", "day-of-month"),
        ("0\u00a00 * * *", "got 4"),
    ],
)
def test_refusals_name_the_expression(expr: str, reason: str) -> None:
    with pytest.raises(CronSyntaxError) as info:
        parse(expr)
    message = str(info.value)
    assert message.startswith(f"invalid cron expression {expr!r}: ")
    assert reason in message
    assert isinstance(info.value, ValueError)


def test_non_string_refused() -> None:
    with pytest.raises(CronSyntaxError):
        parse(5)  # type: ignore[arg-type]


def test_rare_but_valid_dates_are_accepted() -> None:
    assert firings("0 0 29 2 *", utc(2024, 3, 1), 1) == [utc(2028, 2, 29)]
    # Friday 13th of February only: 2026, then 2037.
    assert firings("0 0 13 2 */7", utc(2024, 1, 1), 1) == [utc(2028, 2, 13)]


def test_never_fires_in_a_zone() -> None:
    # Wildcard minutes at 02:xx on the last Sunday of March: always inside Paris's
    # spring-forward gap, so it never runs there, but it does in UTC.
    with pytest.raises(CronSyntaxError, match="never fires in time zone Europe/Paris"):
        parse("* 2 * 3 0L").next_after(utc(2024, 1, 1), ZoneInfo("Europe/Paris"))
    assert parse("* 2 * 3 0L").next_after(utc(2024, 1, 1), ZoneInfo("UTC")) == utc(
        2024, 3, 31, 2
    )


def test_fixed_time_flag() -> None:
    assert parse("30 2 * * *").fixed_time
    assert parse("0-59 2 * * *").fixed_time  # only the first character counts
    assert not parse("*/5 2 * * *").fixed_time
    assert not parse("0 */2 * * *").fixed_time
    assert not parse("* * * * * 0").fixed_time


def test_parse_is_cached_and_module_next_after_too() -> None:
    assert parse("7 7 * * *") is parse("7 7 * * *")
    after = utc(2024, 1, 1)
    first = next_after("7 7 * * *", "Asia/Kolkata", after)
    assert next_after("7 7 * * *", "Asia/Kolkata", after) is first
    assert first == utc(2024, 1, 1, 1, 37)


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("*/5 * * * *", "every 5 minutes"),
        ("30 2 * * *", "02:30"),
        ("0 12-12 * * *", "12:00"),
        ("@daily", "00:00"),
        ("0 0 * * * 10", "00:00:10"),
    ],
)
def test_describe(expr: str, words: str) -> None:
    from cronkit.words import describe_expression
    assert words in describe_expression(expr)


def test_describe_fallback() -> None:
    from cronkit.words import describe_fallback

    def fallback(expr: str) -> str:
        fields = tuple(expr.split())
        return describe_fallback(fields, len(fields) > 5)

    assert fallback("30 2 * * *") == "at 02:30 every day"
    assert fallback("*/5 * * * *") == "every 5 minutes"
    assert fallback("0 * * * *") == "at minute 0 of every hour"
    assert "day-of-week 1" in fallback("0 0 * * 1")
    assert fallback("0 0 * * * 0 2030") == "cron: minute 0, hour 0, second 0, year 2030"


def test_the_engine_never_imports_cron_descriptor() -> None:
    import subprocess
    import sys
    code = ("import sys, cronkit, cronkit.schedule; cronkit.schedule.parse('*/5 * * * *');"
            "print('cron_descriptor' in sys.modules, 'cronkit.words' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


# --------------------------------------------------------------------------------
# Hypothesis: random expressions, random instants, against the oracle
# --------------------------------------------------------------------------------


@st.composite
def field(
    draw: st.DrawFn, lo: int, hi: int, star_ok: bool = True
) -> tuple[str, set[int]]:
    """A field's text and, computed separately, the set it denotes."""
    kinds = ["value", "range", "range_step", "list"]
    if star_ok:
        kinds += ["star", "star_step"]
    kind = draw(st.sampled_from(kinds))
    if kind == "star":
        return "*", set(range(lo, hi + 1))
    if kind == "star_step":
        n = draw(st.integers(2, max(2, (hi - lo) // 2)))
        return f"*/{n}", set(range(lo, hi + 1, n))
    items = []
    values: set[int] = set()
    for _ in range(draw(st.integers(1, 3)) if kind == "list" else 1):
        a = draw(st.integers(lo, hi))
        b = draw(st.integers(a, hi))
        shape = (
            kind
            if kind != "list"
            else draw(st.sampled_from(["value", "range", "range_step"]))
        )
        if shape == "value":
            items.append(str(a))
            values.add(a)
        elif shape == "range":
            items.append(f"{a}-{b}")
            values.update(range(a, b + 1))
        else:
            n = draw(st.integers(1, 7))
            items.append(f"{a}-{b}/{n}")
            values.update(range(a, b + 1, n))
    return ",".join(items), values


@st.composite
def expressions(draw: st.DrawFn) -> tuple[str, Spec]:
    minute, minutes = draw(field(0, 59))
    hour, hours = draw(field(0, 23))
    dom, doms = draw(field(1, 31))
    month, months = draw(field(1, 12))
    dow, dows = draw(field(0, 7))
    fields = [minute, hour, dom, month, dow]
    seconds = {0}
    if draw(st.booleans()) and draw(st.booleans()):
        text, seconds = draw(field(0, 59))
        fields.append(text)
    spec = Spec(
        frozenset(seconds),
        frozenset(minutes),
        frozenset(hours),
        frozenset(doms),
        frozenset(months),
        frozenset(d % 7 for d in dows),
        dom.startswith("*"),
        dow.startswith("*"),
        not minute.startswith("*") and not hour.startswith("*"),
    )
    return " ".join(fields), spec


def instants_for(zone: str) -> st.SearchStrategy[datetime]:
    near = transitions(zone, 2025) or [utc(2025, 6, 1)]
    return st.one_of(
        st.builds(
            lambda t, s: t + timedelta(seconds=s),
            st.sampled_from(near),
            st.integers(-3 * 86400, 3 * 86400),
        ),
        st.datetimes(
            datetime(2023, 1, 1), datetime(2027, 1, 1), timezones=st.just(UTC)
        ),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, Spec, str, datetime]:
    expr, spec = draw(expressions())
    zone = draw(st.sampled_from(ZONES))
    return expr, spec, zone, draw(instants_for(zone))


def any_day_matches(spec: Spec) -> bool:
    d = date(2000, 1, 1)
    return any(day_matches(spec, d + timedelta(days=i)) for i in range(146097))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_hypothesis_next_after_matches_oracle(
    case: tuple[str, Spec, str, datetime],
) -> None:
    expr, spec, zone, after = case
    tz = ZoneInfo(zone)
    try:
        schedule = parse(expr)
    except CronSyntaxError as exc:
        assert "never fires" in str(exc)
        assert not any_day_matches(spec)
        return
    assert schedule.fixed_time == spec.fixed
    want = oracle_next(spec, tz, after)
    assume(want is not None)  # very sparse: beyond the oracle's horizon
    got = schedule.next_after(after, tz)
    assert got == want
    # And the one after that, which starts exactly on a firing.
    want2 = oracle_next(spec, tz, got)
    if want2 is not None:
        assert schedule.next_after(got, tz) == want2


CRONITER_AGREES = [
    "0 0 L * *",
    "30 4 L * *",
    "0 0 15W * *",
    "0 0 1W * *",
    "0 0 31W * *",
    "0 0 1,L * *",
    "0 0 * * 2#1",
    "0 0 * * 5#5",
    "0 0 * * 0#3",
    "0 0 * * L5",
    "0 0 * * L0",
    "0 0 L * 1-5",
    "0 0 13 * 5",
    "5 4 * * sun",
    "0 0 1 jan-mar *",
    "*/7 3-9/2 * * *",
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(CRONITER_AGREES),
    st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)),
)
def test_hypothesis_agrees_with_croniter_in_utc_where_croniter_is_right(
    expr: str, after: datetime
) -> None:
    """No DST, no '*/n' day-of-week, no one-value range: croniter is right there."""
    croniter = pytest.importorskip("croniter").croniter
    want = croniter(expr, after).get_next(datetime)
    assert parse(expr).next_after(after, ZoneInfo("UTC")) == want


# -- issue 14: croniter's language, previous_before, times ------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_hypothesis_previous_before_is_the_firing_next_after_gives_back(
    case: tuple[str, Spec, str, datetime],
) -> None:
    expr, _spec, zone, before = case
    try:
        schedule = parse(expr)
    except CronSyntaxError:
        return
    tz = ZoneInfo(zone)
    prev = schedule.previous_before(before, tz)
    assume(prev is not None)
    assert prev < before
    assert schedule.next_after(prev - timedelta(microseconds=1), tz) == prev
    after = schedule.next_after(prev, tz)
    assert after is not None and after >= before     # nothing fires in between


def test_previous_before_across_dst_and_before_the_first_year() -> None:
    paris = ZoneInfo("Europe/Paris")
    s = parse("30 2 * * *")
    # 31 March 2024: 02:30 does not exist in Paris; the fixed-time firing ran at 03:00.
    assert s.previous_before(utc(2024, 3, 31, 12), paris) == utc(2024, 3, 31, 1, 0)
    assert s.previous_before(utc(2024, 3, 31, 1, 0), paris) == utc(2024, 3, 30, 1, 30)
    assert parse("0 0 1 1 * 0 2030").previous_before(utc(2029, 6, 1), "UTC") is None
    assert parse("0 0 1 1 * 0 2030").previous_before(utc(2031, 6, 1), "UTC") == utc(2030, 1, 1)
    with pytest.raises(ValueError):
        s.previous_before(datetime(2024, 1, 1), paris)


def test_times_lists_a_window_both_ends_included_and_bounded() -> None:
    s = parse("0 * * * *")
    got = list(s.times(utc(2024, 1, 1, 0), utc(2024, 1, 1, 3), "UTC"))
    assert got == [utc(2024, 1, 1, h) for h in range(4)]
    assert list(s.times(utc(2024, 1, 1), utc(2025, 1, 1), "UTC", limit=2)) == [
        utc(2024, 1, 1, 0), utc(2024, 1, 1, 1)]
    assert list(parse("* * * * * 0 2024").times(utc(2024, 12, 31, 23, 58), utc(2026, 1, 1),
                                                "UTC")) == [utc(2024, 12, 31, 23, 58),
                                                            utc(2024, 12, 31, 23, 59)]


def test_year_field_limits_the_years_and_ends() -> None:
    s = parse("0 0 29 2 * 0 2025-2030")
    assert s.next_after(utc(2024, 1, 1), "UTC") == utc(2028, 2, 29)
    assert s.next_after(utc(2028, 2, 29), "UTC") is None
    assert parse("0 12 * * * 0 */10").next_after(utc(2024, 1, 1), "UTC") == utc(2030, 1, 1, 12)


def test_day_ranges_up_to_the_last_day_and_nth_weekday_ranges() -> None:
    assert days_of(firings("0 0 25-L/2 * *", utc(2024, 2, 1), 3)) == [25, 27, 29]
    assert days_of(firings("0 0 1-L * *", utc(2024, 4, 28, 12), 3)) == [29, 30, 1]
    # MON-FRI#1: the first Monday, ..., the first Friday of the month
    assert days_of(firings("0 0 * * MON-FRI#1", utc(2024, 9, 1), 5)) == [2, 3, 4, 5, 6]


def test_a_wrapping_range_with_a_step_steps_along_the_wrap() -> None:
    # Thursday 5 September 2024: THU-TUE/2 is Thursday, Saturday, Monday (not Sunday)
    got = firings("0 0 * * THU-TUE/2", utc(2024, 9, 4, 12), 4)
    assert [t.strftime("%a") for t in got] == ["Thu", "Sat", "Mon", "Thu"]
    assert [t.hour for t in firings("0 22-2/2 * * *", utc(2024, 1, 1, 12), 3)] == [22, 0, 2]


def test_expand_draws_h_and_r_once_with_croniter_and_reorders_seconds_first() -> None:
    from croniter import croniter

    from cronkit.cronexpr import expand, hashed, seconds_first_differs

    for expr in ("H H * * *", "H/15 * * * *", "H(0-29)/10 H(9-17) * * 1-5", "0 H * * * H"):
        drawn = expand(expr, hash_id="plone/nightly")
        assert not hashed(drawn) and parse(drawn)
        assert drawn == expand(expr, hash_id="plone/nightly")       # stable
        # croniter's own reading of the same hash id agrees
        want = croniter(expr, utc(2024, 1, 1), hash_id=b"plone/nightly").get_next(datetime)
        assert parse(drawn).next_after(utc(2024, 1, 1), "UTC") == want
    assert expand("H H * * *", hash_id="a/1") != expand("H H * * *", hash_id="b/1") or \
        expand("H H * * *", hash_id="a/2") != expand("H H * * *", hash_id="a/1")
    assert expand("@daily", hash_id="x") == "@daily"                  # aliases not hashed
    assert expand("0 0 12 * * *", seconds_first=True) == "0 12 * * * 0"
    assert expand("0 30 9 * * MON 2030", seconds_first=True) == "30 9 * * MON 0 2030"
    r = expand("R R * * *")
    assert not hashed(r) and parse(r)
    with pytest.raises(CronSyntaxError, match="hash id"):
        expand("H * * * *")
    with pytest.raises(CronSyntaxError, match="seconds first needs 6 fields"):
        expand("0 12 * * *", seconds_first=True)
    with pytest.raises(CronSyntaxError, match="H\\(0-99\\)"):
        expand("H(0-99) * * * *", hash_id="x")
    assert seconds_first_differs("0 0 12 * * *")
    assert not seconds_first_differs("* * * * * *") and not seconds_first_differs("@daily")
    assert not seconds_first_differs("0 12 * * *")


# Field tokens of croniter's language, by field (minute ... year), the extensions too.
CRONITER_TOKENS = (
    ["*", "0", "59", "*/5", "1-5", "5-1", "1,2", "H", "H/5", "H(1-10)", "R", "10/5", "1-1",
     "0-59/59", "1-2/3,4"],
    ["*", "0", "23", "*/5", "22-2", "H", "H(9-17)", "R(1-5)", "2/3", "12-12"],
    ["*", "1", "31", "L", "LW", "15W", "W15", "1-L", "25-L/2", "?", "H", "1,L", "5-L", "*/2"],
    ["*", "1", "12", "JAN", "jan-mar", "NOV-FEB", "*/3", "H", "jan/2", "dec"],
    ["*", "0", "7", "MON", "mon-fri", "FRI-MON", "5#2", "MON#1", "MON-FRI#1", "L5", "5L", "?",
     "sun-sat", "*/2", "1-5/2", "H", "mon,wed", "0-7", "sat#5"],
    ["*", "0", "*/15", "H", "30", "R"],
    ["*", "2024", "2025-2030", "*/10", "2099", "1970"],
)


@st.composite
def croniter_expressions(draw: st.DrawFn) -> str:
    n = draw(st.sampled_from([5, 6, 7]))
    return " ".join(draw(st.sampled_from(CRONITER_TOKENS[i])) for i in range(n))


@settings(max_examples=400, deadline=None)
@given(croniter_expressions())
def test_hypothesis_what_croniter_accepts_cronkit_accepts(expr: str) -> None:
    """croniter's language is cronkit's: every expression croniter 7 accepts is read,
    but one that never fires (croniter's is_valid checks the syntax only)."""
    from croniter import croniter

    from cronkit.cronexpr import expand
    assume(croniter.is_valid(expr, hash_id=b"plone/c1"))
    try:
        parse(expand(expr, hash_id="plone/c1"))
    except CronSyntaxError as exc:
        assert "never fires" in str(exc)


def test_a_gap_firing_is_found_from_just_before_the_clocks_jump() -> None:
    """Found by the previous_before property: from the last microsecond before a
    spring-forward jump, a fixed-time firing inside the gap runs at the jump (it was
    skipped, the search starting at the wall time after the gap)."""
    paris = ZoneInfo("Europe/Paris")
    jump = utc(2025, 3, 30, 1)              # 02:00 CET becomes 03:00 CEST
    for expr in ("0 0-2 1 * 0", "30 2 * * *", "0 2 * * *"):
        s = parse(expr)
        assert s.next_after(jump - timedelta(microseconds=1), paris) == jump, expr
        assert s.next_after(jump - timedelta(seconds=1), paris) == jump, expr
        assert s.previous_before(jump + timedelta(seconds=1), paris) == jump, expr
    assert parse("30 * * * *").next_after(jump - timedelta(microseconds=1), paris) == \
        utc(2025, 3, 30, 1, 30)             # a wildcard hour: 02:30 never happens
