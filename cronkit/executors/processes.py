"""The ``processes`` executor: one child process per job.

Each job gets its own pid, a hard timeout (the child is killed and the job failed
"timed out after N s"), and crash isolation: a child that dies (``os._exit(1)``, a
segfault) fails its job with what is known, and the worker goes on.

A child dies with its worker. It leads a process group of its own (a timeout or a
forced cancel kills the group: the job's own subprocesses too; a Ctrl-C meant for the
worker does not reach it), and on Linux asks the kernel for SIGTERM when its parent
dies (``PR_SET_PDEATHSIG``). On that signal a child still running its runner exits at
once; one that is writing its job's end finishes writing it first, so that work
done is never recorded as lost. The reaper never reaps a job whose own process is
still alive on its host, and a job's end is accepted only from the attempt that owns
it: an orphan that outlived its worker can neither be run over nor close a newer
attempt.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .. import tracing
from ..exceptions import CronkitError
from ..jobs import Status
from .base import BaseExecutor

if TYPE_CHECKING:
    from ..kit import Cronkit


PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, lifecycle: Any = None) -> None:
    """Make this process (a job's child) end when ``parent`` (its worker) does: its own
    process group, and SIGTERM from the kernel at the parent's death (Linux). On it,
    exit at once unless ``lifecycle`` is writing a job's end (then exit after)."""
    try:
        os.setpgid(0, 0)
    except OSError:     # already a group leader, or not allowed: it still dies below
        pass

    def on_parent_death(signum: int, frame: Any) -> None:
        if lifecycle is None or not lifecycle.finishing:
            os._exit(1)
        lifecycle.exit_after_finish = True

    signal.signal(signal.SIGTERM, on_parent_death)
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):   # not Linux: the reaper's pid checks remain
        pass
    if os.getppid() != parent:          # the worker died before the prctl took hold
        os._exit(1)


def on_interrupt(lifecycle: Any, row: dict) -> None:
    """In a job's child: SIGUSR1 from its draining worker (``interrupting``) says the
    run is interrupted by the worker's shutdown (before its canceled flag is set):
    its end then puts the job back to PENDING, as in the worker (JobLifecycle.interrupt)."""
    def interrupted(signum: int, frame: Any) -> None:
        lifecycle.interrupted[row["id"]] = row.get("attempts") or 0

    signal.signal(signal.SIGUSR1, interrupted)


def _forked_child(kit: Cronkit, row: dict, parent: int) -> None:
    faulthandler.disable()  # a crash is reported by the parent, from the exit status
    die_with_parent(parent, kit.lifecycle)
    on_interrupt(kit.lifecycle, row)
    kit.store.after_fork()
    try:
        kit.execute(dict(row, pid=os.getpid()))
    finally:
        tracing.flush()     # os._exit runs no atexit: the run's span is exported first
        os._exit(0)


def _spawned_child(store_url: str, row: dict, factory_ref: str, error_timeout: float,
                   parent: int, started: Any = None) -> None:
    """A fresh interpreter: nothing inherited from the worker's threads (locks held at
    fork time cannot hang it). The runner is imported by its module path."""
    faulthandler.disable()
    die_with_parent(parent)
    from importlib import import_module

    from ..kit import Cronkit
    from ..metrics import enable as enable_metrics
    from ..metrics import multiprocess_dir
    module, _, qualname = factory_ref.partition(":")
    factory: Any = import_module(module)
    for part in qualname.split("."):
        factory = getattr(factory, part)
    kit = Cronkit(store=store_url, error_timeout=error_timeout)
    die_with_parent(parent, kit.lifecycle)     # now it may finish writing an end first
    on_interrupt(kit.lifecycle, row)
    kit.site(row["site"]).register_runner(factory, name=row["type"])
    if multiprocess_dir() is not None:   # prometheus_client's multi-process mode: the
        enable_metrics(kit)              # worker's scrape sums this child's counts
    if started is not None:
        started.set()       # started up (an interpreter, imports): the timeout counts from now
    try:
        kit.execute(dict(row, pid=os.getpid()))
    finally:
        tracing.flush()     # os._exit runs no atexit: the run's span is exported first
        os._exit(0)


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by a job's child ``pid`` (the job's subprocesses
    too), or the process alone if it leads none yet."""
    try:
        os.killpg(pid, signal.SIGKILL)
        return
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def describe_exit(code: int | None) -> str:
    if code is None:
        return "process vanished"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"process killed by {name}"
    return f"process exited with code {code}"


#: Seconds a job's child may take to start up before its timeout counts anyway.
STARTUP_GRACE = 60.0


class ProcessExecutor(BaseExecutor):
    def __init__(self, concurrency: int = 6):
        super().__init__(concurrency)
        self._ctx = multiprocessing.get_context("fork")
        self._spawn = multiprocessing.get_context("spawn")
        self._procs: dict[int, Any] = {}

    def start(self, kit: Cronkit) -> None:
        if getattr(kit.store, "url", "").startswith("memory://"):
            raise CronkitError("the processes executor needs a shared store (SQLite file or "
                               "PostgreSQL), not memory://")
        super().start(kit)

    def submit(self, row: dict, done: Callable[[int], None]) -> None:
        self._add(row)
        proc, started = self._process(row)
        if started is not None and row.get("started_at") is not None:
            self._count_timeout_from(row["id"], row["started_at"], STARTUP_GRACE)
        proc.start()
        self._procs[row["id"]] = proc
        self.kit.store.update_job(row["id"], pid=proc.pid)
        threading.Thread(target=self._watch, args=(row, proc, done, started), daemon=True,
                         name=f"cronkit-watch-{row['id']}").start()

    def _count_timeout_from(self, job_id: int, start: datetime, grace: float = 0.0) -> None:
        """Make the job's deadline its timeout (plus ``grace``) from ``start``. A child
        starting up (a fresh interpreter, its imports) is not the job's time: until it
        says it has started, the deadline is STARTUP_GRACE seconds later than the
        timeout from the claim; then it is the timeout from that instant. (A spawned
        child only: a fork starts at once.)"""
        with self._lock:
            row = self._inflight.get(job_id)
            if row is not None and row.get("_timeout"):
                row["_deadline"] = start + timedelta(seconds=row["_timeout"] + grace)

    def _process(self, row: dict) -> tuple[Any, Any]:
        """A spawned interpreter when the runner can be imported by path and the kit
        runs on the real clock; else a fork (a runner defined inside a function, tests
        on a FakeClock)."""
        from ..clock import SystemClock
        from ..runner import runner_factory
        factory = runner_factory(self.kit.site(row["site"]), row["type"])
        qualname = getattr(factory, "__qualname__", "<locals>")
        if isinstance(self.kit.clock, SystemClock) and "<locals>" not in qualname:
            ref = f"{factory.__module__}:{qualname}"
            started = self._spawn.Event()
            return self._spawn.Process(target=_spawned_child, daemon=True, args=(
                self.kit.store.url, row, ref, self.kit.error_timeout, os.getpid(),
                started)), started
        # A fork starts at once: its timeout counts from the claim, as a thread's does.
        return self._ctx.Process(target=_forked_child, daemon=True, args=(
            self.kit, row, os.getpid())), None

    def _watch(self, row: dict, proc: Any, done: Callable[[int], None], started: Any) -> None:
        while started is not None and proc.is_alive() and not started.wait(0.05):
            pass
        if started is not None and started.is_set():
            self._count_timeout_from(row["id"], self.kit.clock.now())
        proc.join()
        try:
            code = proc.exitcode
            if code != 0:
                # The child died before ending its job: say what is known. Killed after a
                # cancel was asked (cancel(force=True), which may not have ended the job
                # yet when this thread sees the death), it ends CANCELED.
                lifecycle = self.kit.lifecycle
                # (None: reaped elsewhere, its status unknown: "process vanished".)
                if code is not None and code < 0 and self.kit.store.is_canceled(row["id"]):
                    lifecycle.finish(row, Status.CANCELED, "canceled (killed)")
                else:
                    lifecycle.finish(row, Status.FAILED, describe_exit(code))
        finally:
            self._procs.pop(row["id"], None)
            self._remove(row["id"])
            done(row["id"])

    def interrupting(self, job_id: int) -> None:
        """Tell a job's child that its worker's shutdown interrupts it (SIGUSR1, see
        ``on_interrupt``; a child still starting up dies of it, and its end here puts
        the job back to PENDING all the same)."""
        proc = self._procs.get(job_id)
        if proc is not None and proc.is_alive() and proc.pid:
            try:
                os.kill(proc.pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass

    def _stop_job(self, job_id: int) -> None:
        proc = self._procs.get(job_id)
        if proc is not None and proc.is_alive() and proc.pid:
            kill_group(proc.pid)

    def shutdown(self, wait: bool = True) -> None:
        for proc in list(self._procs.values()):
            if wait:
                proc.join()
            else:
                proc.kill()
