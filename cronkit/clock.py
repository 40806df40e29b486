"""Clocks: every reading of the time in cronkit goes through one of these."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from zope.interface import implementer

from .interfaces import IClock


class Clock(Protocol):
    """IClock as a type: what mypy knows of the clock a kit is given."""

    def now(self) -> datetime: ...

    def add_listener(self, fn: Callable[[], object]) -> None: ...


@implementer(IClock)
class SystemClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def add_listener(self, fn: Callable[[], object]) -> None:
        """Real time needs no wake-ups: the worker's own timeout does it."""


#: The clock of code that has no kit at hand (a detached Log, an event's stamp).
system_clock = SystemClock()


def _aware(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError(f"FakeClock needs a timezone-aware datetime, got {dt!r}")
    return dt.astimezone(UTC)


@implementer(IClock)
class FakeClock:
    """A clock that moves only when told: ``set(dt)`` or ``advance(minutes=5)``.

    Workers sleeping on the kit's clock are woken whenever it moves.
    """

    def __init__(self, start: datetime | None = None):
        self._now = _aware(start) if start is not None else datetime(2000, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], object]] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, dt: datetime) -> datetime:
        with self._lock:
            self._now = _aware(dt)
        self._moved()
        return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by a timedelta, or by timedelta keywords (``minutes=5``)."""
        step = (delta or timedelta()) + timedelta(**kwargs)
        with self._lock:
            self._now = self._now + step
        self._moved()
        return self._now

    def add_listener(self, fn: Callable[[], object]) -> None:
        """Call ``fn()`` whenever the clock moves (workers use it to wake up)."""
        self._listeners.append(fn)

    def _moved(self) -> None:
        for fn in list(self._listeners):
            fn()

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()})"
