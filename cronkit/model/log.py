"""Log: one run of a cron; LogList: a cron's logs, which tell the cron when they change."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from zope.interface import implementer

from ..clock import system_clock
from ..exceptions import InvalidLog
from ..interfaces import ILog
from .validation import DATEFMT, json_input, parse_date, shown, text_problem

if TYPE_CHECKING:
    from .cron import Cron


class LogStatus(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAILURE = "FAILURE"
    NOTRUN = "NOTRUN"


def _storable(message: str) -> str:
    """A runner's message as text every store holds (and JSON carries): what UTF-8
    cannot encode (a lone surrogate) is written as its escape."""
    if text_problem(message, nul=False) is None:
        return message
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


@implementer(ILog)
class Log:
    """One run of a cron. ``id`` is the store's id of the log, None until it is saved.

    Messages are what a run reported: text no store could hold (a lone surrogate) is
    kept as its escape, so that a runner's output never breaks a listing.
    ``Log.load`` is stricter: a dump with such text is refused."""

    __slots__ = ("date", "status", "messages", "id")

    def __init__(self, date: datetime | str | None = None, status: str = LogStatus.OK,
                 messages: Iterable[str] | str | None = None, id: int | None = None):
        try:
            self.status = LogStatus(status)
        except ValueError:
            raise InvalidLog(f"invalid log status {shown(status)}: expected one of "
                             f"{', '.join(s.value for s in LogStatus)}") from None
        self.date = parse_date(date, InvalidLog) if date is not None else system_clock.now()
        if messages is None:
            messages = []
        elif isinstance(messages, str):
            messages = [messages]
        elif not isinstance(messages, (list, tuple)):
            raise InvalidLog(f"invalid log messages {shown(messages)}: expected a list of str")
        self.messages = [_storable(str(m)) for m in messages]
        self.id = id

    def to_dict(self) -> dict[str, Any]:
        return {"date": self.date.isoformat(), "status": self.status.value,
                "messages": list(self.messages)}

    dump = to_dict

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Log:
        """A Log from its dump (strict: ``messages`` a list of text, ``id`` an int)."""
        if not isinstance(data, dict):
            raise InvalidLog(f"a log must be a JSON object, got {shown(data)}")
        unknown = set(data) - {"date", "status", "messages", "id"}
        if unknown:
            raise InvalidLog(f"unknown log field(s): {', '.join(sorted(map(shown, unknown)))}")
        if "date" not in data:
            raise InvalidLog("a log needs a date")
        messages = data.get("messages")
        if messages is not None:
            if not isinstance(messages, list) or not all(isinstance(m, str) for m in messages):
                raise InvalidLog(f"invalid log messages {shown(messages)}: expected a list of str")
            for message in messages:
                problem = text_problem(message, nul=False)
                if problem is not None:
                    raise InvalidLog(f"invalid log message {shown(message)}: {problem}")
        log_id = data.get("id")
        if log_id is not None and (isinstance(log_id, bool) or not isinstance(log_id, int)):
            raise InvalidLog(f"invalid log id {shown(log_id)}: expected an integer")
        status = data.get("status", LogStatus.OK)
        if not isinstance(status, str):
            raise InvalidLog(f"invalid log status {shown(status)}: expected one of "
                             f"{', '.join(s.value for s in LogStatus)}")
        return cls(data["date"], status, messages, log_id)

    @classmethod
    def load(cls, data: Log | dict[str, Any] | str | bytes) -> Log:
        if isinstance(data, Log):
            return data
        return cls.from_dict(json_input(data, "log", InvalidLog))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Log):
            return NotImplemented
        return (self.date, self.status, self.messages) == (other.date, other.status, other.messages)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"log: {self.date.strftime(DATEFMT)}/{self.status.value}" + ("+" if self.messages else "")


def _touching(name: str) -> Callable[..., Any]:
    """The list method ``name``, marking the list's cron changed after it ran."""
    method = getattr(list, name)

    def mutate(self: LogList, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        self._cron._touch()
        return result

    mutate.__name__ = name
    return mutate


class LogList(list[Log]):
    """A cron's logs, most recent first; every change marks the cron changed."""

    __slots__ = ("_cron",)

    def __init__(self, cron: Cron, items: Iterable[Log | dict[str, Any] | str | bytes] = ()):
        if items:
            super().__init__(Log.load(i) for i in items)
        self._cron = cron

    for _name in ("__delitem__", "__setitem__", "__iadd__", "append", "extend", "insert",
                  "pop", "remove", "clear", "sort", "reverse"):
        locals()[_name] = _touching(_name)
    del _name

    def _put_stored(self, entry: Log, limit: int) -> None:
        """Show ``entry``, a log the store already holds, first; keep ``limit`` logs.
        The cron is not marked changed: there is nothing to save."""
        list.insert(self, 0, entry)
        if len(self) > limit:
            list.__delitem__(self, slice(limit, None))
