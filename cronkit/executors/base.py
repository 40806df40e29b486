"""What every executor shares: the set of jobs in flight and their timeouts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from zope.interface import implementer

from ..interfaces import IExecutor
from ..jobs import Status

if TYPE_CHECKING:
    from ..kit import Cronkit

log = logging.getLogger("cronkit.executors")


#: The most a StartGate opened early waits for its instant (the worker writes the
#: starts Worker.START_EARLY ahead).
EARLY_BOUND = 0.05


class StartGate:
    """Jobs started ahead: their RUNNING was written a few milliseconds before their
    due instant ``at``; each is released to its thread at that instant (read on the
    kit's clock: a thread that waits wakes itself then; ``open()`` releases them at
    once, the worker's tick once its clock says so, or a stopping worker). The first
    thread released reads once which of them were canceled meanwhile: those end
    CANCELED and never run their runner. A cancel asked later is a running job's (its
    flag, as for every job started)."""

    def __init__(self, kit: Cronkit, at: datetime, job_ids: list[int]):
        self.kit = kit
        self.at = at
        self.job_ids = job_ids
        self._cond = threading.Condition()
        self._open = False
        self._canceled: set[int] | None = None

    def open(self) -> None:
        with self._cond:
            self._open = True
            self._cond.notify_all()

    def due(self, now: datetime) -> bool:
        return self._open or now >= self.at

    def wait(self, job_id: int) -> bool:
        """Wait for the instant (or ``open()``); True if the job may run, False if it
        was canceled since its start was written."""
        clock = self.kit.clock
        with self._cond:
            while not self._open:
                left = (self.at - clock.now()).total_seconds()
                if left <= 0:
                    break
                # Against the clock; a FakeClock moved is seen within this bound too.
                self._cond.wait(min(left, 0.05))
            self._open = True
        # Opened ahead of the instant (a stopping worker): the job still never runs
        # before it; the start was written at most EARLY_BOUND ahead.
        left = (self.at - clock.now()).total_seconds()
        if left > 0:
            time.sleep(min(left, EARLY_BOUND))
        with self._cond:
            if self._canceled is None:
                try:
                    self._canceled = self.kit.store.canceled_among(self.job_ids)
                except Exception:   # the store is away: each job asks for itself
                    log.warning("could not read the cancels of %d job(s) started ahead",
                                len(self.job_ids), exc_info=True)
                    return not self.kit.store.is_canceled(job_id)
            return job_id not in self._canceled


@implementer(IExecutor)
class BaseExecutor:
    #: How many claimed jobs may wait for a free slot beyond ``capacity``.
    prefetch = 0
    #: Whether ``submit`` takes a StartGate (jobs started ahead of their due instant).
    gated = False
    #: Whether a draining worker stops the jobs still running after its drain timeout
    #: (see Worker); Celery's run in its workers, which drain themselves.
    interruptible = True

    def __init__(self, concurrency: int = 6):
        self.capacity = concurrency
        self.kit: Cronkit = None  # type: ignore[assignment]  # set by start()
        self._lock = threading.Lock()
        self._inflight: dict[int, dict] = {}

    def start(self, kit: Cronkit) -> None:
        self.kit = kit

    def running(self) -> set[int]:
        with self._lock:
            return set(self._inflight)

    def count(self) -> int:
        """How many jobs it runs now (``len(running())``, without a copy)."""
        return len(self._inflight)

    def _add(self, row: dict, factory: Callable | None = None) -> None:
        # The deadline is computed once, not at every tick of the worker.
        timeout = self._timeout_of(row, factory)
        started = row.get("started_at")
        row = dict(row, _timeout=timeout,
                   _deadline=started + timedelta(seconds=timeout) if timeout and started else None)
        with self._lock:
            self._inflight[row["id"]] = row

    def _remove(self, job_id: int) -> None:
        with self._lock:
            self._inflight.pop(job_id, None)

    def _timeout_of(self, row: dict, factory: Callable | None = None) -> float | None:
        """The job's own timeout, else its runner's (``factory``, looked up if None)."""
        if row.get("timeout"):
            return float(row["timeout"])
        if factory is None:
            from ..runner import runner_factory
            factory = runner_factory(self.kit.site(row["site"]), row["type"])
        return getattr(factory, "timeout", None)

    def expire(self, now: datetime) -> list[int]:
        """Fail the jobs that outlived their timeout; return their ids."""
        expired: list[int] = []
        late = [(job_id, row) for job_id, row in list(self._inflight.items())
                if row.get("_deadline") is not None and now > row["_deadline"]]
        if not late:
            return expired
        ending = self.kit.lifecycle.writer.unwritten()   # ran to their end in time
        for job_id, row in late:
            if job_id not in ending and self.kit.lifecycle.finish(
                    row, Status.FAILED, f"timed out after {row['_timeout']:g} s", now=now):
                self._stop_job(job_id)
                expired.append(job_id)
        return expired

    def _stop_job(self, job_id: int) -> None:
        """Stop a job that timed out: a thread can only be asked (its canceled flag)."""
        self.kit.store.update_job(job_id, canceled=True)

    def _safe_execute(self, row: dict, done: Callable[[int], None],
                      batched: bool = False) -> None:
        """Run the job in this thread. ``batched``: its end may be written in a batch
        (group commit); the job then counts as in flight (and is heartbeated) until its
        end is in the store, while this thread goes on to another job."""
        job_id = row["id"]

        def release() -> None:
            self._remove(job_id)
            done(job_id)

        queued = False
        try:
            job = self.kit.execute(row, written=release) if batched else self.kit.execute(row)
            queued = job._end_queued
        except Exception as exc:  # an internal error must not leave the job RUNNING
            log.exception("job %s failed inside cronkit", job_id)
            self.kit.lifecycle.finish(row, Status.FAILED,
                                      f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if not queued:
                release()
            else:
                done(job_id)     # this thread is free: the worker may claim again

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to release by default."""
