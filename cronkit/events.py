"""Events and their blinker signals.

Each event is a small frozen keyword-only dataclass with a UTC ``timestamp``; each
class has its own blinker signal (``Event.signal``) in cronkit's namespace.
``notify(event)`` sends it; a receiver that raises is logged, never propagated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from blinker import Namespace

from .clock import system_clock

log = logging.getLogger(__name__)
signals = Namespace()


def _utcnow() -> datetime:
    # The event's own stamp is informational; schedules never read it.
    return system_clock.now()


@dataclass(frozen=True, kw_only=True)
class Event:
    timestamp: datetime = field(default_factory=_utcnow, compare=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.signal = signals.signal(cls.__name__, doc=cls.__doc__)


@dataclass(frozen=True, kw_only=True)
class ModifiedCrontabEvent(Event):
    """A crontab was saved."""

    crontab: Any


@dataclass(frozen=True, kw_only=True)
class CrontabSynchronisationEvent(Event):
    """The queue of a site must be brought in line with its crontab."""

    site: Any
    crontab: Any


@dataclass(frozen=True, kw_only=True)
class ServerRestartEvent(Event):
    """A worker or server started: cron jobs wiped from the queue come back."""

    site: Any = None
    crontab: Any = None


@dataclass(frozen=True, kw_only=True)
class StartedCronJobEvent(Event):
    """A cron firing is about to run."""

    site: Any
    cron: Any


@dataclass(frozen=True, kw_only=True)
class FinishedCronJobEvent(Event):
    """A cron firing ended; ``log`` says how."""

    site: Any
    cron: Any
    log: Any = None


@dataclass(frozen=True, kw_only=True)
class JobQueuedEvent(Event):
    """A job entered the queue."""

    site: Any
    job: Any


@dataclass(frozen=True, kw_only=True)
class JobStartedEvent(Event):
    """A job moved to RUNNING."""

    site: Any
    job: Any


@dataclass(frozen=True, kw_only=True)
class JobProgressEvent(Event):
    """A running job reported progress or status text."""

    site: Any
    job: Any
    progress: int | None = None
    text: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobFinishedEvent(Event):
    """A job ended (SUCCESS, FAILED or CANCELED)."""

    site: Any
    job: Any


def notify(event: Event) -> None:
    """Send ``event`` to every receiver of its class's signal (and its bases')."""
    for cls in type(event).__mro__:
        signal = cls.__dict__.get("signal")
        if signal is None or not signal.receivers:
            continue
        for receiver in list(signal.receivers_for(event)):
            try:
                receiver(event)
            except Exception:
                if getattr(receiver, "_cronkit_core", False):
                    raise  # the core flow (save -> sync) must not fail silently
                log.exception("subscriber %r of %s failed", receiver, cls.__name__)


def subscribe(event_class: type[Event]) -> Callable[[Callable], Callable]:
    """Decorator: ``@subscribe(FinishedCronJobEvent)`` holds ``fn`` strongly."""

    def decorator(fn: Callable) -> Callable:
        event_class.signal.connect(fn, weak=False)
        return fn

    return decorator


def unsubscribe(event_class: type[Event], fn: Callable) -> None:
    """Undo :func:`subscribe`."""
    event_class.signal.disconnect(fn)
