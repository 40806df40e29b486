"""Events and their blinker signals.

Each event is a small frozen keyword-only dataclass with a UTC ``timestamp``, its
interface (``interfaces.py``) and its own blinker signal (``Event.signal``) in
cronkit's namespace. Events carry ids and plain values (``site_name``, ``job_id``,
``cron_uid``, ``status``...; ``to_dict()`` gives them all) beside the live objects
they were built from (``site``, ``job``, ``cron``, ``crontab``, ``log``), which are
left out of comparisons and of ``to_dict()``. The timestamp is read from the clock of
the site's kit.

``notify(event)`` sends an event in two steps:

1. through the registry of the kit that owns it (the site's registry, whose base is
   the kit's): the core flow (save -> synchronise -> queue, restore) is registered
   there, per kit, so two kits in one process never see each other's core events,
   and an error of the core flow propagates;
2. to the blinker signal of its class and of its base classes: the public
   subscriptions (``subscribe``, ``Event.signal.connect``, ``<cron:subscriber>``).
   A receiver that raises is logged, never propagated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from blinker import NamedSignal, Namespace
from zope.interface import implementer

from . import interfaces as i
from .clock import system_clock

if TYPE_CHECKING:
    from .jobs import Job
    from .model import Cron, Crontab, Log
    from .site import Site

log = logging.getLogger(__name__)
signals = Namespace()

#: Fields holding live objects: not compared, not in ``to_dict()``.
_LIVE = frozenset({"site", "crontab", "cron", "job", "log"})


def _live() -> Any:
    return field(default=None, compare=False, repr=False)


@implementer(i.IEvent)
@dataclass(frozen=True, kw_only=True)
class Event:
    signal: ClassVar[NamedSignal]

    timestamp: datetime = field(default=None, compare=False)  # type: ignore[assignment]
    site_name: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):    # a private base shares no signal
            cls.signal = signals.signal(cls.__name__, doc=cls.__doc__)

    def __post_init__(self) -> None:
        site = self._site()
        if self.site_name is None and site is not None:
            self._fill("site_name", site.name)
        if self.timestamp is None:
            clock = getattr(getattr(site, "kit", None), "clock", None) or system_clock
            self._fill("timestamp", clock.now())

    def _site(self) -> Site | None:
        site = getattr(self, "site", None)
        if site is None:
            site = getattr(getattr(self, "crontab", None), "site", None)
        return site

    def _fill(self, name: str, value: Any) -> None:
        if getattr(self, name) is None:
            object.__setattr__(self, name, value)   # frozen: only while being built

    def _fill_from(self, obj: Any, **names: str) -> None:
        """Each field ``name`` not given is read from ``obj.<attribute>``."""
        if obj is None:
            return
        for name, attr in names.items():
            value = getattr(obj, attr, None)
            self._fill(name, str(value) if isinstance(value, Enum) else value)

    def to_dict(self) -> dict[str, Any]:
        """The plain values of the event, JSON-compatible, with its class name."""
        out: dict[str, Any] = {"event": type(self).__name__}
        for f in fields(self):
            if f.name in _LIVE:
                continue
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, datetime) else value
        return out


@implementer(i.IModifiedCrontabEvent)
@dataclass(frozen=True, kw_only=True)
class ModifiedCrontabEvent(Event):
    """A crontab was saved."""

    crontab: Crontab | None = _live()


@implementer(i.ICrontabSynchronisationEvent)
@dataclass(frozen=True, kw_only=True)
class CrontabSynchronisationEvent(Event):
    """The queue of a site must be brought in line with its crontab."""

    site: Site | None = _live()
    crontab: Crontab | None = _live()


@implementer(i.IServerRestartEvent)
@dataclass(frozen=True, kw_only=True)
class ServerRestartEvent(Event):
    """A worker or server started: cron jobs wiped from the queue come back."""

    site: Site | None = _live()
    crontab: Crontab | None = _live()


@implementer(i.IStartedCronJobEvent)
@dataclass(frozen=True, kw_only=True)
class StartedCronJobEvent(Event):
    """A cron firing is about to run."""

    site: Site | None = _live()
    cron: Cron | None = _live()
    cron_uid: str | None = None
    job_id: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._fill_from(self.cron, cron_uid="uid")


@implementer(i.IFinishedCronJobEvent)
@dataclass(frozen=True, kw_only=True)
class FinishedCronJobEvent(Event):
    """A cron firing ended; ``log`` says how (``status`` and ``messages`` too);
    ``missed``: how many firings its Log records as not run (the firing itself when it
    was skipped as missed, and those a "missed: N more" message counts)."""

    site: Site | None = _live()
    cron: Cron | None = _live()
    log: Log | None = _live()
    cron_uid: str | None = None
    job_id: int | None = None
    status: str | None = None
    messages: tuple[str, ...] | None = None
    missed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._fill_from(self.cron, cron_uid="uid")
        self._fill_from(self.log, status="status")
        if self.messages is None and self.log is not None:
            self._fill("messages", tuple(self.log.messages))


@dataclass(frozen=True, kw_only=True)
class _JobEvent(Event):
    """What every job event carries; read from its ``job`` when not given."""

    site: Site | None = _live()
    job: Job | None = _live()
    job_id: int | None = None
    type: str | None = None
    cron_uid: str | None = None

    #: Further fields read from the job: field name -> Job attribute.
    _from_job: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        super().__post_init__()
        self._fill_from(self.job, job_id="id", type="type", cron_uid="cron_uid",
                        **self._from_job)


@implementer(i.IJobQueuedEvent)
@dataclass(frozen=True, kw_only=True)
class JobQueuedEvent(_JobEvent):
    """A job entered the queue."""


@implementer(i.IJobStartedEvent)
@dataclass(frozen=True, kw_only=True)
class JobStartedEvent(_JobEvent):
    """A job moved to RUNNING and its runner is about to run."""

    attempt: int | None = None
    _from_job = {"attempt": "attempts"}


@implementer(i.IJobProgressEvent)
@dataclass(frozen=True, kw_only=True)
class JobProgressEvent(_JobEvent):
    """A running job reported progress or status text."""

    progress: int | None = None
    text: str | None = None


@implementer(i.IJobRetriedEvent)
@dataclass(frozen=True, kw_only=True)
class JobRetriedEvent(_JobEvent):
    """An attempt of a job failed or was lost: it is PENDING again, due at ``run_after``."""

    attempt: int | None = None
    run_after: datetime | None = None
    reason: str | None = None


@implementer(i.IJobFinishedEvent)
@dataclass(frozen=True, kw_only=True)
class JobFinishedEvent(_JobEvent):
    """A job ended (SUCCESS, FAILED or CANCELED); sent exactly once per job end."""

    status: str | None = None
    message: str | None = None
    attempt: int | None = None
    _from_job = {"status": "status", "message": "message", "attempt": "attempts"}


def notify(event: Event) -> None:
    """Send ``event`` through its kit's registry (the core flow; errors propagate), then
    to every receiver of its class's signal and its bases' (errors are logged)."""
    site = event._site()
    registry = getattr(site, "registry", None)
    if registry is not None:
        registry.handle(event)
    for cls in type(event).__mro__:
        signal = cls.__dict__.get("signal")
        if signal is None or not signal.receivers:
            continue
        for receiver in list(signal.receivers_for(event)):
            try:
                receiver(event)
            except Exception:
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
