"""A cron's preview, before it is saved: its periodicity as written and as the engine
reads it, in words, its next firings in its time zone, and a note when six fields could
be read another way. One helper for the faces that show one: ``cronkit crons add
--dry-run`` and ``crons show``, ``?dry_run=true`` of the REST API, the dashboard's form.

Nothing here reads the clock or writes to a store: ``now`` is given (the kit's clock).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import cronexpr
from .model import Cron, Crontab
from .words import describe_expression

if TYPE_CHECKING:
    from .site import Site

__all__ = ["PREVIEW_COUNT", "describe", "in_site", "preview", "preview_json", "set_fields"]

#: How many firings a preview lists unless told.
PREVIEW_COUNT = 5

_SECONDS_LAST = "minute hour day-of-month month day-of-week second"
_SECONDS_FIRST = "second minute hour day-of-month month day-of-week"


def describe(expr: str) -> str:
    """The plain expression ``expr`` in words; the expression itself if it cannot be
    described (describing is a courtesy: it never raises)."""
    try:
        return describe_expression(expr)
    except Exception:  # noqa: BLE001 - cron-descriptor's own failures included
        return expr


def in_site(cron: Cron, site: Site) -> Cron:
    """``cron`` as it would be in ``site``: held by a scratch crontab of the site (never
    saved, the live crontab untouched), so that its time zone defaults to the site's and
    its ``H`` is drawn from the site and its uid, as once added. Return ``cron``."""
    scratch = Crontab(activated=site.crontab.activated)
    scratch.site = site
    scratch.add_cron(cron)
    return cron


def preview(cron: Cron, now: datetime, count: int = PREVIEW_COUNT) -> dict[str, Any]:
    """What ``cron`` does from the aware datetime ``now`` (the kit's clock), whether on
    or off: a dict of

    ``periodicity``
        the expression as written;
    ``expanded``, ``expanded_differs``
        what the engine reads (``H`` and ``R`` drawn, seconds last) and whether it is
        not the periodicity;
    ``seconds_first``
        whether six or seven fields are read with the seconds first (Quartz);
    ``description``
        ``expanded`` in English words;
    ``timezone``
        the IANA name of the zone the cron runs in (its own, else its site's);
    ``next``
        its next ``count`` firings after ``now``, aware datetimes in that zone: fewer
        when its year field ends first;
    ``end``
        None, or a sentence saying there are no more firings (a year field ended);
    ``note``
        None, or a sentence saying how six or seven fields are read, when reading them
        the other way (seconds first or last) would fire at other times.
    """
    times: list[datetime] = []
    after: datetime | None = now
    while after is not None and len(times) < count:
        after = cron.next_after(after)
        if after is not None:
            times.append(after)
    end = None
    if len(times) < count:
        end = ("no firing after these: its year field has ended" if times
               else "no firing left: its year field has ended")
    return {"periodicity": cron.periodicity, "expanded": cron.expanded,
            "expanded_differs": cron.expanded != cron.periodicity,
            "seconds_first": cron.seconds_first, "description": describe(cron.expanded),
            "timezone": cron.tz.key, "next": times, "end": end, "note": _note(cron)}


def preview_json(data: dict[str, Any]) -> dict[str, Any]:
    """A :func:`preview` as JSON: its times in ISO-8601, with their UTC offset."""
    return {**data, "next": [t.isoformat() for t in data["next"]]}


def _note(cron: Cron) -> str | None:
    periodicity = cron.periodicity
    seven = len(periodicity.split()) == 7
    year, fields = (" year", "seven") if seven else ("", "six")
    if cron.seconds_first:
        return (f"read with the seconds first, the Quartz way ({_SECONDS_FIRST}{year}); "
                f"cronkit's engine reads it as {cron.expanded!r}")
    if not cronexpr.seconds_first_differs(periodicity):
        return None
    try:
        quartz = describe(cronexpr.expand(periodicity, _hash_id(cron), seconds_first=True))
    except cronexpr.CronSyntaxError as exc:
        other = f"it is refused that way ({exc.reason})"
    else:
        other = f"it would run {quartz}"
    return (f"cronkit reads {fields} fields with the seconds last ({_SECONDS_LAST}{year}): "
            f"{describe(cron.expanded)}. Quartz, Spring and cronsim read the seconds first: "
            f"seconds_first reads it their way, and {other}")


def _hash_id(cron: Cron) -> str:
    """What the cron's ``H`` is drawn from (its site and uid): the model's own rule."""
    return cron._hash_id()


def set_fields(cron: Cron, values: dict[str, Any]) -> Cron:
    """Set ``values`` on ``cron`` (an edit from a face), ``periodicity`` and
    ``seconds_first`` together: each is validated with the other as it is when set, so
    a change of both could be refused half-way ("*/5 * * * *" to "0 0 0 * * *" read
    seconds first). The pair is checked first as it will be, then set through an
    expression read alike either way. Raise InvalidCron naming the field at fault,
    ``cron`` unchanged by the pair. Return ``cron``."""
    values = dict(values)
    periodicity = values.pop("periodicity", None)
    seconds_first = values.pop("seconds_first", None)
    for field, value in values.items():
        setattr(cron, field, value)
    both = periodicity is not None and seconds_first is not None
    if both and bool(seconds_first) != cron.seconds_first:
        Cron("check", periodicity, seconds_first=seconds_first)   # raises if refused
        cron.periodicity = _EITHER_WAY
        cron.seconds_first = seconds_first
    elif seconds_first is not None:
        cron.seconds_first = seconds_first
    if periodicity is not None:
        cron.periodicity = periodicity
    return cron


#: Six fields that read the same seconds first and seconds last.
_EITHER_WAY = "* * * * * *"
