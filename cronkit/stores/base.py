"""The store contract as Python types: what every backend implements (IStore in
``cronkit.interfaces`` says the same for zope.interface).

Every operation is marked ``@repeatable`` (safe to repeat after a lost connection: done
twice it leaves the same rows and gives the same answer as done once) or ``@unsafe``
(done twice it would write twice, or answer differently). A store that retries through
connection loss retries the repeatable ones as they are, and must make the unsafe ones
idempotent or raise StoreError: the PostgreSQL store asks the server whether the lost
COMMIT went through. :data:`REPEATABLE` and :data:`UNSAFE` are the two sets of names.

Every operation that writes is also marked ``@writes`` (:data:`WRITES`; the others,
:data:`READS`, only read). A store opened read-only (``read_only`` true: asked for with
``mode=ro`` in its URL or ``read_only=True``, or found so when its file or folder is not
writable) answers every read and refuses every write with ReadOnlyStore, before it
touches the database: nothing changes.

Every operation raises StoreError when the database fails or refuses the change (a
DuplicateFiring, itself a StoreError, when the refused row is a cron firing's second
job). Datetimes are timezone-aware; a naive one raises StoreError.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

#: The run_after of a continuation still waiting for the jobs it runs after.
WAITING = datetime(9999, 12, 31, tzinfo=UTC)

JobRow = dict[str, Any]
"""A job: every column of ``cronkit_jobs`` (``schema.JOB_COLUMNS``), payload a dict."""
CronRow = dict[str, Any]
"""A cron: ``schema.CRON_COLUMNS`` plus ``position``, environ a dict."""
LogEntry = dict[str, Any]
"""A cron's log: date, status, messages (a list of str), and its id once stored."""
SiteRow = dict[str, Any]
"""A site: name, marked, activated, version."""
CrontabData = dict[str, Any]
"""A site's crontab: version, activated, crons (CronRows, each with its ``logs``)."""
WorkerRow = dict[str, Any]
"""A worker: every column of ``cronkit_workers`` (id, host, pid, executor, concurrency,
state, started_at, heartbeat, stopped_at, version), ``info`` a dict."""
Statuses = str | Iterable[str] | None

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__cronkit_repeatable__"
_WRITES = "__cronkit_writes__"


def repeatable(fn: F) -> F:
    """Mark a store operation safe to repeat after a lost connection."""
    setattr(fn, _MARK, True)
    return fn


def unsafe(fn: F) -> F:
    """Mark a store operation not safe to repeat after a lost connection."""
    setattr(fn, _MARK, False)
    return fn


def writes(fn: F) -> F:
    """Mark a store operation that writes: a read-only store refuses it."""
    setattr(fn, _WRITES, True)
    return fn


class CrontabStore(ABC):
    """Sites, their crontabs and the crons' logs (ICrontabStore)."""

    @abstractmethod
    @repeatable
    @writes
    def ensure_site(self, site: str) -> None:
        """Make ``site`` known (unmarked, activated, version 0) unless it is."""

    @abstractmethod
    @repeatable
    def sites(self) -> list[SiteRow]:
        """Return every known site, by name."""

    @abstractmethod
    @repeatable
    @writes
    def mark_site(self, site: str, marked: bool = True) -> None:
        """Mark (or unmark) ``site`` crontab-aware, making it known; its crontab and
        version do not change."""

    @abstractmethod
    @repeatable
    def marked_sites(self) -> list[str]:
        """Return the names of the crontab-aware sites, sorted."""

    @abstractmethod
    @repeatable
    def crontab_version(self, site: str) -> int:
        """Return a number that grows with every change of the site's crontab or logs
        (0 for an unknown site)."""

    @abstractmethod
    @repeatable
    def load_crontab(self, site: str, uid: str | None = None) -> CrontabData:
        """Return the site's version, activated flag and crons in position order, each
        with its logs newest first; only the cron ``uid`` when given. An unknown site is
        ``{"version": 0, "activated": True, "crons": []}``."""

    @abstractmethod
    @unsafe
    @writes
    def save_crontab(self, site: str, activated: bool | None, upserts: list[CronRow],
                     deletes: Iterable[str], new_logs: list[tuple[str, LogEntry]],
                     deleted_logs: Iterable[int]) -> tuple[int, list[int]]:
        """Apply one crontab change atomically: set ``activated`` (None leaves it),
        insert or replace the ``upserts`` by uid, delete the crons ``deletes`` with their
        logs, append ``new_logs`` ((uid, entry), oldest first; each cron then keeps its
        newest ``logs_limit``), delete the logs of ids ``deleted_logs``. Return (new
        version, ids of the new logs in order). Unsafe: new logs would be added twice."""

    @abstractmethod
    @unsafe
    @writes
    def add_log(self, site: str, cron_uid: str, entry: LogEntry, limit: int) -> tuple[int, int]:
        """Append ``entry`` to the cron's logs and keep its newest ``limit``; return (log
        id, new crontab version). Unsafe: twice is two logs."""


class JobStore(ABC):
    """Jobs, their claims and their history (IJobStore)."""

    @abstractmethod
    @unsafe
    @writes
    def add_jobs(self, rows: Iterable[JobRow], ignore_duplicates: bool = False) -> list[int]:
        """Insert job rows (a list, or any iterable: rows made as they are inserted) in
        one transaction; return their ids in order. A second job
        for one cron firing (site, cron_uid, fire_at) raises DuplicateFiring and inserts
        nothing, or with ``ignore_duplicates`` is skipped (and has no id in the result).
        Unsafe: a plain job would be inserted twice, a firing's id lost."""

    @abstractmethod
    @unsafe
    @writes
    def add_unique_job(self, row: JobRow, running: bool = False) -> tuple[int, bool]:
        """Insert ``row`` unless a PENDING job (PENDING or RUNNING, with ``running``)
        has its ``unique_key``; return (id, created). Calls at once with one key make
        one job. Unsafe: a retry answers
        ``created=False``, or makes a second job once the first was claimed."""

    @abstractmethod
    @repeatable
    def get_job(self, job_id: int) -> JobRow:
        """Return the job; raise NoSuchJob."""

    @abstractmethod
    @repeatable
    def list_jobs(self, site: str | None = None, cron_uid: str | None = None,
                  status: Statuses = None, type: str | None = None, limit: int | None = None,
                  offset: int = 0, oldest_first: bool = False,
                  search: str | None = None) -> list[JobRow]:
        """Return the jobs matching every filter given (``status``: one or several;
        ``search``: text found in the name, type, payload or message, case-insensitive,
        no wildcard), newest first (oldest first with ``oldest_first``), ``limit`` of
        them from ``offset``."""

    @abstractmethod
    @repeatable
    def count_jobs(self, site: str | None = None, cron_uid: str | None = None,
                   status: Statuses = None, type: str | None = None,
                   search: str | None = None) -> int:
        """Return how many jobs match every filter given."""

    @abstractmethod
    @repeatable
    def cron_job_statuses(self, site: str, cron_uid: str) -> set[str]:
        """Return the statuses the cron's jobs are in."""

    @abstractmethod
    @repeatable
    def pending_cron_jobs(self, site: str) -> dict[str, dict[str, Any]]:
        """Return uid -> {id, cron_uid, signature, run_after, fire_at} of the site's
        PENDING cron jobs (the oldest, when a cron has several)."""

    @abstractmethod
    @repeatable
    def running_cron_uids(self, site: str) -> set[str]:
        """Return the uids of the site's crons that have a RUNNING job."""

    @abstractmethod
    @repeatable
    def pending_and_running_cron_jobs(self, site: str) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """Return what ``pending_cron_jobs`` and ``running_cron_uids`` return, read at
        one instant: a cron whose run is ending shows its running job or its next
        pending one, never neither (two separate reads can see neither)."""

    @abstractmethod
    @unsafe
    @writes
    def delete_pending_cron_jobs(self, site: str, uids: Iterable[str]) -> int:
        """Delete the PENDING jobs of those crons (running and finished ones stay);
        return how many. Unsafe: a retry counts none."""

    @abstractmethod
    @unsafe
    @writes
    def claim(self, now: datetime, limit: int, worker: str, pid: int | None = None,
              limits: Mapping[str, Any] | None = None) -> list[JobRow]:
        """Atomically move up to ``limit`` due PENDING jobs (run_after <= now) to RUNNING
        for ``worker`` and ``pid``: started_at and heartbeat ``now``, attempts + 1,
        progress 0. Highest priority first, then earliest run_after, then submission
        order; a cron job waits while a job of its cron runs, and one claim takes one
        job per cron. No two claims get the same job. Return the rows in claim order.
        No job of a paused site or type is claimed (see ``pause``). ``limits`` maps a
        job type to its ``TypeLimit`` (max_running, rate: (count, seconds)): a claim
        never leaves more than ``max_running`` jobs of the type RUNNING, nor more than
        ``count`` of them started (``started_at``) within the last ``seconds``, counted
        over the whole store (every site, worker and process), and holds so when claims
        run at once. Unsafe: a retry would claim other jobs."""

    @abstractmethod
    @repeatable
    @writes
    def pause(self, site: str, type: str | None, now: datetime) -> None:
        """Pause the site's queue (``type`` None) or its jobs of ``type``, as of ``now``:
        from its commit on no claim, by any worker, takes those jobs; they stay PENDING
        (cron firings too) until resumed. Pausing what is paused changes nothing."""

    @abstractmethod
    @unsafe
    @writes
    def resume(self, site: str, type: str | None) -> bool:
        """End that pause (the whole site's for ``type`` None, else that type's; the
        other pauses of the site stay); return True if it was paused. Unsafe: a retry
        answers False."""

    @abstractmethod
    @repeatable
    def pauses(self, site: str) -> list[str | None]:
        """Return what of the site is paused: None for the whole queue (first), then the
        paused types, sorted; [] when nothing is."""

    @abstractmethod
    @repeatable
    def paused_sites(self) -> list[str]:
        """Return the names of the sites with a pause (whole or of a type), sorted."""

    @abstractmethod
    @repeatable
    def count_ends(self, since: datetime, until: datetime, step: timedelta,
                   site: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
        """Return the jobs that ended in [since, until) counted per interval of ``step``
        and per end status, by one aggregate query (see IJobStore)."""

    @abstractmethod
    @repeatable
    def job_timings(self, since: datetime, until: datetime, edges: Iterable[float],
                    site: str | None = None, type: str | None = None) -> dict[str, Any]:
        """Return, per job type, the lateness and run-duration distributions of the jobs
        that ran and ended in [since, until), by one aggregate query (see IJobStore)."""

    @abstractmethod
    @repeatable
    def next_due(self) -> datetime | None:
        """Return the earliest run_after of a PENDING job, or None."""

    @abstractmethod
    @repeatable
    @writes
    def update_job(self, job_id: int, **fields: Any) -> None:
        """Set columns of the job (``payload`` a dict); an unknown id changes nothing."""

    @abstractmethod
    @unsafe
    @writes
    def append_text(self, job_id: int, text: str) -> None:
        """Append ``text`` to the job's status_text. Unsafe: twice appends twice."""

    @abstractmethod
    @unsafe
    @writes
    def finish_job(self, job_id: int, status: str, now: datetime, message: str | None = None,
                   progress: int | None = None, only_running: bool = True,
                   attempt: int | None = None, result: Any = None) -> str | None:
        """End the job as ``status`` at ``now`` (finished_at, heartbeat), with
        ``message``, ``progress`` and ``result`` (a JSON value) when given. With
        ``only_running`` only a RUNNING job changes; with ``attempt`` only one whose
        attempts equals it (an old attempt's late end never closes a newer one). A
        SUCCESS of a job whose cancel was asked ends CANCELED. Return the final status,
        or None when nothing changed. Unsafe: a retry answers None."""

    @abstractmethod
    @unsafe
    @writes
    def finish_jobs(self, ends: Iterable[Mapping[str, Any]]) -> list[str | None]:
        """End many jobs in one transaction (group commit): each ``end`` holds the
        arguments of ``finish_job`` (job_id, status, now, and message, progress,
        only_running, attempt, result as it needs) and is applied as that call would
        be; return each end's final status (None where nothing changed), in order.
        Unsafe: a retry answers None."""

    @abstractmethod
    @unsafe
    @writes
    def lease(self, now: datetime, until: datetime, limit: int, worker: str,
              pid: int | None, expires: datetime, limited: Iterable[str] = ()) -> list[JobRow]:
        """Claim ahead: lease to ``worker`` up to ``limit`` PENDING plain jobs (no cron
        job, none of the ``limited`` types, none paused) due after ``now`` and by
        ``until``, in claim order, until ``expires``. A leased job stays PENDING with
        ``worker`` and ``pid`` its holder's and ``heartbeat`` the lease's expiry; no
        claim or lease takes it until then. Return the rows. Unsafe: a retry finds them
        leased."""

    @abstractmethod
    @unsafe
    @writes
    def start_leased(self, job_ids: Iterable[int], now: datetime, worker: str,
                     pid: int | None) -> list[JobRow]:
        """Move the jobs of ``job_ids`` that ``worker`` still holds (PENDING, leased by
        it, even if the lease expired but no one took them) and whose site or type is not
        paused to RUNNING as ``claim`` would; the others it held are given back. Return
        the started rows in claim order. A job canceled while leased is not PENDING:
        it never starts. Unsafe: a retry starts none."""

    @abstractmethod
    @repeatable
    @writes
    def renew_leases(self, job_ids: Iterable[int], worker: str, expires: datetime) -> set[int]:
        """Extend to ``expires`` the leases ``worker`` holds on ``job_ids``; return the
        ids it still holds (a job canceled, or taken after its lease expired, is not)."""

    @abstractmethod
    @repeatable
    @writes
    def release_leases(self, job_ids: Iterable[int], worker: str) -> None:
        """Give back the leases ``worker`` holds on ``job_ids``: the jobs are claimable
        again at once."""

    @abstractmethod
    @unsafe
    @writes
    def cancel_pending(self, job_id: int, now: datetime) -> bool:
        """End the job CANCELED at ``now`` (with its canceled flag) if it is PENDING;
        return True if this call ended it. Unsafe: a retry answers False."""

    @abstractmethod
    @repeatable
    @writes
    def cancel_job(self, job_id: int, now: datetime) -> str:
        """Cancel: a PENDING job ends CANCELED at ``now``, a RUNNING one gets its
        canceled flag, a finished one stays as it is. Return the status after the call;
        raise NoSuchJob."""

    @abstractmethod
    @repeatable
    def is_canceled(self, job_id: int) -> bool:
        """True once a cancel was asked for the job (False for an unknown id)."""

    @repeatable
    def canceled_among(self, job_ids: Iterable[int]) -> set[int]:
        """The ids of ``job_ids`` whose cancel was asked (unknown ids are not): one
        read for many jobs (a worker's jobs started ahead of their due instant, checked
        at that instant). By default ``is_canceled`` for each."""
        return {job_id for job_id in job_ids if self.is_canceled(job_id)}

    @abstractmethod
    @repeatable
    @writes
    def heartbeat(self, job_ids: Iterable[int], now: datetime) -> None:
        """Set the heartbeat of those jobs that are RUNNING to ``now``."""

    @abstractmethod
    @repeatable
    def stale_jobs(self, before: datetime) -> list[JobRow]:
        """Return the RUNNING jobs whose last heartbeat is older than ``before``."""

    @abstractmethod
    @repeatable
    def running_jobs(self) -> list[JobRow]:
        """Return every RUNNING job."""

    @abstractmethod
    @repeatable
    def continuations(self, after_id: int | None = None, waiting: bool = True) -> list[JobRow]:
        """Return the continuations (jobs with ``after_ids``) of job ``after_id`` (of
        any job when None), oldest first: only those still waiting (PENDING, run_after
        ``WAITING``: found by the (status, run_after) index, however long the queue)
        unless ``waiting`` is false."""

    @abstractmethod
    @unsafe
    @writes
    def requeue_job(self, job_id: int, run_after: datetime, message: str,
                    attempt: int | None = None) -> bool:
        """Put a RUNNING job (of that ``attempt``, when given) back to PENDING, due at
        ``run_after``, with ``message``; its worker, pid and heartbeat are cleared, its
        attempts kept. True if it changed. Unsafe: a retry answers False."""

    @abstractmethod
    @unsafe
    @writes
    def adopt_job(self, job_id: int, attempt: int, owner: str, worker: str, pid: int | None,
                  now: datetime) -> JobRow | None:
        """Hand a RUNNING job from its claimer ``owner`` to ``worker`` and ``pid``
        (heartbeat ``now``) only if it is still that claim (``attempt``, ``owner``).
        Return the row, or None. Unsafe: a retry finds the job no longer the owner's."""

    @abstractmethod
    @unsafe
    @writes
    def remove_job(self, job_id: int) -> None:
        """Delete the job, whatever its state, and its history; raise NoSuchJob.
        Unsafe: a retry raises NoSuchJob."""

    @abstractmethod
    @unsafe
    @writes
    def delete_jobs(self, job_ids: Iterable[int]) -> int:
        """Delete those jobs (unknown ids are ignored) and their history; return how
        many. Unsafe: a retry counts none."""

    @abstractmethod
    @unsafe
    @writes
    def cleanup(self, success_before: datetime | None, all_before: datetime | None) -> int:
        """Delete the SUCCESS jobs finished before ``success_before`` and every finished
        job finished before ``all_before`` (None keeps them); return how many. Unsafe:
        a retry counts none."""

    @abstractmethod
    @unsafe
    @writes
    def add_history(self, job_id: int, date: datetime, comment: str, status: str = "info") -> None:
        """Add a Job History record. Unsafe: twice is two records."""

    @abstractmethod
    @repeatable
    def history(self, job_id: int) -> list[dict[str, Any]]:
        """Return the job's history records ({date, status, comment}), oldest first."""


class WorkerStore(ABC):
    """The workers of the store, each registered and heartbeating by itself (part of
    IJobStore): what ``cronkit workers`` and /api/v1/workers show."""

    @abstractmethod
    @repeatable
    @writes
    def register_worker(self, row: WorkerRow) -> None:
        """Insert the worker ``row`` (every column but ``stopped_at``, which is cleared;
        ``info`` a JSON object), or replace the row of its ``id``."""

    @abstractmethod
    @repeatable
    @writes
    def worker_heartbeat(self, worker_id: str, now: datetime, state: str | None = None,
                         info: Mapping[str, Any] | None = None) -> bool:
        """Set the worker's heartbeat to ``now``, and its ``state`` and ``info`` when
        given; return whether its row exists (False: it was deleted, and the worker
        registers again)."""

    @abstractmethod
    @repeatable
    @writes
    def stop_worker(self, worker_id: str, now: datetime) -> bool:
        """Mark the worker stopped at ``now`` (state "stopped", stopped_at and heartbeat
        ``now``); return whether its row exists."""

    @abstractmethod
    @repeatable
    def list_workers(self) -> list[WorkerRow]:
        """Return every worker row, newest first (by started_at, then id)."""

    @abstractmethod
    @unsafe
    @writes
    def delete_workers(self, before: datetime) -> int:
        """Delete the workers stopped before ``before`` and those, whatever their state,
        whose last heartbeat is older than ``before`` (lost long ago); return how many.
        Unsafe: a retry counts none."""


class Store(CrontabStore, JobStore, WorkerStore):
    """A whole store, built from its URL (IStore)."""

    url: str
    #: True when every write is refused with ReadOnlyStore (see the module docstring).
    read_only: bool = False

    @abstractmethod
    @repeatable
    def schema_version(self) -> int:
        """Return the schema version of the database."""

    @abstractmethod
    @repeatable
    def check(self) -> None:
        """Raise StoreGone when the database is no longer the one opened (a SQLite file
        deleted or replaced by another since); cheap (one ``stat``), for a worker to call
        every second or so. A store with no file of its own (memory://, PostgreSQL)
        has nothing to check."""

    @abstractmethod
    def close(self) -> None:
        """Let go of every connection; the store is not used afterwards."""

    @abstractmethod
    def after_fork(self) -> None:
        """In a forked child: forget (never close) the parent's connections; the store
        opens its own from then on."""


@runtime_checkable
class ListeningStore(Protocol):
    """A store that wakes workers when work arrives (PostgreSQL: LISTEN/NOTIFY;
    IListeningStore)."""

    notify_channel: str

    def start_listener(self, callback: Callable[[], None] | None = None,
                       timeout: float = 10.0) -> bool:
        """Call ``callback()`` whenever a job is queued or requeued, or a crontab saved,
        by any process on this database; wait up to ``timeout`` s for the listener to be
        in place and return True if it is."""
        ...

    def stop_listener(self, callback: Callable[[], None] | None = None) -> None:
        """Forget ``callback``; with none given, or none left, stop listening."""
        ...

    def wait_for_notify(self, timeout: float) -> bool:
        """Sleep until a notification arrives or ``timeout`` s pass; True if one did."""
        ...


def _marked(value: bool, mark: str = _MARK) -> frozenset[str]:
    return frozenset(name for cls in Store.__mro__ for name, fn in vars(cls).items()
                     if getattr(fn, mark, None) is value)


REPEATABLE: frozenset[str] = _marked(True)
"""The operations that are safe to repeat after a lost connection."""
UNSAFE: frozenset[str] = _marked(False)
"""The operations that are not: a retrying store makes them idempotent or raises."""
OPERATIONS: frozenset[str] = REPEATABLE | UNSAFE
WRITES: frozenset[str] = _marked(True, _WRITES)
"""The operations that write: a read-only store refuses them with ReadOnlyStore."""
READS: frozenset[str] = OPERATIONS - WRITES
"""The operations that only read: a read-only store answers them."""
