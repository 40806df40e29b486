"""The ``celery`` executor: due jobs run on Celery workers; the store stays the truth.

Two kinds of processes share one store (PostgreSQL, or a SQLite file on one host):

- ``cronkit worker --executor celery`` (the dispatcher) claims due jobs exactly as
  any worker does (they become RUNNING in the store, claimed by the dispatcher) and
  sends each to the broker as a small JSON message: the job id, the claim it belongs
  to (attempt number and claimer), and the heartbeat interval. Never the row, never
  pickle. It keeps at most ``concurrency`` jobs in flight, heartbeats the ones no
  Celery worker has taken yet, and reaps lost jobs like every cronkit worker.
- ``celery -A cronkit.executors.celery worker`` runs them. The task adopts the job in
  the store (one compare-and-set: still RUNNING, same attempt, same claimer), records
  its own host:pid, heartbeats from a thread while it runs, and calls
  ``kit.execute(row)``: the runner API (progress, notes, ``canceled``, finish, fail)
  goes through the store as with every executor. A job canceled before the task got it
  ends CANCELED without running; a message delivered twice, late, or for an earlier
  attempt adopts nothing and runs nothing.

A Celery worker killed mid-job stops heartbeating: after ``error_timeout`` (at once if
it ran on the reaper's host and its pid is gone) the reaper fails the job "worker lost",
or retries it. The message was acknowledged when the task started (no ``acks_late``),
so the broker does not deliver it again.

Configuration of the Celery app, from the environment:

- ``CRONKIT_BROKER``: broker URL (default ``redis://127.0.0.1:6379/0``);
- ``CRONKIT_STORE``: the store URL (as everywhere);
- ``CRONKIT_IMPORTS``: comma-separated modules registering runners, imported when the
  Celery worker starts;
- ``CRONKIT_QUEUE``: the Celery queue (default ``cronkit``);
- ``CRONKIT_ERROR_TIMEOUT``: the kit's error timeout in the Celery worker (default 60).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from celery import Celery

from ..jobs import Status
from .base import BaseExecutor

if TYPE_CHECKING:
    from ..kit import Cronkit

log = logging.getLogger("cronkit.executors.celery")

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
TASK_NAME = "cronkit.run_job"


def _imports() -> tuple[str, ...]:
    return tuple(m.strip() for m in os.environ.get("CRONKIT_IMPORTS", "").split(",") if m.strip())


def make_app(broker: str | None = None, queue: str | None = None,
             imports: tuple[str, ...] | None = None) -> Celery:
    """A Celery app running cronkit jobs: JSON only, results ignored, one message
    reserved per worker process."""
    celery_app = Celery("cronkit", set_as_current=False)
    celery_app.conf.update(
        broker_url=broker or os.environ.get("CRONKIT_BROKER") or DEFAULT_BROKER,
        task_serializer="json", result_serializer="json", event_serializer="json",
        accept_content=["json"], result_accept_content=["json"],
        task_ignore_result=True, result_backend=None,
        task_default_queue=queue or os.environ.get("CRONKIT_QUEUE") or "cronkit",
        task_acks_late=False,            # acknowledged when started: never run twice
        worker_prefetch_multiplier=1,    # a killed worker loses at most one reserved message
        # A reserved message of a killed worker comes back after this; the store's
        # compare-and-set makes a second delivery harmless.
        broker_transport_options={"visibility_timeout": 300},
        broker_connection_retry_on_startup=True,
        imports=_imports() if imports is None else imports,
        worker_hijack_root_logger=False,
    )
    celery_app.task(name=TASK_NAME, ignore_result=True)(run_job)
    return celery_app


# -- the Celery side ----------------------------------------------------------------

_kit: Cronkit | None = None
_kit_pid: int | None = None
_kit_lock = threading.Lock()


def worker_kit() -> Any:
    """This process's kit, built on first use from the environment (fork-safe)."""
    global _kit, _kit_pid
    with _kit_lock:
        if _kit is None or _kit_pid != os.getpid():
            from ..kit import Cronkit

            for module in _imports():
                __import__(module)
            _kit = Cronkit(store=os.environ.get("CRONKIT_STORE") or None,
                           error_timeout=float(os.environ.get("CRONKIT_ERROR_TIMEOUT", "60")))
            notify_ends(_kit)
            from ..metrics import enable as enable_metrics
            from ..metrics import multiprocess_dir
            if multiprocess_dir() is not None:   # prometheus_client's multi-process mode:
                enable_metrics(_kit)             # counted in the folder scrapes read
            _kit_pid = os.getpid()
        return _kit


def notify_ends(kit: Cronkit) -> bool:
    """Have the job ends written by ``kit`` notify the dispatchers at their commit, when
    its store can (PostgreSQL: ``notify_ends``); True if it can. A Celery worker's kit
    does this: its dispatchers then free a slot as soon as its job ended."""
    store: Any = kit.store
    if getattr(store, "ends_channel", None) is None:
        return False
    store.notify_ends = True
    return True


class _Heartbeats:
    """Heartbeats the jobs a kit runs in this process, each every its own interval,
    from one thread (a thread per job would cost more than a short job itself). The
    thread ends after ``idle`` seconds with no job, and starts again with the next."""

    idle = 60.0

    def __init__(self, kit: Cronkit):
        self.kit, self.pid = kit, os.getpid()
        self._jobs: dict[int, tuple[float, float]] = {}   # id -> (next beat, interval)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._wake_at = float("inf")   # when the thread means to look next

    def add(self, job_id: int, interval: float) -> None:
        """Heartbeat ``job_id`` every ``interval`` s from now on, until discarded."""
        beat_at = time.monotonic() + interval
        with self._cond:
            self._jobs[job_id] = (beat_at, interval)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="cronkit-celery-heartbeats")
                self._thread.start()
            elif beat_at < self._wake_at:
                self._cond.notify()

    def discard(self, job_id: int) -> None:
        with self._cond:
            self._jobs.pop(job_id, None)

    def _run(self) -> None:
        idle_since = time.monotonic()
        with self._cond:
            while True:
                now = time.monotonic()
                due = [job_id for job_id, (at, _) in self._jobs.items() if at <= now]
                for job_id in due:
                    self._jobs[job_id] = (now + self._jobs[job_id][1], self._jobs[job_id][1])
                if due:
                    self._cond.release()
                    try:
                        self.kit.store.heartbeat(due, self.kit.clock.now())
                    except Exception:  # the next beat may work; the jobs go on meanwhile
                        log.warning("heartbeat of jobs %s failed", due, exc_info=True)
                    finally:
                        self._cond.acquire()
                    continue
                if self._jobs:
                    idle_since = now
                    self._wake_at = min(at for at, _ in self._jobs.values())
                elif now - idle_since >= self.idle:
                    self._thread = None
                    return
                else:
                    self._wake_at = idle_since + self.idle
                self._cond.wait(self._wake_at - now)
                self._wake_at = float("inf")


_beats: weakref.WeakKeyDictionary[Cronkit, _Heartbeats] = weakref.WeakKeyDictionary()
_beats_lock = threading.Lock()


def _heartbeats(kit: Cronkit) -> _Heartbeats:
    """The kit's heartbeats in this process (a forked child gets its own)."""
    with _beats_lock:
        beats = _beats.get(kit)
        if beats is None or beats.pid != os.getpid():
            beats = _beats[kit] = _Heartbeats(kit)
        return beats


def run_job(job_id: int, attempt: int, owner: str, heartbeat: float | None = None) -> str:
    """The Celery task: run the claimed job ``job_id`` here (see :func:`execute_adopted`)."""
    return execute_adopted(worker_kit(), job_id, attempt, owner, heartbeat)


def execute_adopted(kit: Cronkit, job_id: int, attempt: int, owner: str,
                    heartbeat: float | None = None) -> str:
    """Adopt the job from its claimer ``owner`` and run it to its end in this thread.
    Return what happened: "skipped" (no longer that claim), "canceled" (canceled before
    it started; not run), or the job's final status."""
    store = kit.store
    row = store.adopt_job(job_id, attempt, owner, kit.worker_id, os.getpid(), kit.clock.now())
    if row is None:
        log.info("job %s attempt %s is no longer %s's claim: not run", job_id, attempt, owner)
        return "skipped"
    if row["canceled"]:
        _end_unstarted(kit, row, "canceled before a Celery worker started it")
        return "canceled"
    beats = _heartbeats(kit)
    beats.add(job_id, heartbeat or max(0.2, kit.error_timeout / 4))
    try:
        job = kit.execute(row)
        return str(job.status)
    except Exception as exc:  # an internal error must not leave the job RUNNING
        log.exception("job %s failed inside cronkit", job_id)
        kit.lifecycle.finish(row, Status.FAILED, f"internal error: {type(exc).__name__}: {exc}")
        return "failed"
    finally:
        beats.discard(job_id)


def _end_unstarted(kit: Cronkit, row: dict, message: str) -> None:
    """A claimed job canceled before it ran: it ends CANCELED (a firing is logged NOTRUN
    and its cron goes on)."""
    kit.lifecycle.finish(row, Status.CANCELED, message)


# -- the dispatcher side ----------------------------------------------------------------


class CeleryExecutor(BaseExecutor):
    """Hands claimed jobs to Celery workers; ``concurrency`` = jobs in flight (sent and
    not ended) at most.

    ``running()`` is the part of them this dispatcher still answers for: sent, not yet
    taken by a Celery worker. The worker heartbeats exactly those; a job a Celery worker
    took is that worker's to heartbeat, so that its death shows. ``capacity`` is
    ``concurrency`` minus the jobs taken and still running, so that ``capacity -
    len(running())`` is the number of free slots.

    ``done(job_id)`` (which wakes the worker) is called as soon as the job's end is
    known. On a store that notifies job ends (PostgreSQL, whose Celery workers' stores
    set ``notify_ends``) the notification names the job and its attempt: the slot is
    freed at once, with no query. A monitor thread also looks at the store, with one
    query for every job in flight (the store's RUNNING jobs): when an end was notified
    without its attempt, and every ``fallback_interval`` seconds for ends nobody
    notified (a job reaped, or ended by another kind of process) and for jobs a Celery
    worker took; on another store (SQLite) every ``check_interval`` seconds while jobs
    are in flight.
    """

    check_interval = 0.02
    fallback_interval = 1.0
    #: A draining dispatcher hands on what it sent; the Celery workers run them on.
    interruptible = False

    def __init__(self, concurrency: int = 6, app: Celery | None = None):
        self._concurrency = concurrency
        super().__init__(concurrency)
        self.app = app
        self._owned: set[int] = set()           # sent, no Celery worker took it yet
        self._attempts: dict[int, int] = {}
        self._callbacks: dict[int, Callable[[int], None]] = {}
        self._closing = threading.Event()
        self._submitted = threading.Event()
        self._ends = threading.Event()          # a job end was notified: look now
        self._pushed = False                    # the store notifies job ends
        self._draining = False
        self._monitor: threading.Thread | None = None
        self._heartbeat = 15.0

    @property
    def capacity(self) -> int:
        with self._lock:
            return self._concurrency - (len(self._inflight) - len(self._owned))

    @capacity.setter
    def capacity(self, value: int) -> None:
        self._concurrency = value

    def start(self, kit: Cronkit) -> None:
        super().start(kit)
        if self.app is None:
            self.app = app
        self._heartbeat = max(0.2, kit.error_timeout / 4)
        store: Any = kit.store
        channel = getattr(store, "ends_channel", None)
        if channel is not None:   # PostgreSQL: job ends are notified
            self._pushed = bool(store.start_listener(self._notified, channel=channel))
        self._monitor = threading.Thread(target=self._watch, name="cronkit-celery-monitor",
                                         daemon=True)
        self._monitor.start()

    def running(self) -> set[int]:
        with self._lock:
            return set(self._owned)

    def count(self) -> int:
        """``len(running())``: the jobs sent that no Celery worker took yet. (Counting
        every job in flight here would count the taken ones twice, once in it and once
        out of ``capacity``: a worker woken by an end only when that count fell below
        its room would then wait for its poll with half its slots free.)"""
        with self._lock:
            return len(self._owned)

    def in_flight(self) -> set[int]:
        """Every job sent and not ended, taken by a Celery worker or not."""
        return super().running()

    def submit(self, row: dict, done: Callable[[int], None]) -> None:
        self.submit_many([row], done)

    def submit_many(self, rows: list[dict], done: Callable[[int], None]) -> None:
        """Send the jobs of ``rows`` (one claim's) together: one message each, all
        written to the broker in one round trip where its transport can (kombu's
        ``Producer.batch``: a Redis pipeline). If the broker cannot take them, each
        goes back to the store, due in 5 s: a message that went out all the same
        belongs to the claim put back, and its task adopts nothing and runs nothing."""
        if not rows:
            return
        with self._lock:
            for row in rows:
                job_id = row["id"]
                self._inflight[job_id] = row
                self._owned.add(job_id)
                self._attempts[job_id] = row["attempts"]
                self._callbacks[job_id] = done
        assert self.app is not None, "start() sets the Celery app"
        try:
            self._send(rows)
        except Exception as exc:  # the broker is away: the jobs wait in the store instead
            for row in rows:
                log.error("cannot send job %s to Celery (%s): requeued", row["id"], exc)
                self.kit.lifecycle.retry(row, f"broker unavailable: {type(exc).__name__}: "
                                              f"{exc}", delay=5)
                self._ended(row["id"])
            return
        self._submitted.set()

    def _send(self, rows: list[dict]) -> None:
        assert self.app is not None, "start() sets the Celery app"
        owner, heartbeat = self.kit.worker_id, self._heartbeat
        batch = getattr(self.app, "producer_or_acquire", None)
        if len(rows) == 1 or batch is None:
            for row in rows:
                self.app.send_task(TASK_NAME, kwargs={
                    "job_id": row["id"], "attempt": row["attempts"], "owner": owner,
                    "heartbeat": heartbeat})
            return
        with batch() as producer, producer.batch():
            for row in rows:
                self.app.send_task(TASK_NAME, kwargs={
                    "job_id": row["id"], "attempt": row["attempts"], "owner": owner,
                    "heartbeat": heartbeat}, producer=producer)

    def _ended(self, job_id: int) -> None:
        with self._lock:
            self._inflight.pop(job_id, None)
            self._owned.discard(job_id)
            self._attempts.pop(job_id, None)
            done = self._callbacks.pop(job_id, None)
        if done is not None:
            done(job_id)

    def _check(self) -> None:
        """One look at the store: which jobs in flight ended, which were taken."""
        with self._lock:
            attempts = dict(self._attempts)
        if not attempts:
            return
        live = {r["id"]: r for r in self.kit.store.running_jobs() if r["id"] in attempts}
        for job_id, attempt in attempts.items():
            row = live.get(job_id)
            if row is None or row["attempts"] != attempt:
                self._ended(job_id)    # ended, or reaped and claimed again elsewhere
            elif row["worker"] != self.kit.worker_id:
                with self._lock:
                    self._owned.discard(job_id)

    def _notified(self, payload: str) -> None:
        """Jobs ended (the listener's thread): each of ours named with the attempt we
        sent ends here, at once; a job of ours named without one, or none named, asks
        the monitor for a look at the store."""
        look = not payload
        for item in payload.split(",") if payload else ():
            job_id, _, attempt = item.partition(":")
            try:
                with self._lock:
                    ours = self._attempts.get(int(job_id))
                if ours is not None and attempt and ours == int(attempt):
                    self._ended(int(job_id))
                elif ours is not None:
                    look = True
            except ValueError:   # not a payload of ours
                look = True
        if look:
            self._ends.set()

    def _interval(self) -> float:
        """Seconds until the next look at the store when no end is notified."""
        return self.fallback_interval if self._pushed and not self._draining \
            else self.check_interval

    def _watch(self) -> None:
        last_beat = 0.0
        while not self._closing.is_set():
            if not self._attempts:
                self._submitted.wait(1.0)
                self._submitted.clear()
                continue
            self._ends.wait(self._interval())
            self._ends.clear()   # before the look: an end notified during it is seen next
            if self._closing.is_set():
                break
            try:
                self._check()
                owned = self.running()
                now = self.kit.clock.now()
                if owned and now.timestamp() - last_beat >= self._heartbeat:
                    # Also while the worker loop is stopping: sent jobs stay ours till taken.
                    self.kit.store.heartbeat(owned, now)
                    last_beat = now.timestamp()
            except Exception:
                log.warning("cannot read the jobs in flight; trying again", exc_info=True)

    def shutdown(self, wait: bool = True) -> None:
        """Stop; with ``wait``, first wait (up to ``error_timeout``) until every job sent
        was taken by a Celery worker or ended: the Celery workers run them on."""
        if wait and self.kit is not None:
            self._draining = True   # a job taken is not notified: look often meanwhile
            self._ends.set()
            deadline = self.kit.clock.now() + timedelta(seconds=self.kit.error_timeout)
            while self.running() and self.kit.clock.now() < deadline:
                self._closing.wait(self.check_interval)
        self._closing.set()
        self._submitted.set()
        self._ends.set()
        if self._monitor is not None:
            self._monitor.join()
        if self._pushed:
            store: Any = self.kit.store
            store.stop_listener(self._notified, channel=store.ends_channel)
            self._pushed = False


app = make_app()
