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

Every file a load reads (the profile and each file it includes) is checked before
zope.configuration reads it: over ``cronkit.profiles.MAX_PROFILE_BYTES``, not UTF-8,
or with more elements than ``MAX_PROFILE_CRONS`` allows, it is refused with a
ProfileError naming the file (and the line); the crons of all of them together are
counted against ``MAX_PROFILE_CRONS`` too.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from xml.parsers import expat
from xml.sax import SAXParseException

from zope.configuration import xmlconfig
from zope.configuration.config import (
    ConfigurationConflictError,
    ConfigurationMachine,
    GroupingContextDecorator,
    defineSimpleDirective,
)
from zope.configuration.exceptions import ConfigurationError, ConfigurationWrapperError
from zope.configuration.fields import GlobalObject
from zope.interface import Interface
from zope.schema import TextLine

from ..events import Event, subscribe
from ..exceptions import CronkitError, InvalidCron, ProfileError
from ..interfaces import IJobRunner
from ..model import Cron
from ..model.validation import MAX_JSON_DEPTH, read_json, text_bool
from ..runner import register_runner
from . import (
    CRON_ATTRIBUTES,
    CronEntry,
    ElementCount,
    apply_entries,
    decode_profile,
    limits,
    plan_entries,
    read_profile,
)

if TYPE_CHECKING:
    from ..kit import Cronkit
    from ..site import Site

__all__ = ["ICronDirective", "ICrontabDirective", "IRunnerDirective", "ISubscriberDirective",
           "CrontabDirective", "Plan", "load_profile", "runner", "subscriber"]

#: Order of the action that applies the plan: after every recording action.
APPLY_ORDER = 1_000_000
NAMESPACE = "http://namespaces.cronkit.org/cron"


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
    seconds_first = TextLine(title="Seconds first", description="true reads 6 or 7 fields "
                             "with the seconds first (Quartz, cronsim); default false.",
                             required=False)
    expanded = TextLine(title="Expanded", description="The drawing of H and R to keep (as "
                        "exported); drawn anew when it is not one of the periodicity.",
                        required=False)
    remove = TextLine(title="Remove", description="true deletes the cron.", required=False)


# -- the plan the actions fill ------------------------------------------------


class Plan:
    """What one profile load will do; applied once, by the last action."""

    def __init__(self, kit: Cronkit | None = None, max_crons: int | None = None):
        self.kit = kit
        self.max_crons = limits(max_crons=max_crons)[1]
        self.declared = 0   # <cron:cron> directives met so far, in every file
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

    def count_cron(self, info: Any) -> None:
        """One more <cron:cron> met; ProfileError beyond ``max_crons`` in all files."""
        self.declared += 1
        if self.declared > self.max_crons:
            raise ProfileError(f"more than {self.max_crons} crons in this profile and the files "
                               "it includes: over the limit (cronkit.profiles.MAX_PROFILE_CRONS)",
                               *_where(info))

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
        plan = machine.cronkit_plan = Plan(getattr(machine, "cronkit_kit", None),
                                           getattr(machine, "cronkit_max_crons", None))
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
                            args=(self.site, text_bool("activated", activated, ProfileError),
                                  _context.info))

    def cron(self, _context: Any, uid: str, remove: str | None = None, **attrs: Any) -> None:
        _plan(_context).count_cron(_context.info)
        uid = _check_name("a cron's uid", uid)
        removed = text_bool("remove", "false" if remove is None else remove, ProfileError)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        for flag in ("activated", "seconds_first"):
            if flag in attrs:
                attrs[flag] = text_bool(flag, attrs[flag], ProfileError)
        if "environ" in attrs:
            attrs["environ"] = read_json(attrs["environ"], f"cron {uid!r}: invalid environ JSON "
                                         f"{attrs['environ'][:60]!r}", ProfileError,
                                         max_depth=MAX_JSON_DEPTH)
        if not removed:
            # Check each value now, so the error points at this line.
            probe = {"name": "probe", "periodicity": "0 * * * * *" if attrs.get(
                "seconds_first") else "* * * * *"} | attrs
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


# -- the files a load reads ----------------------------------------------------------


def check_file(machine: Any, path: str) -> None:
    """Check the ZCML file at ``path`` before zope.configuration reads it (once per
    load): its size, that it is UTF-8, and how many elements and crons it holds
    (counted by expat, which stops at the first one over the limit)."""
    checked: set[str] = machine.cronkit_checked
    if path in checked or not os.path.isfile(path):
        return          # read already, or missing: zope.configuration says so
    checked.add(path)
    max_bytes, max_crons = machine.cronkit_limits
    data = read_profile(path, max_bytes)
    decode_profile(data, path)
    count = ElementCount(path, max_crons)
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def start(tag: str, attrs: Any) -> None:
        count.add(parser.CurrentLineNumber, tag == f"{NAMESPACE} cron")

    parser.StartElementHandler = start
    try:
        parser.Parse(data, True)
    except expat.ExpatError:
        pass            # malformed: zope.configuration reports it, with its line


def _include_paths(_context: Any, file: str | None, package: Any,
                   files: str | None) -> list[str]:
    """The paths ``<include>`` reads, as zope.configuration's ``include`` finds them."""
    context = GroupingContextDecorator(_context)
    if package is not None:
        context.package = package
        context.basepath = None
    if files:
        return sorted(glob.glob(context.path(files)), key=str.lower)
    path = context.path(file or "configure.zcml")
    return [path if os.path.exists(path) or not os.path.exists(path + ".in") else path + ".in"]


def _checked(include: Callable[..., None]) -> Callable[..., None]:
    """zope.configuration's ``include`` (or ``includeOverrides``), checking each file
    (:func:`check_file`) before it is read."""

    def checked_include(_context: Any, file: str | None = None, package: Any = None,
                        files: str | None = None) -> None:
        if not (files and file):   # both: zope.configuration refuses it
            for path in _include_paths(_context, file, package, files):
                check_file(_machine(_context), path)
        include(_context, file, package, files)

    checked_include.__doc__ = include.__doc__
    return checked_include


def load_profile(kit: Cronkit, path: str | os.PathLike[str], *, max_bytes: int | None = None,
                 max_crons: int | None = None) -> None:
    """Load the ZCML profile at ``path`` into ``kit``, whole or not at all.

    cronkit's ``meta.zcml`` is loaded first, so a profile need not include it
    (including it too is harmless). Every error, conflicts included, is raised as a
    ProfileError naming the file and line. A file (the profile, or one it includes)
    over ``max_bytes``, or more than ``max_crons`` crons, is refused before it is
    read whole (default: the limits of cronkit.profiles)."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise ProfileError(f"no such profile {path!r}", file=path)
    machine = ConfigurationMachine()
    xmlconfig.registerCommonDirectives(machine)
    for name, include in (("include", xmlconfig.include),
                          ("includeOverrides", xmlconfig.includeOverrides)):
        defineSimpleDirective(machine, name, xmlconfig.IInclude, _checked(include),
                              namespace="*")
    machine.cronkit_kit = kit
    machine.cronkit_limits = limits(max_bytes, max_crons)
    machine.cronkit_max_crons = machine.cronkit_limits[1]
    machine.cronkit_checked = set()
    xmlconfig.file("meta.zcml", package=sys.modules[__package__], context=machine,
                   execute=False)
    check_file(machine, path)
    try:
        xmlconfig.file(path, context=machine, execute=False)
        machine.execute_actions()
    except ConfigurationError as exc:
        raise _profile_error(exc, path) from None
    except UnicodeDecodeError as exc:   # pragma: no cover - check_file reads UTF-8 first
        # zope.configuration reads files in the locale's encoding: one that is not UTF-8.
        raise ProfileError(f"cannot read the profile in this locale's encoding: {exc}",
                           file=path) from None


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
        if exc.line is not None or exc.file is not None:
            return exc      # it knows where it comes from (an included file, ...)
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
