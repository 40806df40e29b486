"""Runners: named adapters (site, job) -> IJobRunner that do the work."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zope.component import adapter, getGlobalSiteManager
from zope.interface import implementer

from .exceptions import CronkitError
from .interfaces import IJob, IJobRunner, ISite
from .jobs import Job, OrderedWrites, Param, Status, capture_output

if TYPE_CHECKING:
    from .site import Site

log = logging.getLogger("cronkit.runner")


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
        # A firing's payload is its cron's environ, with the parameter format's defaults.
        self.environ = job.payload if job.payload is not None or self.cron is None \
            else self.cron.environ

    def run(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.run() is not implemented")

    def run_in_context(self) -> Any:
        """Call ``run()`` within what this kind of runner needs around it, and return
        what it returns: the job's outcome is decided from that, or from what it
        raises. Here nothing is around it; a Zope runner (``cronkit.zope.Runner``)
        runs it in a ZODB connection and transaction of its own, on its Zope site."""
        return self.run()


def _start(runner: Any) -> Any:
    """Run an adapter's work: a Runner's ``run_in_context()``, any other IJobRunner's
    ``run()``."""
    return runner.run_in_context() if isinstance(runner, Runner) else runner.run()


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise CronkitError(f"a runner needs a non-empty name, got {name!r}")
    return name.strip()


def _dotted(factory: Any) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', factory)}"


def register_runner(factory: Callable, name: str | None = None, registry: Any = None,
                    replace: bool = True) -> Callable:
    """Register ``factory`` (a Runner subclass) under ``name`` globally, or in ``registry``.

    A name already taken there by another factory is replaced with a warning naming
    both (AtroCore's clash of two add-ons' jobs); with ``replace=False`` it is refused
    with CronkitError and the first stays. Registering the same factory again is a
    no-op."""
    name = _check_name(name or getattr(factory, "name", None))
    reg = registry or getGlobalSiteManager()
    taken = reg.adapters.registered((ISite, IJob), IJobRunner, name)
    if taken is not None and taken is not factory:
        if not replace:
            raise CronkitError(f"runner name {name!r} is taken by {_dotted(taken)}: not "
                               f"registering {_dotted(factory)} (replace=False)")
        log.warning("runner %r: %s replaces %s", name, _dotted(factory), _dotted(taken))
    reg.registerAdapter(factory, (ISite, IJob), IJobRunner, name)
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
        async def run_async(self: Runner) -> Any:
            return await obj(self.job)

        attrs = {"__doc__": obj.__doc__,
                 "run": run_async if inspect.iscoroutinefunction(obj) else
                 lambda self: obj(self.job),
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
    ``check_canceled`` a SUCCESS may still be turned CANCELED by the store's finish.

    When ``run()`` returns an awaitable (an ``async def run``, or a sync ``run`` that
    returns a coroutine: it is not an error, it is awaited the same) it is run to its
    end by :func:`run_awaitable`; what it returns is the runner's result (an awaitable
    again is awaited too: never a SUCCESS with a coroutine for its message). Cancelled
    because the job was canceled or timed out, the outcome is CANCELED."""
    factory = runner_factory(site, job.type)
    if factory is None:
        return _no_runner(site, job)
    try:
        with capture_output(job):
            result = _start(factory(site, job))
            if inspect.isawaitable(result):
                result = run_awaitable(job, result)
    except _Canceled:
        return Outcome(Status.CANCELED)
    except Exception as exc:  # the runner's failure is the job's outcome, not ours
        return _raised(exc)
    return _outcome(job, result, check_canceled and not job._debug and job.canceled)


def _no_runner(site: Site, job: Job) -> Outcome:
    return Outcome(Status.FAILED, error=f"no runner named {job.type!r} for site {site.name!r}",
                   unknown=True)


def _raised(exc: Exception) -> Outcome:
    """The outcome of a run that raised ``exc`` (called where it is handled)."""
    return Outcome(Status.FAILED, error=f"{type(exc).__name__}: {exc}",
                   trace=traceback.format_exc(), exc=exc)


def _outcome(job: Job, result: Any, canceled: bool) -> Outcome:
    """The outcome of a run that returned ``result``."""
    if job._ended is not None:
        status, text = job._ended
        return Outcome(status, result=text if status != Status.FAILED else result,
                       error=text if status == Status.FAILED else None)
    if canceled:
        return Outcome(Status.CANCELED, result=result)
    return Outcome(Status.SUCCESS, result=result)


def is_async(factory: Any) -> bool:
    """Whether a runner's ``run`` is a coroutine function (``async def run``)."""
    return inspect.iscoroutinefunction(getattr(factory, "run", None))


async def acall_runner(site: Site, job: Job, check_canceled: bool, shared: LoopThread) -> Outcome:
    """``call_runner`` for an async runner on ``shared``'s loop, awaited there: no
    thread waits for it. Its blocking parts (settling its writes, reading the cancel
    flag) run in threads."""
    factory = runner_factory(site, job.type)
    if factory is None:
        return _no_runner(site, job)
    try:
        with capture_output(job):
            result = _start(factory(site, job))
            if inspect.isawaitable(result):
                job._stop_asked = False
                job._writes = OrderedWrites(shared.pool)
                try:
                    result = await _supervise(job, result, shared.pool, shared._tasks)
                except BaseException:
                    await asyncio.to_thread(_settle, job, None, False)
                    raise
                await asyncio.to_thread(_settle, job, None)     # a failed write fails it
    except _Canceled:
        return Outcome(Status.CANCELED)
    except Exception as exc:  # the runner's failure is the job's outcome, not ours
        return _raised(exc)
    canceled = check_canceled and not job._debug and await asyncio.to_thread(
        lambda: job.canceled)
    return _outcome(job, result, canceled)


# -- async runners -------------------------------------------------------------------

#: Seconds (real time) between two reads of a running async job's cancel flag.
CANCEL_CHECK = 0.25

_bound = threading.local()     # .loop: the LoopThread of the executor thread running a job


class _Canceled(Exception):
    """An async runner's task was cancelled: its job was canceled, or timed out."""


class LoopThread:
    """One event loop in a thread of its own (``name``, started on first use), on which
    the async runners of an executor run concurrently. A job run in a thread within
    ``bound()`` runs its coroutine there; ``pool`` does the store round trips of those
    jobs; ``cancel(job_id)`` cancels a job's task."""

    def __init__(self, name: str = "cronkit-async", io_threads: int = 4):
        self.name = name
        self.pool = ThreadPoolExecutor(io_threads, thread_name_prefix=f"{name}-io")
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: dict[int, tuple[Job, asyncio.Future]] = {}

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name=self.name,
                                                daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    def running_loop(self) -> asyncio.AbstractEventLoop:
        """The loop (started on first use)."""
        return self._running()

    @contextmanager
    def bound(self) -> Iterator[LoopThread]:
        previous = getattr(_bound, "loop", None)
        _bound.loop = self
        try:
            yield self
        finally:
            _bound.loop = previous

    def run(self, job: Job, awaitable: Awaitable) -> Any:
        """Run ``awaitable`` as ``job``'s task on the loop; block until it ends. The task
        runs in a copy of the calling thread's context (where its output goes)."""
        return asyncio.run_coroutine_threadsafe(
            _supervise(job, awaitable, self.pool, self._tasks), self._running()).result()

    def cancel(self, job_id: int) -> None:
        """Cancel the task of ``job_id`` if it runs here (a timeout): it ends CANCELED."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._cancel, job_id)

    def _cancel(self, job_id: int) -> None:
        if job_id in self._tasks:
            _stop(*self._tasks[job_id])

    def close(self) -> None:
        """Stop the loop (no task may be left on it) and the pool."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
        self.pool.shutdown()


def _stop(job: Job, task: asyncio.Future) -> None:
    job._stop_asked = True
    task.cancel()


async def _awaited(awaitable: Awaitable) -> Any:
    result = await awaitable
    while inspect.isawaitable(result):      # a coroutine returning one
        result = await result
    return result


async def _watch(job: Job, task: asyncio.Future, pool: ThreadPoolExecutor) -> None:
    """Read the job's cancel flag in ``pool`` every CANCEL_CHECK s; cancel the task on it."""
    loop = asyncio.get_running_loop()
    while not task.done():
        try:
            canceled = await loop.run_in_executor(pool, job._store.is_canceled, job.id)
        except Exception as exc:  # the next read may work; the job goes on meanwhile
            log.warning("cannot read the cancel flag of job %s: %s", job.id, exc)
            canceled = False
        if canceled:
            _stop(job, task)
            return
        await asyncio.sleep(CANCEL_CHECK)


async def _supervise(job: Job, awaitable: Awaitable, pool: ThreadPoolExecutor,
                     tasks: dict[int, tuple[Job, asyncio.Future]] | None = None) -> Any:
    """Run the job's awaitable as a task, watched for a cancel of the job."""
    task = asyncio.ensure_future(_awaited(awaitable))
    watch = None if job._debug else asyncio.ensure_future(_watch(job, task, pool))
    if tasks is not None:
        tasks[job.id] = (job, task)
    try:
        return await task
    except asyncio.CancelledError:
        if job._stop_asked:
            raise _Canceled() from None
        current = asyncio.current_task()
        if current is not None and current.cancelling():   # the loop itself is stopping
            raise
        raise CronkitError("the runner's task was cancelled, but no cancel was asked") from None
    finally:
        if tasks is not None:
            tasks.pop(job.id, None)
        if watch is not None:
            watch.cancel()


def _run_in_this_thread(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from a coroutine (kit.run_pending() in async code): a loop of its own.
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1, thread_name_prefix="cronkit-async") as one:
        return one.submit(context.run, asyncio.run, coro).result()


def run_awaitable(job: Job, awaitable: Awaitable) -> Any:
    """Run an async runner's awaitable to its end and return its result; raise what it
    raises (_Canceled when the job's cancel or timeout cancelled it).

    It runs on the executor's shared loop (:class:`LoopThread`) when the calling thread
    is bound to one, else with ``asyncio.run`` in the calling thread
    (``kit.run_pending()``, ``kit.execute``, the processes executor's child, a Celery
    task). Meanwhile the job's writes are queued (:class:`cronkit.jobs.OrderedWrites`)
    and ``job.canceled`` is the flag a watcher task reads every CANCEL_CHECK s; a cancel
    seen cancels the task (``asyncio.CancelledError`` at its await). Every write is in
    the store before this returns (a failed one is raised), so before the job's end."""
    shared: LoopThread | None = getattr(_bound, "loop", None)
    own = None if shared is not None else ThreadPoolExecutor(2, thread_name_prefix="cronkit-io")
    pool = shared.pool if shared is not None else own
    assert pool is not None
    job._stop_asked = False
    job._writes = OrderedWrites(pool)
    try:
        if shared is not None:
            result = shared.run(job, awaitable)
        else:
            result = _run_in_this_thread(_supervise(job, awaitable, pool))
    except BaseException:
        _settle(job, own, raising=False)
        raise
    _settle(job, own)
    return result


def _settle(job: Job, own: ThreadPoolExecutor | None, raising: bool = True) -> None:
    """Write what the job printed, wait for its queued writes, end the async mode."""
    writes = job._writes
    try:
        job._flush_output()
        if writes is not None:
            writes.wait()
    except Exception:
        if raising:
            raise
    finally:
        job._writes = None
        if own is not None:
            own.shutdown()


def messages_of(result: Any) -> list[str]:
    """A runner's return value as log messages: None -> [], str -> [str], list -> list."""
    if result is None:
        return []
    if isinstance(result, (list, tuple)):
        return [str(m) for m in result]
    return [str(result)]
