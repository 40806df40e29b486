"""Runners: named adapters (site, job) -> IJobRunner that do the work."""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zope.component import adapter, getGlobalSiteManager
from zope.interface import implementer

from .exceptions import CronkitError
from .interfaces import IJob, IJobRunner, ISite
from .jobs import Job, Param, Status, capture_output

if TYPE_CHECKING:
    from .site import Site


@implementer(IJobRunner)
@adapter(ISite, IJob)
class Runner:
    """Base class of job runners.

    ``self.context`` (also ``self.site``) is the site, ``self.job`` the running job,
    ``self.cron`` the cron of a cron firing (else None) and ``self.environ`` the
    cron's environ (for a submitted job, its payload). The class docstring is the help
    text of the job type; ``parameters`` its parameter format; ``retries`` and
    ``retry_backoff`` (seconds, doubled each attempt) how a failed or lost job is
    retried, and ``retry_on`` (exception classes) which failures are retried (any, when
    empty); a run may also raise ``cronkit.Retry(reason, delay=...)``. A cron firing is
    retried the same way, as the same firing. ``timeout`` is the default hard timeout
    in seconds (processes executor).
    """

    parameters: dict[str, Param] | None = None
    retries: int = 0
    retry_backoff: float = 10.0
    retry_on: tuple[type[BaseException], ...] = ()
    timeout: float | None = None

    def __init__(self, context: Site, job: Job):
        self.context = self.site = context
        self.job = job
        self.cron = getattr(job, "cron", None)
        self.environ = self.cron.environ if self.cron is not None else job.payload

    def run(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.run() is not implemented")


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise CronkitError(f"a runner needs a non-empty name, got {name!r}")
    return name.strip()


def register_runner(factory: Callable, name: str | None = None, registry: Any = None) -> Callable:
    """Register ``factory`` (a Runner subclass) under ``name`` globally, or in ``registry``."""
    name = _check_name(name or getattr(factory, "name", None))
    (registry or getGlobalSiteManager()).registerAdapter(factory, (ISite, IJob), IJobRunner, name)
    return factory


def unregister_runner(name: str, registry: Any = None) -> bool:
    reg = registry or getGlobalSiteManager()
    factory = reg.adapters.lookup((ISite, IJob), IJobRunner, name)
    if factory is None:
        return False
    return reg.unregisterAdapter(factory, (ISite, IJob), IJobRunner, name)


def runner(name: Any = None, *, parameters: dict[str, Param] | None = None,
           retries: int = 0, timeout: float | None = None, **options: Any) -> Callable:
    """Decorator registering a runner globally, with or without arguments
    (``@runner``, ``@runner()``, ``@runner("name", retries=3)``).

    On a Runner subclass it registers the class. On a function ``fn(job)`` it builds a
    Runner whose ``run()`` calls it (help text = the function's docstring; other
    keyword arguments become class attributes, e.g. ``retry_backoff``) and returns the
    function, still callable, with ``fn.runner`` (the Runner class, which the processes
    executor's children import) and ``fn.submit(site, payload=None, **options)``,
    which queues a job of it (``site.submit``'s options) and returns the Job."""
    if callable(name) and not isinstance(name, str):   # bare @runner
        return runner()(name)

    def decorate(obj: Callable) -> Callable:
        if inspect.isclass(obj):
            for key, value in options.items():
                setattr(obj, key, value)
            return register_runner(obj, name or obj.__name__.lower())
        attrs = {"__doc__": obj.__doc__, "run": lambda self: obj(self.job),
                 "parameters": parameters, "retries": retries, "timeout": timeout,
                 "__module__": obj.__module__, **options}
        cls = type(obj.__name__, (Runner,), attrs)
        # Importable by path: module:function.runner, for the processes executor.
        cls.__qualname__ = f"{obj.__qualname__}.runner"
        job_type = _check_name(name or obj.__name__)
        register_runner(cls, job_type)

        def submit(site: Site, payload: Any = None, **submit_options: Any) -> Job:
            return site.submit(job_type, payload, **submit_options)

        obj.runner = cls                 # type: ignore[attr-defined]
        obj.submit = submit              # type: ignore[attr-defined]
        obj.job_type = job_type          # type: ignore[attr-defined]
        return obj

    return decorate


def runner_factory(site: Site, name: str) -> Callable | None:
    """The runner registered under ``name`` for ``site`` (site's own first), or None."""
    return site.registry.adapters.lookup((ISite, IJob), IJobRunner, name)


def help_text(factory: Callable) -> str:
    doc = inspect.getdoc(factory) or ""
    if factory.__doc__ is None or doc == inspect.getdoc(Runner):
        return ""
    return doc


def available_jobs(site: Site) -> dict[str, str]:
    """Every job type the site can run: name -> help text."""
    found = site.registry.adapters.lookupAll((ISite, IJob), IJobRunner)
    return {name: help_text(factory) for name, factory in sorted(found) if name}


def job_types(site: Site) -> dict[str, Callable]:
    """name -> runner factory for the site."""
    found = site.registry.adapters.lookupAll((ISite, IJob), IJobRunner)
    return {name: f for name, f in sorted(found) if name}


# -- running one job ----------------------------------------------------------


@dataclass
class Outcome:
    """How a runner's run() went."""

    status: Status
    result: Any = None
    error: str | None = None      # "Type: text" of an exception, or why it could not run
    trace: str | None = None      # the traceback
    unknown: bool = False         # no runner has that name
    exc: BaseException | None = None   # the exception the runner raised


def call_runner(site: Site, job: Job, check_canceled: bool = True) -> Outcome:
    """Look up and run the job's runner, its output captured into the job. Without
    ``check_canceled`` a SUCCESS may still be turned CANCELED by the store's finish."""
    factory = runner_factory(site, job.type)
    if factory is None:
        return Outcome(Status.FAILED, error=f"no runner named {job.type!r} for site {site.name!r}",
                       unknown=True)
    try:
        with capture_output(job):
            result = factory(site, job).run()
    except Exception as exc:  # the runner's failure is the job's outcome, not ours
        return Outcome(Status.FAILED, error=f"{type(exc).__name__}: {exc}",
                       trace=traceback.format_exc(), exc=exc)
    if job._ended is not None:
        status, text = job._ended
        return Outcome(status, result=text if status != Status.FAILED else result,
                       error=text if status == Status.FAILED else None)
    if check_canceled and not job._debug and job.canceled:
        return Outcome(Status.CANCELED, result=result)
    return Outcome(Status.SUCCESS, result=result)


def messages_of(result: Any) -> list[str]:
    """A runner's return value as log messages: None -> [], str -> [str], list -> list."""
    if result is None:
        return []
    if isinstance(result, (list, tuple)):
        return [str(m) for m in result]
    return [str(result)]
