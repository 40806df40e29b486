"""Crontab, Cron and Log: the data, its validation, and its JSON dump/load.

The model knows no store: a crontab attached to a site saves through
``site.save_crontab`` (the crontab registry manager).
"""

from __future__ import annotations

import hashlib
import json
import uuid as uuidlib
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zope.interface import implementer

from . import schedule
from .clock import system_clock
from .exceptions import CronkitError, InvalidCron, InvalidCrontab, InvalidLog, NoSuchCron
from .interfaces import ICron, ICrontab, ILog

MISFIRE_POLICIES = ("once", "all", "skip")
MAX_LOGS_LIMIT = 25
DATEFMT = "%Y-%m-%d %H:%M:%S"  # collective.cron's log date format, read on load


class LogStatus(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAILURE = "FAILURE"
    NOTRUN = "NOTRUN"


def _json_input(data: Any, what: str, error: type[Exception]) -> Any:
    if isinstance(data, (str, bytes)):
        try:
            return json.loads(data)
        except ValueError as exc:
            raise error(f"{what}: invalid JSON ({exc})") from None
    return data


def _parse_date(value: Any, error: type[Exception]) -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            try:
                dt = datetime.strptime(value, DATEFMT)
            except ValueError:
                raise error(f"invalid date {value!r}: expected ISO 8601") from None
    else:
        raise error(f"invalid date {value!r}: expected a datetime or ISO 8601 text")
    # Naive datetimes (collective.cron dumps) are read as UTC.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """Return the ZoneInfo of an IANA name; raise InvalidCron naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidCron(f"unknown timezone {name!r}", "timezone", name) from None


# -- Log ----------------------------------------------------------------------


@implementer(ILog)
class Log:
    """One run of a cron."""

    __slots__ = ("date", "status", "messages", "id")

    def __init__(self, date: datetime | str | None = None, status: str = LogStatus.OK,
                 messages: Iterable[str] | str | None = None, id: int | None = None):
        try:
            self.status = LogStatus(status)
        except ValueError:
            raise InvalidLog(f"invalid log status {status!r}: expected one of "
                             f"{', '.join(s.value for s in LogStatus)}") from None
        self.date = _parse_date(date, InvalidLog) if date is not None else system_clock.now()
        if messages is None:
            messages = []
        elif isinstance(messages, str):
            messages = [messages]
        elif not isinstance(messages, (list, tuple)):
            raise InvalidLog(f"invalid log messages {messages!r}: expected a list of str")
        self.messages = [str(m) for m in messages]
        self.id = id

    def to_dict(self) -> dict:
        return {"date": self.date.isoformat(), "status": self.status.value,
                "messages": list(self.messages)}

    dump = to_dict

    @classmethod
    def from_dict(cls, data: dict) -> Log:
        if not isinstance(data, dict):
            raise InvalidLog(f"a log must be a JSON object, got {data!r}")
        unknown = set(data) - {"date", "status", "messages", "id"}
        if unknown:
            raise InvalidLog(f"unknown log field(s): {', '.join(sorted(unknown))}")
        if "date" not in data:
            raise InvalidLog("a log needs a date")
        return cls(data["date"], data.get("status", LogStatus.OK), data.get("messages"),
                   data.get("id"))

    @classmethod
    def load(cls, data: Log | dict | str | bytes) -> Log:
        if isinstance(data, Log):
            return data
        return cls.from_dict(_json_input(data, "log", InvalidLog))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Log):
            return NotImplemented
        return (self.date, self.status, self.messages) == (other.date, other.status, other.messages)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"log: {self.date.strftime(DATEFMT)}/{self.status.value}" + ("+" if self.messages else "")


class LogList(list):
    """A cron's logs, most recent first; every change marks the cron changed."""

    def __init__(self, cron: Cron, items: Iterable = ()):
        super().__init__(Log.load(i) for i in items)
        self._cron = cron

    def _changed(self) -> None:
        self._cron._touch()

    def _wrap(name: str):  # noqa: N805 - a class-body helper
        method = getattr(list, name)

        def mutate(self, *args, **kwargs):
            result = method(self, *args, **kwargs)
            self._changed()
            return result

        mutate.__name__ = name
        return mutate

    for _name in ("__delitem__", "__setitem__", "__iadd__", "append", "extend", "insert",
                  "pop", "remove", "clear", "sort", "reverse"):
        locals()[_name] = _wrap(_name)
    del _name, _wrap


# -- Cron ---------------------------------------------------------------------


def _check_str(field: str, value: Any, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidCron(f"invalid {field} {value!r}: expected a non-empty string", field, value)
    return value.strip()


_TRUE = {"true", "1", "yes", "on", "y", "t"}
_FALSE = {"false", "0", "no", "off", "n", "f", ""}


def as_bool(field: str, value: Any, error: type[Exception] = InvalidCron) -> bool:
    """Strict boolean reading: True/False, 0/1 and the usual words; anything else refused."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise error(f"invalid {field} {value!r}: expected true or false")


def check_periodicity(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidCron(f"invalid periodicity {value!r}: expected a cron expression",
                          "periodicity", value)
    try:
        schedule.parse(value.strip())
    except ValueError as exc:
        raise InvalidCron(f"invalid periodicity {value!r}: {exc}", "periodicity", value) from None
    return value.strip()


def check_environ(value: Any) -> dict:
    if value is None:
        return {}
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidCron(f"invalid environ {value!r}: not JSON ({exc})", "environ", value) from None
    if not isinstance(value, dict):
        raise InvalidCron(f"invalid environ {value!r}: expected a JSON object", "environ", value)
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise InvalidCron(f"invalid environ {value!r}: not JSON-serialisable ({exc})",
                          "environ", value) from None


def check_logs_limit(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LOGS_LIMIT:
        raise InvalidCron(f"invalid logs_limit {value!r}: expected an integer from 1 to "
                          f"{MAX_LOGS_LIMIT}", "logs_limit", value)
    return value


def check_timezone(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidCron(f"unknown timezone {value!r}", "timezone", value)
    zone(value)
    return value


def check_misfire(value: Any) -> str:
    if value not in MISFIRE_POLICIES:
        raise InvalidCron(f"invalid misfire {value!r}: expected one of "
                          f"{', '.join(MISFIRE_POLICIES)}", "misfire", value)
    return value


def check_misfire_grace(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidCron(f"invalid misfire_grace {value!r}: expected seconds (>= 0) or None",
                          "misfire_grace", value)
    return value


_VALIDATORS = {
    "uid": lambda v: _check_str("uid", str(v) if isinstance(v, int) else v),
    "name": lambda v: _check_str("name", v),
    "periodicity": check_periodicity,
    "timezone": check_timezone,
    "activated": lambda v: as_bool("activated", v),
    "environ": check_environ,
    "logs_limit": check_logs_limit,
    "user": lambda v: _check_str("user", v, required=False),
    "misfire": check_misfire,
    "misfire_grace": check_misfire_grace,
}
CRON_FIELDS = tuple(_VALIDATORS)


def new_uid() -> str:
    return uuidlib.uuid4().hex


@implementer(ICron)
class Cron:
    """A named periodic firing of a runner. Every attribute is validated when set."""

    def __init__(self, name: str | None = None, periodicity: str | None = None, *,
                 uid: str | None = None, activated: Any = True, environ: Any = None,
                 timezone: str | None = None, logs_limit: int = 5, user: str | None = None,
                 misfire: str = "once", misfire_grace: float | None = None,
                 logs: Iterable | None = None, crontab: Crontab | None = None):
        object.__setattr__(self, "_crontab", None)
        object.__setattr__(self, "_log_ids", ())
        self.uid = uid if uid is not None else new_uid()
        self.name = name
        self.periodicity = periodicity
        self.timezone = timezone
        self.activated = activated
        self.environ = environ
        self.logs_limit = logs_limit
        self.user = user
        self.misfire = misfire
        self.misfire_grace = misfire_grace
        object.__setattr__(self, "logs", LogList(self, logs or ()))
        self._cap_logs()
        if crontab is not None:
            crontab.add_cron(self)

    def __setattr__(self, name: str, value: Any) -> None:
        check = _VALIDATORS.get(name)
        if check is not None:
            value = check(value)
            if name == "uid" and self._crontab is not None and getattr(self, "uid", value) != value:
                raise InvalidCron(f"cannot change the uid of a cron in a crontab ({self.uid!r})",
                                  "uid", value)
        elif name == "logs":
            value = LogList(self, value or ())
        elif name == "crontab":
            if value is None and self._crontab is not None:
                del self._crontab.crons[self.uid]
            elif value is not None:
                value.add_cron(self)
            return
        object.__setattr__(self, name, value)
        if name == "logs_limit" and "logs" in self.__dict__:
            self._cap_logs()
        self._touch()

    @property
    def crontab(self) -> Crontab | None:
        return self._crontab

    def _touch(self) -> None:
        crontab = self.__dict__.get("_crontab")
        if crontab is not None:
            crontab._changed.add(self.uid)

    def _cap_logs(self) -> None:
        if len(self.logs) > self.logs_limit:
            del self.logs[self.logs_limit:]

    # -- time -----------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        """The effective time zone: the cron's, else its site's, else UTC."""
        if self.timezone:
            return zone(self.timezone)
        site = self._crontab.site if self._crontab is not None else None
        return zone(getattr(site, "timezone", None) or "UTC")

    def next_after(self, instant: datetime) -> datetime:
        """Next firing strictly after the aware datetime ``instant`` (DESIGN rule 5)."""
        if not isinstance(instant, datetime) or instant.tzinfo is None:
            raise InvalidCron(f"next_after needs an aware datetime, got {instant!r}", "instant", instant)
        return schedule.parse(self.periodicity).next_after(instant, self.tz).astimezone(self.tz)

    @property
    def next(self) -> datetime | None:
        """Next firing after now (the kit's clock), in the cron's time zone; None if off."""
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
        return self.logs[0] if self.logs else None

    @property
    def signature(self) -> str:
        """What a pending job depends on: a change of it replaces the job. The job row
        carries the environ (payload) and user too, so an edit of them replaces it."""
        base = f"{self.name}|{self.periodicity}|{self.tz.key}"
        if not self.environ and self.user is None:
            return base
        extra = json.dumps([self.environ, self.user], sort_keys=True)
        return f"{base}|{hashlib.sha1(extra.encode()).hexdigest()[:16]}"

    def log(self, status: str = LogStatus.OK, messages: Any = None, date: Any = None) -> Log:
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

    def definition(self) -> dict:
        return {f: getattr(self, f) for f in CRON_FIELDS}

    def to_dict(self) -> dict:
        data = self.definition()
        data["environ"] = json.loads(json.dumps(self.environ))
        data["logs"] = [entry.to_dict() for entry in self.logs]
        return data

    dump = to_dict

    @classmethod
    def from_dict(cls, data: dict) -> Cron:
        if not isinstance(data, dict):
            raise InvalidCron(f"a cron must be a JSON object, got {data!r}")
        unknown = set(data) - set(CRON_FIELDS) - {"logs"}
        if unknown:
            raise InvalidCron(f"unknown cron field(s): {', '.join(sorted(unknown))}")
        kwargs = dict(data)
        logs = kwargs.pop("logs", None) or []
        try:
            logs = [Log.load(entry) for entry in logs]
        except InvalidLog as exc:
            raise InvalidCron(f"invalid log in cron {data.get('uid')!r}: {exc}", "logs") from None
        return cls(logs=logs, **kwargs)

    @classmethod
    def load(cls, data: Cron | dict | str | bytes) -> Cron:
        if isinstance(data, Cron):
            return data
        return cls.from_dict(_json_input(data, "cron", InvalidCron))

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
                state += ":" + self.next_after(self._now()).strftime(DATEFMT)
            except CronkitError:  # pragma: no cover - defensive, periodicity is validated
                pass
        logs = f" ({len(self.logs)} logs)" if self.logs else ""
        env = f" {self.environ!r}" if self.environ else ""
        return f"cron: {self.name}/{self.uid} [{state}]{logs}{env}"


# -- Crontab ------------------------------------------------------------------


class CronMap(OrderedDict):
    """uid -> Cron, in order; deleting a cron records it for the next save."""

    def __init__(self, crontab: Crontab):
        super().__init__()
        self._crontab = crontab

    def __setitem__(self, uid: str, cron: Cron) -> None:
        if not isinstance(cron, Cron):
            raise InvalidCrontab(f"crontab entries must be Cron objects, got {cron!r}")
        if cron.uid != uid:
            raise InvalidCrontab(f"key {uid!r} is not the cron's uid {cron.uid!r}")
        self._crontab.add_cron(cron)

    def __delitem__(self, uid: str) -> None:
        cron = self[uid]
        OrderedDict.__delitem__(self, uid)
        object.__setattr__(cron, "_crontab", None)
        self._crontab._changed.discard(uid)
        self._crontab._deleted.add(uid)

    def pop(self, uid, *default):
        if uid not in self:
            if default:
                return default[0]
            raise KeyError(uid)
        cron = self[uid]
        del self[uid]
        return cron

    def clear(self) -> None:
        for uid in list(self):
            del self[uid]


@implementer(ICrontab)
class Crontab:
    """The ordered collection of a site's crons, with a global switch."""

    def __init__(self, crons: Iterable[Cron] | None = None, activated: Any = True,
                 read_only: bool = False):
        self.site = None          # set by Site when this is a site's live crontab
        self._version = None      # store version this object reflects
        self._changed: set[str] = set()
        self._deleted: set[str] = set()
        self._activated_changed = False
        self.crons = CronMap(self)
        self._activated = as_bool("activated", activated, InvalidCrontab)
        self.read_only = bool(read_only)
        for cron in crons or ():
            self.add_cron(cron)

    @property
    def activated(self) -> bool:
        return self._activated

    @activated.setter
    def activated(self, value: Any) -> None:
        value = as_bool("activated", value, InvalidCrontab)
        if value != self._activated:
            self._activated = value
            self._activated_changed = True

    @property
    def dirty(self) -> bool:
        """True while this crontab holds changes not saved yet."""
        return bool(self._changed or self._deleted or self._activated_changed)

    def add_cron(self, cron: Cron) -> Cron:
        """Add ``cron``; a uid already used by another cron gets a new uid."""
        if not isinstance(cron, Cron):
            raise InvalidCrontab(f"add_cron takes a Cron, got {cron!r}")
        if cron._crontab is self and cron.uid in self.crons:
            return cron
        if cron._crontab is not None:
            del cron._crontab.crons[cron.uid]
        while cron.uid in self.crons:
            object.__setattr__(cron, "uid", new_uid())
        OrderedDict.__setitem__(self.crons, cron.uid, cron)
        object.__setattr__(cron, "_crontab", self)
        self._deleted.discard(cron.uid)
        self._changed.add(cron.uid)
        return cron

    def by(self, **criteria: Any) -> list[Cron]:
        """Crons whose attributes equal every given criterion (None means any)."""
        wanted = {k: v for k, v in criteria.items() if v is not None}
        for key in wanted:
            if key not in CRON_FIELDS:
                raise InvalidCrontab(f"cannot search crons by {key!r}")
        return [c for c in self.crons.values()
                if all(getattr(c, k) == v for k, v in wanted.items())]

    def by_name(self, name: str) -> list[Cron]:
        return self.by(name=name)

    def by_uid(self, uid: str) -> Cron:
        try:
            return self.crons[uid]
        except KeyError:
            raise NoSuchCron(f"no cron with uid {uid!r}") from None

    def save(self) -> None:
        """Persist what changed and sync the queue (the site's registry manager)."""
        self._site().save_crontab(self)

    def save_cron(self, cron: Cron) -> None:
        self._site().save_crontab(self, only=cron.uid)

    def _site(self):
        if self.site is None:
            raise CronkitError("this crontab belongs to no site: use site.crontab")
        return self.site

    def to_dict(self) -> dict:
        return {"activated": self.activated, "crons": [c.to_dict() for c in self.crons.values()]}

    dump = to_dict

    @classmethod
    def from_dict(cls, data: Any) -> Crontab:
        if isinstance(data, list):  # collective.cron dumps a bare list of crons
            data = {"crons": data}
        if not isinstance(data, dict):
            raise InvalidCrontab(f"a crontab must be a JSON object, got {data!r}")
        unknown = set(data) - {"activated", "crons", "read_only"}
        if unknown:
            raise InvalidCrontab(f"unknown crontab field(s): {', '.join(sorted(unknown))}")
        crons = data.get("crons") or []
        if not isinstance(crons, list):
            raise InvalidCrontab(f"crons must be a list, got {crons!r}")
        try:
            loaded = [Cron.load(c) for c in crons]
        except InvalidCron as exc:
            raise InvalidCrontab(f"invalid cron: {exc}") from None
        return cls(loaded, data.get("activated", True), data.get("read_only", False))

    @classmethod
    def load(cls, data: Crontab | dict | list | str | bytes) -> Crontab:
        if isinstance(data, Crontab):
            return data
        return cls.from_dict(_json_input(data, "crontab", InvalidCrontab))

    def similar(self, other: Crontab) -> bool:
        """Same switch and the same crons, in order, by definition."""
        return (isinstance(other, Crontab) and self.activated == other.activated
                and len(self.crons) == len(other.crons)
                and all(a.similar(b) for a, b in zip(self.crons.values(), other.crons.values(), strict=True)))

    def __repr__(self) -> str:
        state = "ON" if self.activated else "OFF"
        return f"<Crontab {state} {len(self.crons)} crons{' (unsaved)' if self.dirty else ''}>"

    # -- used by the registry manager ------------------------------------------

    def _mark_saved(self, version: int, only: str | None = None) -> None:
        if only is None:
            self._changed.clear()
            self._deleted.clear()
            self._activated_changed = False
        else:
            self._changed.discard(only)
        self._version = version
