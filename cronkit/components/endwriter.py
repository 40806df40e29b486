"""Group commit of job ends: many jobs' ends written in one transaction.

A worker's threads hand the end of a plain job (one that is not a cron firing) to the
kit's EndWriter (``lifecycle.writer``, started by the worker) and go on to their next
job at once. The writer's thread takes every end handed in meanwhile and writes them
with one ``store.finish_jobs`` (one transaction for the batch), then, for each job the
write ended, sends what follows an end (JobFinishedEvent, continuations) and tells
the executor its slot is free. Nothing is promised before the commit: a job's end is
reported (events, the API, the executor's count) only once it is in the store.

Why it is safe: a job whose end is not yet written is still RUNNING in the store, under
its worker's heartbeat (the writer's unwritten jobs are heartbeated with the running
ones). A worker killed before the batch commits leaves those jobs RUNNING with a dead
worker: the reaper retries them or fails them "worker lost", per their runner, as it
does any job of a lost worker; none is lost, none stays RUNNING. An end is written only
by the attempt that owns the job (``finish_jobs`` is ``finish_job`` per end), so an end
written late never closes a newer attempt. A store that refuses the batch (a full disk)
keeps it: the writer tries again with a back-off, the jobs stay RUNNING and heartbeated
until it succeeds or the worker stops (and then the reaper has them).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..jobs import Job, Status
from .outcomes import log_of

if TYPE_CHECKING:
    from .lifecycle import JobLifecycle

log = logging.getLogger("cronkit.worker")

#: The most ends in one transaction.
MAX_BATCH = 512
#: The longest a batch waits (seconds) while ``EndWriter.defer`` says jobs wait to start.
DEFER_MAX = 0.01


@dataclass
class PendingEnd:
    """One job's end, handed in and not yet written."""

    job: Job
    status: Status
    message: str | None
    progress: int | None
    result: Any
    now: datetime
    written: Callable[[], None] | None = None
    args: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.args = {"job_id": self.job.id, "status": str(self.status), "now": self.now,
                     "message": self.message, "progress": self.progress,
                     "attempt": self.job.attempts, "result": self.result}


class EndWriter:
    """The writer thread of one kit's lifecycle (see the module docstring)."""

    def __init__(self, lifecycle: JobLifecycle, max_backoff: float = 5.0):
        self.lifecycle = lifecycle
        self.max_backoff = max_backoff
        self._cond = threading.Condition()
        self._queue: list[PendingEnd] = []
        self._writing: list[PendingEnd] = []
        self._stop = False
        self._thread: threading.Thread | None = None
        #: Batches written, and ends in them (for the curious and the tests).
        self.batches = 0
        self.written = 0
        #: Set by a worker: True while jobs it claimed wait for a thread. A batch then
        #: waits (up to DEFER_MAX, or until full) for them to start: its write, its
        #: events and its turn for the GIL come after the starts of a burst, and it
        #: takes more ends in one transaction.
        self.defer: Callable[[], bool] | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stop

    def start(self) -> EndWriter:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._loop, name="cronkit-ends",
                                            daemon=True)
            self._thread.start()
        return self

    def put(self, end: PendingEnd) -> bool:
        """Hand in ``end``; False (not taken: the caller writes it) once stopping."""
        with self._cond:
            if self._stop or self._thread is None:
                return False
            self._queue.append(end)
            # The writer is woken for the first end it waits for, and then only when
            # its deferral is over (see _loop): an end handed in while jobs wait to
            # start does not wake it, so that a burst of short jobs is not slowed by a
            # thread waking (and taking the GIL) per end; it writes them after
            # DEFER_MAX at the latest.
            if len(self._queue) == 1 or self._deferred_enough():
                self._cond.notify_all()
        return True

    def unwritten(self) -> set[int]:
        """The ids of the jobs whose end is handed in and not yet written."""
        with self._cond:
            return {e.job.id for e in self._queue} | {e.job.id for e in self._writing}

    def count(self) -> int:
        """How many ends are handed in and not yet written: ``len(unwritten())`` as
        near as a read without the lock gives it (for a wake-up's guess, not a rule)."""
        return len(self._queue) + len(self._writing)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every end handed in so far is written; True if they are."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._writing,
                                       timeout)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Write what is handed in, then stop the thread (later ends are written by
        their callers)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- the thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        failures = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stop)
                if not self._queue:
                    return
                defer = self.defer
                if defer is not None and not self._stop and defer():
                    self._cond.wait_for(self._deferred_enough, DEFER_MAX)
                self._writing = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                batch = self._writing
            try:
                finals = self.lifecycle.kit.store.finish_jobs([e.args for e in batch])
            except Exception as exc:   # the store is away: keep the batch, try again
                failures += 1
                delay = min(0.05 * 2 ** failures, self.max_backoff)
                log.warning("writing %d job end(s) failed (%s: %s); trying again in %.2g s",
                            len(batch), type(exc).__name__, exc, delay)
                with self._cond:
                    self._queue[:0] = batch
                    self._writing = []
                    stopping = self._stop
                    self._cond.notify_all()
                if stopping:     # left RUNNING: the reaper has them
                    with self._cond:
                        dropped, self._queue = self._queue, []
                    for end in dropped:
                        self._written(end)
                    return
                with self._cond:
                    self._cond.wait_for(lambda: self._stop, delay)
                continue
            failures = 0
            self.batches += 1
            self.written += len(batch)
            for end, final in zip(batch, finals, strict=True):
                try:
                    self._ended(end, final)
                except Exception:  # a subscriber's error must not stop the writer
                    log.exception("after the end of job %s", end.job.id)
                finally:
                    self._written(end)
            with self._cond:
                self._writing = []
                self._cond.notify_all()

    def _deferred_enough(self) -> bool:
        defer = self.defer
        return self._stop or len(self._queue) >= MAX_BATCH or defer is None or not defer()

    def _ended(self, end: PendingEnd, final: str | None) -> None:
        job = end.job
        if final is None:     # ended already (a timeout, a cancel), or not its attempt
            return
        job.status, job.finished_at = Status(final), end.now
        if end.message is not None:
            job.message = end.message
        if end.progress is not None and final == Status.SUCCESS:
            job.progress = end.progress
        if end.result is not None:
            job.result = end.result
        self.lifecycle._ended(job, None, log_of(job.status, end.message), end.now, end.now)

    @staticmethod
    def _written(end: PendingEnd) -> None:
        if end.written is not None:
            try:
                end.written()
            except Exception:  # pragma: no cover - an executor's bookkeeping
                log.exception("releasing job %s", end.job.id)
