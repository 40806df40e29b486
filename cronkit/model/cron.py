"""Cron: a named periodic firing of a runner, validated on every change."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from zope.interface import implementer

from .. import cronexpr, schedule
from ..clock import system_clock
from ..exceptions import CronkitError, InvalidCron, InvalidLog
from ..interfaces import ICron
from .log import Log, LogList, LogStatus
from .validation import (
    CRON_FIELDS,
    DATEFMT,
    VALIDATORS,
    _check_activated,
    _check_name,
    _check_seconds_first,
    _check_uid,
    _check_user,
    _periodicity_text,
    check_environ,
    check_expanded,
    check_logs_limit,
    check_misfire,
    check_misfire_grace,
    check_timezone,
    drawn,
    expansion,
    json_bool,
    json_input,
    new_uid,
    shown,
    zone,
)

if TYPE_CHECKING:
    from .crontab import Crontab

#: The fields that make what the engine reads (``expanded``).
_SCHEDULE_FIELDS = frozenset({"periodicity", "seconds_first", "expanded"})
_DEFINITION = attrgetter(*CRON_FIELDS)
#: What ``Cron._restore`` reads of a store row, in its order.
_ROW_KEYS = ("uid", "name", "periodicity", "timezone", "user", "misfire", "activated",
             "seconds_first", "environ", "logs_limit", "misfire_grace", "expanded", "logs",
             "position")


@implementer(ICron)
class Cron:
    """A named periodic firing of a runner. Every attribute is validated when set.

    **Persistence API** (for the storage side: the crontab registry manager and the
    cron manager; applications do not need it)

    ``Cron.from_row(row)``
        A Cron from a store row (``ICrontabStore.load_crontab``: the cron fields,
        ``logs`` with their ids, ``position``). Rows were validated when saved: they
        are trusted, not validated again, which keeps restoring 100,000 crons cheap.
    ``cron.position``
        Where the store orders the cron (read-only), None until it is first saved.

    The rest of the change tracking (whether the cron changed since it was saved,
    which of its logs the store holds) is the model's own: its :class:`Crontab`
    reports it (``Crontab.changes()``) and is told of saves (``Crontab.saved()``).
    """

    # Slots, not a __dict__: a site may hold 100,000 crons (ISSUE 16: at most 1.5 KB each).
    __slots__ = ("__weakref__", "_crontab", "_log_ids", "_pinned", "_position", "activated",
                 "_logs", "environ", "expanded", "logs_limit", "misfire", "misfire_grace",
                 "name", "periodicity", "seconds_first", "timezone", "uid", "user")

    uid: str
    name: str
    seconds_first: bool
    periodicity: str
    expanded: str
    timezone: str | None
    activated: bool
    environ: dict[str, Any]
    logs_limit: int
    user: str | None
    misfire: str
    misfire_grace: float | None
    # The logs, made when first asked for: most crons of a big crontab never are.
    _logs: LogList | None
    # The model's change tracking: the crontab holding this cron, the ids of the logs
    # the store holds for it (as last read or saved), its position in the store.
    _crontab: Crontab | None
    _log_ids: tuple[int, ...]
    _position: float | None
    _pinned: bool

    def __init__(self, name: str | None = None, periodicity: str | None = None, *,
                 uid: str | None = None, activated: Any = True, environ: Any = None,
                 timezone: str | None = None, logs_limit: Any = 5, user: str | None = None,
                 misfire: str = "once", misfire_grace: Any = None,
                 logs: Iterable[Log | dict[str, Any] | str | bytes] | None = None,
                 crontab: Crontab | None = None, seconds_first: Any = False,
                 expanded: str | None = None):
        # Each field is checked as its attribute would be, in the order of CRON_FIELDS
        # (so the first bad value is the one named), then set at once.
        put = object.__setattr__
        put(self, "_crontab", None)
        put(self, "_log_ids", ())
        put(self, "_position", None)
        uid = new_uid() if uid is None else _check_uid(uid)
        name = _check_name(name)
        seconds_first = _check_seconds_first(seconds_first)
        periodicity = sys.intern(_periodicity_text(periodicity))
        drawing = expansion(periodicity, seconds_first, uid)   # H hashed from the uid alone
        put(self, "uid", uid)
        put(self, "name", sys.intern(name))
        put(self, "seconds_first", seconds_first)
        put(self, "periodicity", periodicity)
        put(self, "timezone", check_timezone(timezone))
        put(self, "activated", activated if activated is True else _check_activated(activated))
        put(self, "environ", {} if environ is None else check_environ(environ))
        put(self, "logs_limit", logs_limit if logs_limit == 5 and type(logs_limit) is int
            else check_logs_limit(logs_limit))
        put(self, "user", None if user is None else _check_user(user))
        put(self, "misfire", check_misfire(misfire))
        put(self, "misfire_grace", None if misfire_grace is None
            else check_misfire_grace(misfire_grace))
        given = check_expanded(expanded)
        pinned = given is not None and cronexpr.is_drawing(periodicity, given, seconds_first)
        put(self, "expanded", given if pinned else drawing)
        put(self, "_pinned", pinned)
        put(self, "_logs", LogList(self, logs) if logs else None)
        self._cap_logs()
        if crontab is not None:
            crontab.add_cron(self)

    def __setattr__(self, name: str, value: Any) -> None:
        check = VALIDATORS.get(name)
        if check is not None:
            value = check(value)
            if name == "uid" and self._crontab is not None and self.uid != value:
                raise InvalidCron(f"cannot change the uid of a cron in a crontab ({self.uid!r})",
                                  "uid", value)
            if name in _SCHEDULE_FIELDS:
                self._set_schedule(name, value)
                return
        elif name == "logs":
            name, value = "_logs", LogList(self, value or ())
        elif name == "crontab":
            if value is None and self._crontab is not None:
                del self._crontab.crons[self.uid]
            elif value is not None:
                value.add_cron(self)
            return
        object.__setattr__(self, name, value)
        if name == "logs_limit":
            self._cap_logs()
        self._touch()

    @property
    def crontab(self) -> Crontab | None:
        return self._crontab

    @property
    def logs(self) -> LogList:
        """The logs, most recent first (a LogList: a change of it marks the cron changed)."""
        logs = self._logs
        if logs is None:
            logs = LogList(self)
            object.__setattr__(self, "_logs", logs)
        return logs

    # -- what the engine reads: the periodicity, drawn once -------------------

    def _set_schedule(self, name: str, value: Any) -> None:
        """Set ``periodicity``, ``seconds_first`` or ``expanded``, and keep ``expanded``
        the plain expression the engine reads: H and R drawn (once: a periodicity set
        again to the same text keeps its drawing), the fields in cronkit's order."""
        if name != "expanded" and getattr(self, name) == value:
            return
        periodicity = value if name == "periodicity" else self.periodicity
        seconds_first = value if name == "seconds_first" else self.seconds_first
        pinned = False
        if name == "expanded":
            if value is None:               # drawn from the periodicity: keep the drawing
                return
            if cronexpr.is_drawing(periodicity, value, seconds_first):
                expanded, pinned = value, True
            else:   # stale: the drawing of another periodicity (a merged definition)
                expanded = expansion(periodicity, seconds_first, self._hash_id())
        else:
            expanded = expansion(periodicity, seconds_first, self._hash_id())
            object.__setattr__(self, name, sys.intern(value) if name == "periodicity" else value)
        object.__setattr__(self, "expanded", expanded)
        object.__setattr__(self, "_pinned", pinned)
        self._touch()

    def _hash_id(self) -> str:
        """What ``H`` is hashed from: the cron's site and uid (the uid alone until the
        cron is in a site's crontab)."""
        site = self._crontab.site if self._crontab is not None else None
        return f"{site.name}/{self.uid}" if site is not None else self.uid

    def _drawn_in_site(self) -> None:
        """The cron joined a site's crontab: an H not yet saved is drawn again with the
        site's name in its hash id (a saved drawing never moves)."""
        if not self._pinned and drawn(self.periodicity):
            object.__setattr__(self, "expanded",
                               expansion(self.periodicity, self.seconds_first, self._hash_id()))

    def _touch(self) -> None:
        crontab = self._crontab
        if crontab is not None:
            crontab._cron_changed(self.uid)

    def _cap_logs(self) -> None:
        logs = self._logs
        if logs is not None and len(logs) > self.logs_limit:
            del logs[self.logs_limit:]

    # -- time -----------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        """The effective time zone: the cron's, else its site's, else UTC."""
        if self.timezone:
            return zone(self.timezone)
        site = self._crontab.site if self._crontab is not None else None
        return zone(getattr(site, "timezone", None) or "UTC")

    def _instant(self, name: str, instant: Any) -> datetime:
        if not isinstance(instant, datetime) or instant.tzinfo is None:
            raise InvalidCron(f"{name} needs an aware datetime, got {instant!r}", "instant",
                              instant)
        return instant

    def next_after(self, instant: datetime) -> datetime | None:
        """Next firing strictly after the aware datetime ``instant`` (DESIGN rule 5), in
        the cron's time zone; None when there is none (a year field has ended)."""
        found = schedule.parse(self.expanded).next_after(self._instant("next_after", instant),
                                                         self.tz)
        return found.astimezone(self.tz) if found is not None else None

    def previous_before(self, instant: datetime) -> datetime | None:
        """Last firing strictly before the aware datetime ``instant``, in the cron's time
        zone; None when there is none. ``next_after`` of just before it gives it back."""
        found = schedule.parse(self.expanded).previous_before(
            self._instant("previous_before", instant), self.tz)
        return found.astimezone(self.tz) if found is not None else None

    def times(self, start: datetime, end: datetime, limit: int | None = None
              ) -> Iterator[datetime]:
        """The firings from ``start`` to ``end`` (aware datetimes, both included), oldest
        first, in the cron's time zone; at most ``limit`` when given."""
        start, end = self._instant("times", start), self._instant("times", end)
        tz = self.tz
        for t in schedule.parse(self.expanded).times(start, end, tz, limit):
            yield t.astimezone(tz)

    @property
    def next(self) -> datetime | None:
        """Next firing after now (the kit's clock), in the cron's time zone; None if off
        or when it has no more firings."""
        if not self.activated or (self._crontab is not None and not self._crontab.activated):
            return None
        return self.next_after(self._now())

    def _now(self) -> datetime:
        site = self._crontab.site if self._crontab is not None else None
        clock = getattr(getattr(site, "kit", None), "clock", None)
        return (clock or system_clock).now()

    @property
    def last(self) -> Log | None:
        """The most recent log, or None."""
        return self._logs[0] if self._logs else None

    @property
    def signature(self) -> str:
        """What a pending job depends on: a change of it replaces the job. The job row
        carries the environ (payload) and user too, so an edit of them replaces it."""
        base = f"{self.name}|{self.expanded}|{self.tz.key}"
        if not self.environ and self.user is None:
            return base
        extra = json.dumps([self.environ, self.user], sort_keys=True)
        return f"{base}|{hashlib.sha1(extra.encode()).hexdigest()[:16]}"

    def log(self, status: str = LogStatus.OK, messages: Iterable[str] | str | None = None,
            date: datetime | str | None = None) -> Log:
        """Record a run, most recent first, capped at logs_limit; return the Log."""
        entry = Log(date if date is not None else self._now(), status, messages)
        self.logs.insert(0, entry)
        self._cap_logs()
        return entry

    def save(self) -> None:
        """Save this cron (and its logs) through its crontab."""
        if self._crontab is None:
            raise CronkitError(f"cron {self.uid!r} is in no crontab: add it to one first")
        self._crontab.save_cron(self)

    # -- dump / load ----------------------------------------------------------

    def definition(self) -> dict[str, Any]:
        return dict(zip(CRON_FIELDS, _DEFINITION(self), strict=True))

    def _definition_values(self) -> tuple[Any, ...]:
        """The values of ``definition()``, in the order of CRON_FIELDS."""
        return _DEFINITION(self)

    def to_dict(self) -> dict[str, Any]:
        data = self.definition()
        data["environ"] = json.loads(json.dumps(self.environ))
        data["logs"] = [entry.to_dict() for entry in self.logs]
        return data

    dump = to_dict

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cron:
        """A Cron from its dump. Stricter than the constructor: ``activated`` is a
        boolean (not "false", not 0) and ``logs`` a list of log dumps."""
        if not isinstance(data, dict):
            raise InvalidCron(f"a cron must be a JSON object, got {shown(data)}")
        unknown = set(data) - set(CRON_FIELDS) - {"logs"}
        if unknown:
            raise InvalidCron(f"unknown cron field(s): {', '.join(sorted(map(shown, unknown)))}")
        kwargs = dict(data)
        if "activated" in kwargs:
            kwargs["activated"] = json_bool("activated", kwargs["activated"])
        logs = kwargs.pop("logs", None)
        if logs is None:
            logs = []
        if not isinstance(logs, list):
            raise InvalidCron(f"invalid logs {shown(logs)}: expected a list of logs", "logs",
                              logs)
        try:
            logs = [Log.load(entry) for entry in logs]
        except InvalidLog as exc:
            raise InvalidCron(f"invalid log in cron {shown(data.get('uid'))}: {exc}",
                              "logs") from None
        return cls(logs=logs, **kwargs)

    @classmethod
    def load(cls, data: Cron | dict[str, Any] | str | bytes) -> Cron:
        if isinstance(data, Cron):
            return data
        return cls.from_dict(json_input(data, "cron", InvalidCron))

    def similar(self, other: Cron) -> bool:
        """Same definition (every field but logs and crontab)."""
        return isinstance(other, Cron) and self.definition() == other.definition()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cron):
            return NotImplemented
        return self.similar(other) and list(self.logs) == list(other.logs)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        state = "ON" if self.activated else "OFF"
        if self.activated:
            try:
                nxt = self.next_after(self._now())
                state += ":" + (nxt.strftime(DATEFMT) if nxt is not None else "done")
            except CronkitError:  # pragma: no cover - defensive, periodicity is validated
                pass
        logs = f" ({len(self._logs)} logs)" if self._logs else ""
        env = f" {self.environ!r}" if self.environ else ""
        return f"cron: {self.name}/{self.uid} [{state}]{logs}{env}"

    # -- persistence API (see the class docstring) -----------------------------

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Cron:
        """A Cron from a trusted store row, not validated again."""
        cron = cls.__new__(cls)
        object.__setattr__(cron, "_crontab", None)
        cron._restore(row)
        return cron

    @property
    def position(self) -> float | None:
        """Where the store orders this cron; None until it is first saved."""
        return self._position

    # The model's own bookkeeping, used by its Crontab: underscored, not for components.

    def _restore(self, row: Mapping[str, Any]) -> None:
        """Show the store row ``row`` (trusted): every field, the logs, the position.
        A row with a ``fields(names)`` method (the SQLite store's) gives its values in
        one call rather than key by key."""
        put = object.__setattr__
        fields = getattr(row, "fields", None)
        values = fields(_ROW_KEYS) if fields is not None else [row[k] for k in _ROW_KEYS]
        (uid, name, periodicity, timezone, user, misfire, activated, seconds_first,
         environ, logs_limit, misfire_grace, expanded, entries, position) = values
        intern = sys.intern     # the same few texts in many crons: one copy each
        put(self, "uid", uid)
        put(self, "name", intern(name))
        put(self, "periodicity", intern(periodicity))
        put(self, "timezone", timezone if timezone is None else intern(timezone))
        put(self, "user", user if user is None else intern(user))
        put(self, "misfire", intern(misfire))
        put(self, "activated", bool(activated))
        put(self, "seconds_first", bool(seconds_first))
        put(self, "environ", environ)
        put(self, "logs_limit", logs_limit)
        put(self, "misfire_grace", misfire_grace)
        put(self, "expanded", intern(expanded) if expanded else self.periodicity)
        put(self, "_pinned", True)
        if entries:
            put(self, "_logs", LogList(self, [Log(**entry) for entry in entries]))
            put(self, "_log_ids", tuple(entry["id"] for entry in entries))
        else:
            put(self, "_logs", None)
            put(self, "_log_ids", ())
        put(self, "_position", position)

    def _unsaved_logs(self) -> tuple[list[Log], list[int]]:
        """(The logs the store does not hold, oldest first; the ids of the logs the
        store holds that this cron dropped.)"""
        if not self._logs and not self._log_ids:
            return [], []
        present = {entry.id for entry in self.logs if entry.id is not None}
        dropped = [i for i in self._log_ids if i not in present]
        return [entry for entry in reversed(self.logs) if entry.id is None], dropped

    def _saved(self, position: float) -> None:
        """The store now holds this cron, at ``position``, with every log it shows (and
        its drawing, which no longer moves)."""
        object.__setattr__(self, "_position", position)
        object.__setattr__(self, "_pinned", True)
        object.__setattr__(self, "_log_ids", tuple(e.id for e in self._logs if e.id is not None)
                           if self._logs else ())

    def _inherit_log_ids(self, ids: tuple[int, ...]) -> None:
        """This cron replaces a deleted one of its uid: the logs the store still holds
        for that one are this cron's to keep or delete."""
        if ids:
            object.__setattr__(self, "_log_ids", tuple(dict.fromkeys(self._log_ids + ids)))

    def _log_stored(self, entry: Log) -> None:
        """Show ``entry``, a log the store appended (its id set), without a change."""
        self.logs._put_stored(entry, self.logs_limit)
        object.__setattr__(self, "_log_ids", tuple(e.id for e in self.logs if e.id is not None))
