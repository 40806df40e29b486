"""ZCML directives of cronkit, namespace ``http://namespaces.cronkit.org/cron``.

::

    <configure xmlns="http://namespaces.zope.org/zope"
               xmlns:cron="http://namespaces.cronkit.org/cron">
      <cron:runner name="heartbeat" factory="examples.runners.Heartbeat"/>
      <cron:subscriber event="cronkit.FinishedCronJobEvent" handler="examples.runners.noted"/>
      <cron:crontab site="default">
        <cron:cron uid="heartbeat" name="heartbeat" periodicity="* * * * *"/>
      </cron:crontab>
    </configure>

The handlers only check their values and record actions; zope.configuration
resolves overrides and reports conflicts (two runners of one name for one site, two
crons of one uid in one site, two switches of one crontab). The actions themselves
only fill a :class:`Plan`, which a last action applies: every cron is validated
against the live crontabs before anything registers, so a profile applies whole or
not at all. In ZCML a new cron is activated unless it says ``activated="false"``
(crons.xml follows collective.cron: deactivated); an existing cron changes only in
the attributes given; ``remove="true"`` deletes it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from xml.sax import SAXParseException

from zope.configuration import xmlconfig
from zope.configuration.config import ConfigurationConflictError, ConfigurationMachine
from zope.configuration.exceptions import ConfigurationError, ConfigurationWrapperError
from zope.configuration.fields import GlobalObject
from zope.interface import Interface
from zope.schema import TextLine

from ..events import Event, subscribe
from ..exceptions import CronkitError, InvalidCron, ProfileError
from ..interfaces import IJobRunner
from ..model import Cron, as_bool
from ..runner import register_runner
from . import CRON_ATTRIBUTES, CronEntry, apply_entries, plan_entries

if TYPE_CHECKING:
    from ..kit import Cronkit
    from ..site import Site

__all__ = ["ICronDirective", "ICrontabDirective", "IRunnerDirective", "ISubscriberDirective",
           "CrontabDirective", "Plan", "load_profile", "runner", "subscriber"]

#: Order of the action that applies the plan: after every recording action.
APPLY_ORDER = 1_000_000


# -- schemas ------------------------------------------------------------------


class IRunnerDirective(Interface):
    """``<cron:runner name factory [site]/>``: register a job runner."""

    name = TextLine(title="Name", description="The job type the runner runs.", required=True)
    factory = GlobalObject(title="Factory", description="Dotted name of the runner class.",
                           required=True)
    site = TextLine(title="Site", description="Register for this site only (default: "
                    "globally).", required=False)


class ISubscriberDirective(Interface):
    """``<cron:subscriber event handler/>``: subscribe a callable to an event."""

    event = GlobalObject(title="Event", description="Dotted name of a cronkit event class.",
                         required=True)
    handler = GlobalObject(title="Handler", description="Dotted name of a callable fn(event).",
                           required=True)


class ICrontabDirective(Interface):
    """``<cron:crontab site [activated]>``: the crons of one site."""

    site = TextLine(title="Site", required=True)
    activated = TextLine(title="Activated", description="Switch the whole crontab on or off "
                         "(default: leave it as it is).", required=False)


class ICronDirective(Interface):
    """``<cron:cron uid .../>`` inside ``<cron:crontab>``: add, edit or remove a cron."""

    uid = TextLine(title="Uid", required=True)
    name = TextLine(title="Runner name", description="Required for a new cron.", required=False)
    periodicity = TextLine(title="Cron expression", description="Required for a new cron.",
                           required=False)
    activated = TextLine(title="Activated", description="Default true for a new cron.",
                         required=False)
    environ = TextLine(title="Environ", description="A JSON object.", required=False)
    timezone = TextLine(title="IANA time zone", required=False)
    logs_limit = TextLine(title="Logs kept (1-25)", required=False)
    user = TextLine(title="User", required=False)
    misfire = TextLine(title="Misfire policy (once, all, skip)", required=False)
    misfire_grace = TextLine(title="Misfire grace (seconds)", required=False)
    remove = TextLine(title="Remove", description="true deletes the cron.", required=False)


# -- the plan the actions fill ------------------------------------------------


class Plan:
    """What one profile load will do; applied once, by the last action."""

    def __init__(self, kit: Cronkit | None = None):
        self.kit = kit
        self.runners: list[tuple[str, Callable, str | None]] = []
        self.subscribers: list[tuple[type, Callable]] = []
        self.crons: dict[str, list[CronEntry]] = {}
        self.switches: dict[str, tuple[bool, Any]] = {}

    def add_runner(self, name: str, factory: Callable, site: str | None) -> None:
        self.runners.append((name, factory, site))

    def add_subscriber(self, event: type, handler: Callable) -> None:
        self.subscribers.append((event, handler))

    def add_cron(self, site: str, entry: CronEntry) -> None:
        self.crons.setdefault(site, []).append(entry)

    def add_switch(self, site: str, activated: bool, info: Any) -> None:
        self.switches[site] = (activated, info)

    def _site(self, name: str, info: Any = None) -> Site:
        if self.kit is None:
            raise ProfileError(f"site {name!r} needs a kit: load this profile with "
                               "kit.load_profile(path)", *_where(info))
        return self.kit.site(name)

    def apply(self) -> None:
        """Check everything against the live crontabs, then apply it all."""
        sites = set(self.crons) | set(self.switches)
        for name in sorted(sites):
            entries = self.crons.get(name, [])
            first = entries[0] if entries else None
            site = self._site(name, self.switches.get(name, (None, None))[1] or first)
            plan_entries(site.crontab, entries, default_activated=True)
        for name, factory, site_name in self.runners:
            registry = self._site(site_name).registry if site_name is not None else None
            register_runner(factory, name, registry=registry)
        for event, handler in self.subscribers:
            subscribe(event)(handler)   # blinker keys receivers by id: loading twice is a no-op
        for name in sorted(sites):
            activated, info = self.switches.get(name, (None, None))
            source, line = _where(info)
            apply_entries(self._site(name).crontab, self.crons.get(name, []),
                          default_activated=True, activated=activated, source=source, line=line)


def _where(info: Any) -> tuple[str | None, int | None]:
    if isinstance(info, CronEntry):
        return info.file, info.line
    return getattr(info, "file", None), getattr(info, "line", None)


def _machine(context: Any) -> Any:
    while not isinstance(context, ConfigurationMachine) and "context" in vars(context):
        context = vars(context)["context"]
    return context


def _plan(context: Any) -> Plan:
    """The Plan of this configuration run, created (with its apply action) on first use."""
    machine = _machine(context)
    plan = getattr(machine, "cronkit_plan", None)
    if plan is None:
        plan = machine.cronkit_plan = Plan(getattr(machine, "cronkit_kit", None))
        context.action(discriminator=None, callable=plan.apply, order=APPLY_ORDER)
    return plan


def _check_name(what: str, value: Any) -> Any:
    if value is None:
        return None
    if not value.strip():
        raise ProfileError(f"{what} must not be empty")
    return value.strip()


# -- handlers -----------------------------------------------------------------


def runner(_context: Any, name: str, factory: Callable, site: str | None = None) -> None:
    name = _check_name("a runner's name", name)
    site = _check_name("a runner's site", site)
    if not callable(factory):
        raise ProfileError(f"runner {name!r}: factory {factory!r} is not callable")
    _context.action(discriminator=("cronkit:runner", site, name),
                    callable=_plan(_context).add_runner, args=(name, factory, site))


def subscriber(_context: Any, event: Any, handler: Callable) -> None:
    if not (isinstance(event, type) and issubclass(event, Event) and event is not Event):
        raise ProfileError(f"event {event!r} is not a cronkit event class")
    if not callable(handler):
        raise ProfileError(f"handler {handler!r} is not callable")
    _context.action(discriminator=None, callable=_plan(_context).add_subscriber,
                    args=(event, handler))


class CrontabDirective:
    """``<cron:crontab>``: its ``<cron:cron>`` subdirectives each record one entry."""

    def __init__(self, _context: Any, site: str, activated: str | None = None):
        self.site = _check_name("a crontab's site", site)
        if activated is not None:
            _context.action(discriminator=("cronkit:crontab", self.site),
                            callable=_plan(_context).add_switch,
                            args=(self.site, as_bool("activated", activated, ProfileError),
                                  _context.info))

    def cron(self, _context: Any, uid: str, remove: str | None = None, **attrs: Any) -> None:
        uid = _check_name("a cron's uid", uid)
        removed = as_bool("remove", remove or "false", ProfileError)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        if "activated" in attrs:
            attrs["activated"] = as_bool("activated", attrs["activated"], ProfileError)
        if "environ" in attrs:
            try:
                attrs["environ"] = json.loads(attrs["environ"])
            except ValueError as exc:
                raise ProfileError(f"cron {uid!r}: invalid environ JSON "
                                   f"{attrs['environ']!r}: {exc}") from None
        if not removed:
            # Check each value now, so the error points at this line.
            probe = {"name": "probe", "periodicity": "* * * * *"} | attrs
            try:
                Cron(**{k: probe[k] for k in probe if k in CRON_ATTRIBUTES})
            except InvalidCron as exc:
                raise ProfileError(f"cron {uid!r}: {exc}") from None
        info = _context.info
        entry = CronEntry(uid, attrs, removed, getattr(info, "file", None),
                          getattr(info, "line", None))
        _context.action(discriminator=("cronkit:cron", self.site, uid),
                        callable=_plan(_context).add_cron, args=(self.site, entry))

    def __call__(self) -> tuple:
        return ()


# -- loading ------------------------------------------------------------------


def load_profile(kit: Cronkit, path: str | os.PathLike[str]) -> None:
    """Load the ZCML profile at ``path`` into ``kit``, whole or not at all.

    cronkit's ``meta.zcml`` is loaded first, so a profile need not include it
    (including it too is harmless). Every error, conflicts included, is raised as a
    ProfileError naming the file and line."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise ProfileError(f"no such profile {path!r}", file=path)
    machine = ConfigurationMachine()
    xmlconfig.registerCommonDirectives(machine)
    machine.cronkit_kit = kit
    xmlconfig.file("meta.zcml", package=sys.modules[__package__], context=machine,
                   execute=False)
    try:
        xmlconfig.file(path, context=machine, execute=False)
        machine.execute_actions()
    except ConfigurationError as exc:
        raise _profile_error(exc, path) from None


_INFO = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')
# "zope.schema.x.ValidationError: ..." -> "ValidationError: ..."
_EXC_PATH = re.compile(r"^(?:\w+\.)+(?=\w+: )")


def _profile_error(exc: BaseException, path: str) -> CronkitError:
    """A ProfileError (file, line, the problem) from what zope.configuration raised;
    a CronkitError that is not the profile's fault comes out as it is."""
    if isinstance(exc, ConfigurationConflictError):
        discriminator, infos = sorted(exc._conflicts.items(), key=str)[0]
        places = [f"{getattr(i, 'file', '?')}, line {getattr(i, 'line', '?')}" for i in infos]
        kind, *key = discriminator
        what = {"cronkit:runner": "runner {1!r} for site {0!r}", "cronkit:cron":
                "cron uid {1!r} in site {0!r}", "cronkit:crontab": "the switch of crontab {0!r}"}
        label = what.get(kind, "{0!r}").format(*key, None).replace("for site None", "(global)")
        file, line = _where(infos[-1])
        return ProfileError(f"conflicting declarations of {label}: {'; '.join(places)}",
                            file=file, line=line)
    file, line = path, None
    while isinstance(exc, ConfigurationWrapperError):
        info = exc.info
        if getattr(info, "line", None) is not None:
            file, line = info.file, info.line
        exc = exc.evalue
    if isinstance(exc, SAXParseException):
        return ProfileError(f"malformed XML: {exc.getMessage()}",
                            file=exc.getSystemId() or file, line=exc.getLineNumber())
    if isinstance(exc, ProfileError):
        if exc.line is not None:
            return exc
        return ProfileError(exc.message, file=file, line=line)
    if isinstance(exc, ConfigurationError):
        reasons = []
        for detail in (str(d) for d in exc._details):
            match = _INFO.search(detail)
            if match is None:
                reasons.append(_EXC_PATH.sub("", detail))
            elif line is None:
                file, line = match["file"], int(match["line"])
        args = [str(a) for a in exc.args]
        if args[:1] == ["Unknown directive"] and len(args) == 3:
            args = [f"unknown directive {{{args[1]}}}{args[2]}"]
        message = " ".join(args) if args else type(exc).__name__
        return ProfileError(": ".join([message] + reasons), file=file, line=line)
    if isinstance(exc, CronkitError):
        return exc   # not the profile's fault (the store failed...): raised as it is
    return ProfileError(f"{type(exc).__name__}: {exc}", file=file, line=line)


def site_runners(site: Site) -> list[tuple[str, Callable]]:
    """(name, factory) of every runner registered on ``site`` itself, by name."""
    found = [(r.name, r.factory) for r in site.registry.registeredAdapters()
             if r.provided is IJobRunner and r.name]
    return sorted(found, key=lambda item: item[0])
