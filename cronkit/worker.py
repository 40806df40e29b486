"""The worker: ``tick(now)`` claims and dispatches due jobs and returns the seconds until
the next one is due; ``run_forever()`` is a thin service that sleeps on an event until
then (or until woken by a submission, a finished job or a clock jump) and stops on
SIGINT / SIGTERM.

A worker never works on a ghost: every ``check_interval`` seconds (real time) a tick
asks the store whether its database is still the one it opened (``store.check()``). A
SQLite file deleted or replaced under the worker stops it, with one log line; its
running jobs end first, and ``run_forever()`` then raises the StoreGone (``cronkit
worker`` exits with it). It stops rather than reopen: jobs it runs belong to the old
file, and their ends written into a new one could close other jobs of the same ids; a
supervisor that restarts it opens the file there is now. A read-only store cannot be
worked on: ``run_forever()`` and ``start()`` refuse it at once (ReadOnlyStore).

A worker registers itself in the store (``cronkit_workers``: host, pid, executor,
concurrency, version, and in ``info`` its claim-ahead and drain timeout) when it starts,
heartbeats its row with its jobs' heartbeat (registering again if the row was deleted),
shows its state (running, paused, draining) there and ends it "stopped". Its periodic
cleanup deletes the rows of workers stopped, or lost, more than ``WORKERS_KEPT`` seconds
ago. ``cronkit.workers`` reads them (``cronkit workers``, /api/v1/workers).

Shutdown (SIGTERM or SIGINT, or ``stop()``) drains: one log line (the jobs running, the
timeout), the row "draining", no more claims, the jobs held ahead under a lease given
back at once; then up to ``drain_timeout`` seconds (real time) for the running jobs to
end by themselves, heartbeating them. The jobs still running are then interrupted
(``JobLifecycle.interrupt``): their canceled flag asks their runner to stop, and their
end, whatever it is, puts them back to PENDING, due now, to run again elsewhere (with a
history record "interrupted by the worker's shutdown"; a cron firing stays the same row,
so it still runs once). After ``drain_grace`` more seconds a job's child process
(processes executor) is killed, and its job goes back to PENDING the same way; a thread
cannot be killed: its job is put back to PENDING as it is, and the thread abandoned
(``abandoned``; ``cronkit worker`` then exits without waiting for it). A second signal
skips what is left of the drain timeout (the grace is then one second). No job is left
RUNNING. With the celery executor the dispatcher only stops sending: the Celery workers
run on what they took (their own warm shutdown applies)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .exceptions import ReadOnlyStore, StoreError, StoreGone
from .executors import make_executor
from .executors.base import StartGate
from .jobs import Status

if TYPE_CHECKING:
    from .kit import Cronkit

log = logging.getLogger("cronkit.worker")


class Worker:
    #: Jobs due sooner than this (seconds) are not leased ahead but claimed when due.
    NOT_AHEAD = 0.05
    #: The rows of workers stopped or lost longer ago than this (seconds) are deleted.
    WORKERS_KEPT = 86400.0
    #: Held jobs are started (their RUNNING written) this many seconds before their due
    #: instant, when the executor can hold them until then (``gated``: the threads
    #: executor); each is released to its thread at that instant from memory.
    START_EARLY = 0.02

    def __init__(self, kit: Cronkit, concurrency: int = 6, executor: str = "threads",
                 poll_interval: float = 1.0, heartbeat_interval: float | None = None,
                 reap_interval: float | None = None, cleanup_interval: float = 3600.0,
                 max_backoff: float = 30.0, check_interval: float = 1.0,
                 claim_ahead: float = 1.0, lease: float | None = None,
                 lease_limit: int = 256, drain_timeout: float = 30.0,
                 drain_grace: float = 5.0):
        self.kit = kit
        self.concurrency = concurrency
        #: The executor's name, as the worker's row shows it.
        self.executor_name = executor if isinstance(executor, str) else type(executor).__name__
        self.executor = make_executor(executor, concurrency) if isinstance(executor, str) else executor
        #: Seconds (real time) a stopping worker waits for its running jobs, then the
        #: seconds it gives those it interrupted to stop before it kills them.
        self.drain_timeout = max(0.0, float(drain_timeout))
        self.drain_grace = max(0.0, float(drain_grace))
        #: Threads left running an interrupted job when the worker stopped.
        self.abandoned = 0
        self._paused = False
        self._draining = False
        self._hurry = threading.Event()    # a second stop signal: skip the waits
        self._registered = False
        self.started_at: datetime | None = None
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval or max(0.2, kit.error_timeout / 4)
        self.reap_interval = reap_interval or max(0.2, kit.error_timeout / 2)
        self.cleanup_interval = cleanup_interval
        self.max_backoff = max(float(max_backoff), poll_interval)
        #: Ticks failed in a row (see step()).
        self.failures = 0
        #: Seconds (real time) between two checks that the store is the one opened.
        self.check_interval = float(check_interval)
        self._next_check = 0.0
        #: The StoreGone that stopped the worker, if one did.
        self.stopped_by: StoreGone | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict[str, datetime] = {}
        self._started = False
        #: Claim-ahead: jobs due within this many seconds are leased ahead and started
        #: from memory at their due time (0: never). A lease lasts ``lease`` seconds
        #: (default: 5, or twice the horizon) and is renewed with every heartbeat.
        self.claim_ahead = max(0.0, float(claim_ahead))
        self.lease = float(lease) if lease else max(5.0, 2 * self.claim_ahead,
                                                    2 * self.heartbeat_interval)
        #: The most jobs held ahead at once (they start together at their due time and
        #: wait for a thread in this worker: a smaller figure leaves more to the others).
        self.lease_limit = int(lease_limit)
        #: The jobs this worker holds under a lease: id -> row, until their due time.
        self.held: dict[int, dict] = {}
        self._early = 0.0     # how much earlier than the next due job to wake
        #: The gates of the jobs started ahead and not yet released (see StartGate).
        self._gates: list[StartGate] = []
        #: The last tick's claim left room and no job is due: a job's end then does
        #: not wake the service (its tick would claim nothing again). A wake-up (a
        #: submission, a retry, a continuation made due) clears it; so does each tick.
        self._queue_idle = False

    # -- one step ---------------------------------------------------------------

    def _due(self, what: str, interval: float, now: datetime) -> bool:
        last = self._last.get(what)
        if last is None or (now - last).total_seconds() >= interval or now < last:
            self._last[what] = now
            return True
        return False

    def _check_store(self) -> None:
        """At most every ``check_interval`` s: StoreGone when the store's database is no
        longer the one opened; the worker is then stopped, and says so once."""
        if time.monotonic() < self._next_check:
            return
        try:
            self.kit.store.check()
        except StoreGone as exc:
            if self.stopped_by is None:
                log.error("worker %s: stopping: %s", self.kit.worker_id, exc)
            self.stopped_by = exc
            self._stop.set()
            self._wake.set()
            raise
        self._next_check = time.monotonic() + self.check_interval

    def tick(self, now: datetime | None = None) -> float:
        """Check the store, heartbeat, reap, clean up, claim and dispatch; return seconds
        until the next due job (capped by nothing: the service caps it by the poll
        interval). StoreGone (the worker then stops) when the store's file was deleted
        or replaced."""
        kit, store = self.kit, self.kit.store
        self._queue_idle = False
        self._check_store()
        now = now or kit.clock.now()
        if self._paused and self.held:
            self._release_held()
        self._start_held(now)     # first: they are due at this instant
        if self._gates:
            self._open_gates(now)
        running = self.executor.running()
        if self._due("heartbeat", self.heartbeat_interval, now):
            running |= kit.lifecycle.writer.unwritten()     # ended, the end not yet written
            if running:
                store.heartbeat(running, now)
            if self._registered:
                if not store.worker_heartbeat(kit.worker_id, now, self.state):
                    self.register(now)      # its row was deleted (cleaned up): it comes back
            elif self._started:
                self.register(now)          # it could not at start (the store failed)
            if self.held:       # a job canceled (or lost) while held is dropped
                kept = store.renew_leases(self.held, kit.worker_id,
                                          now + timedelta(seconds=self.lease))
                self.held = {i: r for i, r in self.held.items() if i in kept}
        if self._due("reap", self.reap_interval, now):
            kit.reap(now)
        if self.cleanup_interval and self._due("cleanup", self.cleanup_interval, now):
            kit.cleanup(now=now)
            store.delete_workers(now - timedelta(seconds=self.WORKERS_KEPT))
        self.executor.expire(now)
        if self._paused:      # claims nothing; its running jobs go on
            return self.poll_interval
        room = self.executor.capacity + getattr(self.executor, "prefetch", 0)
        # A job whose end waits for the writer holds no thread: its slot is free.
        busy = self.executor.running() - kit.lifecycle.writer.unwritten()
        free = room - len(busy)
        if free <= 0 or len(busy) >= self._refill_below(room):
            # Every slot busy, or enough claimed jobs queued for the threads: a job's
            # end wakes the worker once there is room for a claim worth its write.
            return self._until_held(now, self.poll_interval)
        claimed = kit.lifecycle.claim(now, free)
        submit_many = getattr(self.executor, "submit_many", None)
        if submit_many is not None:     # Celery: one message per job, sent together
            submit_many(claimed, self._finished)
        else:
            for row in claimed:
                self.executor.submit(row, self._finished)
        if claimed and len(claimed) == free:
            busy = self.executor.running() - kit.lifecycle.writer.unwritten()
            return 0.0 if len(busy) < room else self.poll_interval
        nxt = store.next_due()
        # Fewer claimed than there was room for, and none due: nothing left to claim.
        self._queue_idle = nxt is None or nxt > now
        ahead = 0     # asked of the store only when the next job falls in the horizon
        soonest = now + timedelta(seconds=self.NOT_AHEAD)
        if nxt is not None and self.claim_ahead and \
                soonest < nxt <= now + timedelta(seconds=self.claim_ahead):
            ahead = self._lease_ahead(now)
        if nxt is None:      # (a held job is pending: then nxt is never None)
            return self._until_held(now, self.poll_interval)
        delay = (nxt - now).total_seconds()
        # The service wakes early to lease it ahead (see step()).
        self._early = self.claim_ahead / 2 if self.claim_ahead and delay > self.claim_ahead \
            and not ahead else 0.0
        delay = self._until_held(now, delay)
        # Due but not claimable (its cron is running, or every slot is busy): wait for
        # a job to finish (it wakes us) or the poll, never spin.
        return delay if delay > 0 else (0.0 if claimed else self.poll_interval)

    # -- claim-ahead --------------------------------------------------------------

    @property
    def _start_early(self) -> float:
        return self.START_EARLY if getattr(self.executor, "gated", False) else 0.0

    def _until_held(self, now: datetime, delay: float) -> float:
        """``delay``, or the seconds until the first held job is due if sooner (the
        service wakes START_EARLY before, see step(); the jobs started ahead need no
        tick: their threads wake at their instant)."""
        if not self.held:
            return delay
        first = min(r["run_after"] for r in self.held.values())
        return min(delay, (first - now).total_seconds())

    def _open_gates(self, now: datetime | None) -> None:
        """Release the jobs started ahead whose instant has come (all with None)."""
        keep = []
        for gate in self._gates:
            if now is None or gate.due(now):
                gate.open()
            else:
                keep.append(gate)
        self._gates = keep

    def _lease_ahead(self, now: datetime) -> int:
        """Lease the plain jobs due within the horizon (up to ``lease_limit`` held);
        return how many."""
        room = self.lease_limit - len(self.held)
        if not self.claim_ahead or room <= 0:
            return 0
        kit = self.kit
        # A job due within NOT_AHEAD is claimed at its time: a lease and a start would
        # be two writes where its claim is one.
        rows = kit.store.lease(now + timedelta(seconds=self.NOT_AHEAD),
                               now + timedelta(seconds=self.claim_ahead), room,
                               kit.worker_id, os.getpid(),
                               now + timedelta(seconds=self.lease),
                               limited=kit.lifecycle.limits())
        for row in rows:
            self.held[row["id"]] = row
        return len(rows)

    def _start_held(self, now: datetime) -> None:
        """Start the held jobs due now, or within START_EARLY (a job canceled while
        held, or paused, is not started).

        Due now, they start in growing chunks (the first jobs run while the next ones
        are being started). Due within START_EARLY, and the executor ``gated``, their
        RUNNING is written now, in one write per due instant, with ``started_at`` (and
        ``heartbeat``) that instant: each job is handed to the executor behind a
        StartGate and released to its thread at its instant (see StartGate: a job
        canceled in between ends CANCELED, its runner never run). So the store's work
        is done before the instant, and what is left then is the job's own path."""
        early = now + timedelta(seconds=self._start_early)
        due = [i for i, r in self.held.items() if r["run_after"] <= early]
        if not due:
            return
        ahead: dict[datetime, list[int]] = {}
        late: list[int] = []
        for job_id in due:
            at = self.held.pop(job_id)["run_after"]
            if at > now:
                ahead.setdefault(at, []).append(job_id)
            else:
                late.append(job_id)
        kit, pid = self.kit, os.getpid()
        size, start = max(4, self.executor.capacity), 0
        while start < len(late):
            chunk = late[start:start + size]
            for row in kit.store.start_leased(chunk, now, kit.worker_id, pid):
                self.executor.submit(row, self._finished)
            start, size = start + size, size * 2
        for at, ids in sorted(ahead.items()):
            rows = kit.store.start_leased(ids, at, kit.worker_id, pid)
            if not rows:
                continue
            gate = StartGate(kit, at, [r["id"] for r in rows])
            self._gates.append(gate)
            for row in rows:
                self.executor.submit(row, self._finished, gate)

    def _release_held(self) -> None:
        """Give back the jobs still held (a stopping worker): claimable at once."""
        held, self.held = list(self.held), {}
        if held:
            try:
                self.kit.store.release_leases(held, self.kit.worker_id)
            except StoreError as exc:   # they come back when their lease expires
                log.warning("worker %s: could not give back %d leased job(s): %s",
                            self.kit.worker_id, len(held), exc)

    def step(self, now: datetime | None = None) -> float:
        """One turn of the service: ``tick(now)``, and the seconds to sleep after it.

        A tick that fails (the store is away: a full disk, a locked file, a lost
        server) is retried with a back-off that doubles from the poll interval up to
        ``max_backoff``, with one log line per back-off (a traceback only the first
        time for an error that is not the store's), and one line when the store answers
        again: the worker recovers by itself once the fault clears."""
        given = now
        now = now or self.kit.clock.now()
        try:
            delay = self.tick(now)
            if given is None:    # against the clock: what the tick itself took is gone
                delay -= (self.kit.clock.now() - now).total_seconds()
        except StoreGone:   # said once, and stopping: no back-off
            return 0.0
        except Exception as exc:
            self.failures += 1
            backoff = min(self.poll_interval * 2 ** (self.failures - 1), self.max_backoff)
            if isinstance(exc, StoreError) or self.failures > 1:
                log.warning("worker %s: %s: %s; trying again in %.3g s (%d failed in a row)",
                            self.kit.worker_id, type(exc).__name__, exc, backoff, self.failures)
            else:
                log.exception("worker %s: tick failed; trying again in %.3g s",
                              self.kit.worker_id, backoff)
            return backoff
        if self.failures:
            log.warning("worker %s: working again after %d failed tick(s)", self.kit.worker_id,
                        self.failures)
            self.failures = 0
        early, self._early = self._early, 0.0
        if self.held:     # the held jobs are started ahead (see _start_held)
            early = max(early, self._start_early)
        return min(delay - early if delay > early else delay, self.poll_interval)

    def _refill_below(self, room: int) -> int:
        """Claim again once fewer jobs than this are busy: with a prefetch beyond one
        job per thread (short jobs, see ThreadExecutor.prefetch) once half of it is
        used, so that a claim takes many jobs in one write instead of one job per end
        (each write waits its turn with the submissions and the ends of the process);
        else as soon as a slot is free."""
        prefetch = getattr(self.executor, "prefetch", 0)
        return room - prefetch // 2 if prefetch > self.executor.capacity else room

    def _finished(self, job_id: int) -> None:
        """A job ended, or its thread is free: wake the service if that freed a slot it
        can fill (or it drains). Not for every end of a burst of jobs held: a tick
        then would find no room and only take the GIL from the jobs starting."""
        if self._draining or self._stop.is_set():
            self._wake.set()
            return
        if self._queue_idle:      # nothing to claim: the last jobs of a burst end
            return
        room = self.executor.capacity + getattr(self.executor, "prefetch", 0)
        count = getattr(self.executor, "count", None)
        if count is None or \
                count() - self.kit.lifecycle.writer.count() < self._refill_below(room):
            self._wake.set()

    # -- its row in the store ---------------------------------------------------

    @property
    def state(self) -> str:
        """What its row says: running, paused or draining (stopped once stopped)."""
        if self._draining:
            return "draining"
        return "paused" if self._paused else "running"

    def info(self) -> dict:
        """The JSON object of its row's ``info``."""
        return {"claim_ahead": self.claim_ahead, "lease": self.lease,
                "drain_timeout": self.drain_timeout, "poll_interval": self.poll_interval,
                "heartbeat_interval": self.heartbeat_interval}

    def register(self, now: datetime | None = None) -> None:
        """Insert (or replace) this worker's row, heartbeat ``now`` (the kit's clock)."""
        from . import __version__
        now = now or self.kit.clock.now()
        if self.started_at is None:
            self.started_at = now
        self.kit.store.register_worker({
            "id": self.kit.worker_id, "host": socket.gethostname(), "pid": os.getpid(),
            "executor": self.executor_name, "concurrency": self.concurrency,
            "state": self.state, "started_at": self.started_at, "heartbeat": now,
            "version": __version__, "info": self.info()})
        self._registered = True

    def _show_state(self) -> None:
        """Write its state now (not at the next heartbeat); a store error is only said."""
        if not self._registered:
            return
        try:
            if not self.kit.store.worker_heartbeat(self.kit.worker_id, self.kit.clock.now(),
                                                   self.state):
                self.register()
        except StoreError as exc:
            log.warning("worker %s: cannot write its state %s: %s", self.kit.worker_id,
                        self.state, exc)

    def pause(self) -> None:
        """Stop claiming (the jobs held ahead are given back at the next tick); running
        jobs go on. Its row says "paused"."""
        self._paused = True
        self._show_state()
        self._wake.set()     # its next tick gives back what it holds

    def resume(self) -> None:
        """Claim again after ``pause()``."""
        self._paused = False
        self._show_state()
        self._wake.set()

    # -- the service ------------------------------------------------------------

    def wake(self) -> None:
        self._queue_idle = False
        self._wake.set()

    def _prepare(self) -> None:
        if self._started:
            return
        if self.kit.store.read_only:
            raise ReadOnlyStore(f"a worker cannot work on store {self.kit.store.url!r}: it is "
                                "read-only (a worker writes every job it claims)")
        self._started = True
        self.executor.start(self.kit)
        if getattr(self.executor, "group_commit", False):
            self.kit.lifecycle.writer.defer = getattr(self.executor, "backlog", None)
            self.kit.lifecycle.writer.start()
        self.kit._wakers.append(self.wake)
        listen = getattr(self.kit.store, "start_listener", None)
        if listen is not None:   # PostgreSQL: LISTEN/NOTIFY wakes idle workers at once
            listen(self.kit.wake)
        try:
            self.register()
        except StoreError:   # a full disk, a lost server: its first tick registers it, or
            pass             # fails, is logged and backs off as every tick does
        self.kit.reap()
        self.kit.restore()   # ServerRestartEvent: cron jobs wiped from the queue come back

    def _signaled(self, signum: int, frame: object) -> None:
        """SIGTERM / SIGINT: drain (see the module docstring); a second one skips what
        is left of the drain's waits."""
        if self._stop.is_set():
            log.warning("worker %s: %s again: not waiting any longer", self.kit.worker_id,
                        signal.Signals(signum).name)
            self._hurry.set()
        self.stop(wait=False)

    def run_forever(self, install_signals: bool = True) -> None:
        """Run until stop() or SIGINT/SIGTERM, then drain (see the module docstring):
        no job is left RUNNING when it returns. A store whose file was deleted or
        replaced stops it too: it then raises that StoreGone (in the thread of
        ``start()``, only ``stopped_by`` keeps it)."""
        # First: a SIGTERM while it reaps and restores (at start-up) stops it cleanly.
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._signaled)
        self._prepare()
        log.info("worker %s started (%s, concurrency %d)", self.kit.worker_id,
                 type(self.executor).__name__, self.concurrency)
        try:
            while not self._stop.is_set():
                delay = self.step()
                if delay > 0:
                    self._wake.wait(delay)
                self._wake.clear()
        finally:
            self._draining = True
            self._release_held()
            self._open_gates(None)   # the jobs started ahead run now: then they end
            stop = getattr(self.kit.store, "stop_listener", None)
            if stop is not None:
                stop(self.kit.wake)
            self.kit._wakers.remove(self.wake)
            self._drain()
            self.executor.shutdown(wait=not self.abandoned)
            if getattr(self.executor, "group_commit", False):
                self.kit.lifecycle.writer.stop()   # every end handed in is written first
            self._stopped()
            log.info("worker %s stopped", self.kit.worker_id)
        if self.stopped_by is not None and threading.current_thread() is not self._thread:
            raise self.stopped_by

    # -- the drain ----------------------------------------------------------------

    def _busy(self) -> set[int]:
        """The jobs this worker runs whose end is not yet handed to the writer."""
        return self.executor.running() - self.kit.lifecycle.writer.unwritten()

    def _wait_running(self, seconds: float, skippable: bool = False) -> bool:
        """Wait up to ``seconds`` (real time) for the running jobs to end, heartbeating
        them and this worker's row (a ``skippable`` wait ends at a second stop signal);
        True if none is left."""
        deadline = time.monotonic() + seconds
        beat = time.monotonic() + self.heartbeat_interval
        while self._busy():
            left = deadline - time.monotonic()
            if left <= 0 or (skippable and self._hurry.is_set()):
                return False
            if time.monotonic() >= beat:
                beat = time.monotonic() + self.heartbeat_interval
                try:
                    self.kit.store.heartbeat(self.executor.running(), self.kit.clock.now())
                except StoreError as exc:
                    log.warning("worker %s: heartbeat failed while draining: %s",
                                self.kit.worker_id, exc)
                self._show_state()
            self._wake.wait(min(left, 0.1, self.heartbeat_interval))
            self._wake.clear()
        return True

    def _drain(self) -> None:
        """Wait for the running jobs, then interrupt, then kill (see the module
        docstring)."""
        kit, busy = self.kit, self._busy()
        log.info("worker %s draining: %d job(s) running; waiting up to %g s for them to end",
                 kit.worker_id, len(busy), self.drain_timeout)
        self._show_state()
        if not busy or self._wait_running(self.drain_timeout, skippable=True):
            return
        if not getattr(self.executor, "interruptible", True):
            return      # Celery: the jobs taken are its workers'; shutdown() hands on
        try:
            stopped = kit.lifecycle.interrupt(sorted(self._busy()),
                                              getattr(self.executor, "interrupting", None))
        except StoreError as exc:
            log.error("worker %s: cannot interrupt its jobs: %s", kit.worker_id, exc)
            return
        log.warning("worker %s: %d job(s) still running: asked to stop; they go back to the "
                    "queue", kit.worker_id, len(stopped))
        # Hurried (a second signal): a cooperative job still gets a second to stop.
        grace = min(self.drain_grace, 1.0) if self._hurry.is_set() else self.drain_grace
        if self._wait_running(grace):
            return
        left = sorted(self._busy())
        for job_id in left:
            self.executor._stop_job(job_id)     # a process is killed; a thread is asked
        if self._wait_running(min(grace, 5.0) or 0.5):
            return
        left = sorted(self._busy())
        for job_id in left:    # threads that do not stop: their jobs are put back as they are
            # The row as claimed: its attempt, never a newer one's taken elsewhere since.
            row = self.executor._inflight.get(job_id)
            if row is None:
                continue
            try:
                kit.lifecycle.finish(row, Status.CANCELED, "canceled: the worker shut down")
            except StoreError as exc:
                log.error("worker %s: cannot end job %s: %s", kit.worker_id, job_id, exc)
        self.abandoned = len(left)
        log.warning("worker %s: %d job(s) did not stop; their threads are left behind",
                    kit.worker_id, len(left))

    def _stopped(self) -> None:
        """Mark its row stopped (a store error is only said: it is then lost, later)."""
        if not self._registered:
            return
        try:
            self.kit.store.stop_worker(self.kit.worker_id, self.kit.clock.now())
        except StoreError as exc:
            log.warning("worker %s: cannot mark itself stopped: %s", self.kit.worker_id, exc)

    def start(self) -> Worker:
        """Run the service in a background thread (for embedding and tests); errors of
        start-up (a bad executor, an unreachable store) are raised here."""
        self._prepare()
        self._thread = threading.Thread(target=self.run_forever, kwargs={"install_signals": False},
                                        name="cronkit-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, wait: bool = True) -> None:
        """Stop: the service drains (see the module docstring) and returns; with
        ``wait``, wait for it (a worker of ``start()``)."""
        self._stop.set()
        self._wake.set()
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
