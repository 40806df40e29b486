"""IJobLifecycle: the one owner of a job's life (``kit.lifecycle``).

Every state change of a job is written here and nowhere else: queued, started,
progress, retried, and each end (SUCCESS, FAILED, CANCELED) whatever its cause — a
run that returns or raises, a cancel while pending, a cooperative or forced cancel, a
hard timeout, a child that crashed, a worker lost, a Celery message that never ran, a
manual run. Executors, the reaper, the queue manager, the web, the CLI and Celery call
it; none of them ends a job in the store by itself.

A job's end is accepted from the attempt that owns it only: the store ends the row if
it is still RUNNING *and* its ``attempts`` is the attempt ending it. The caller whose
write changed the row is the one that ends the job, so the end's Log, next firing
and events are written and sent exactly once, whoever else tries (a thread that
returns after its timeout, a child killed after a forced cancel, a reaper racing a
late finish, an orphan of a killed worker).

For a cron firing the end also writes the cron's Log, queues the next firing (before
the end commits: at no instant has the cron neither a running nor a pending job), and
sends FinishedCronJobEvent; then JobFinishedEvent, as for every job.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from zope.component import getGlobalSiteManager
from zope.interface import implementedBy, implementer

from .. import logs, tracing
from ..events import (
    Event,
    FinishedCronJobEvent,
    JobFinishedEvent,
    JobProgressEvent,
    JobQueuedEvent,
    JobRetriedEvent,
    JobStartedEvent,
    StartedCronJobEvent,
    notify,
)
from ..exceptions import InvalidCron, NoSuchJob, Retry
from ..executors.processes import kill_group
from ..interfaces import IJob, IJobLifecycle, IJobRunner, ISite
from ..jobs import Job, Status
from ..model import Cron, Log, LogStatus
from ..model.validation import storable_text
from ..runner import Outcome, call_runner, runner_factory
from .cron_manager import load_cron, missed_firings
from .crontab_registry_manager import check_environ_of
from .endwriter import EndWriter, PendingEnd
from .outcomes import (
    RETRY_ASKED_DEFAULT,
    LogEntry,
    RunRequest,
    TypeLimit,
    end_of,
    firing_end_of,
    log_of,
    parse_rate,
)

if TYPE_CHECKING:
    from ..kit import Cronkit
    from ..metrics import Metrics
    from ..site import Site



def _listened(site: Site, cls: type[Event]) -> bool:
    """Whether anyone would receive an event of ``cls``: building it can be skipped."""
    for c in cls.__mro__:
        sig = c.__dict__.get("signal")
        if sig is not None and sig.receivers:
            return True
    return bool(site.registry.adapters.subscriptions([implementedBy(cls)], None))


def _alive(pid: int) -> bool:
    """Whether process ``pid`` lives (a zombie, dead but not yet waited for, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):   # no /proc (not Linux), or gone meanwhile
        return True
    return state not in (b"Z", b"X")


class _Counted:
    """An iterable of rows that counts them and keeps the first (a one-job
    submission's, for its log line), not the others (a big sync's are not held)."""

    def __init__(self, rows: Iterable[dict]):
        self.rows = rows
        self.count = 0
        self.first: dict | None = None

    def __iter__(self) -> Iterator[dict]:
        for row in self.rows:
            self.count += 1
            if self.first is None:
                self.first = row
            yield row


@implementer(IJobLifecycle)
class JobLifecycle:
    """The kit's job lifecycle; see the module docstring and IJobLifecycle."""

    def __init__(self, kit: Cronkit):
        self.kit = kit
        #: How many job ends are being written now (a job's child process that is
        #: told its worker died finishes writing them first).
        self.finishing = 0
        #: Set in such a child: exit once the end is written.
        self.exit_after_finish = False
        #: (when, whether) continuations were last seen waiting in the store.
        self._waiting_seen: tuple[float, bool] | None = None
        #: (the registries' generations, the limits read from them).
        self._limits: tuple[tuple, dict[str, TypeLimit]] | None = None
        #: Group commit of plain jobs' ends while a worker runs (see endwriter.py).
        self.writer = EndWriter(self)
        #: The kit's Prometheus metrics (cronkit.metrics.enable), or None: not counted.
        self.metrics: Metrics | None = None
        #: The runs a shutting-down worker of this process stopped: job id -> attempt.
        #: Their end, whatever it is, puts the job back to PENDING (see interrupt()).
        self.interrupted: dict[int, int] = {}

    def _job(self, job: Job | dict) -> Job:
        return job if isinstance(job, Job) else Job(self.kit.site(job["site"]), job)

    # -- queued -----------------------------------------------------------------------

    def queue(self, site: Site, rows: Iterable[dict], ignore_duplicates: bool = False) -> list[int]:
        """Insert ``rows`` (any iterable: a generator's rows are made as they are
        inserted, unless someone listens to JobQueuedEvent) in one transaction; send
        their events and log them; return the new ids. Traced, a submission span
        covers the insert and each row holds its traceparent."""
        tracer = tracing.tracer()
        if tracer is not None:
            with tracing.submitting(tracer, site.name) as (span, traceparent):
                ids = self._queue(site, tracing.with_trace(rows, traceparent),
                                  ignore_duplicates)
                tracing.submitted(span, ids)
                return ids
        return self._queue(site, rows, ignore_duplicates)

    def _queue(self, site: Site, rows: Iterable[dict], ignore_duplicates: bool) -> list[int]:
        metrics = self.metrics
        if metrics is not None:
            rows = counted = metrics.tally(rows)
        listened = _listened(site, JobQueuedEvent)
        logged = logs.jobs_log.isEnabledFor(logging.INFO)
        if logged and not isinstance(rows, list):
            rows = _Counted(rows)
        if listened and not isinstance(rows, list):
            rows = list(rows)
        ids = self.kit.store.add_jobs(rows, ignore_duplicates=ignore_duplicates)
        if ids and listened:
            assert isinstance(rows, list)
            if len(ids) == len(rows):
                queued = [Job(site, dict(r, id=i)) for r, i in zip(rows, ids, strict=True)]
            else:
                queued = [Job(site, self.kit.store.get_job(i)) for i in ids]
            for job in queued:
                notify(JobQueuedEvent(site=site, job=job))
        if ids and logged:
            self._log_queued(site, rows, ids)
        if ids and metrics is not None:
            metrics.queued(site.name, counted, ids)
        if ids:
            self.kit.wake()
        return ids

    def _log_queued(self, site: Site, rows: Iterable[dict], ids: list[int]) -> None:
        """One line per job queued; a batch is one line, its jobs' at DEBUG."""
        known = rows if isinstance(rows, list) else (
            [rows.first] if isinstance(rows, _Counted) and rows.count == 1 and rows.first else [])
        if len(ids) > 1:
            logs.queued_batch(site.name, len(ids))
        if len(ids) == len(known) and (len(ids) == 1 or logs.jobs_log.isEnabledFor(logging.DEBUG)):
            for row, job_id in zip(known, ids, strict=True):
                logs.queued(Job(site, dict(row, id=job_id)),
                            logging.INFO if len(ids) == 1 else logging.DEBUG)

    def queue_unique(self, site: Site, row: dict, running: bool = False) -> tuple[int, bool]:
        tracer = tracing.tracer()
        if tracer is not None:
            with tracing.submitting(tracer, site.name) as (span, traceparent):
                found = self._queue_unique(site, dict(row, trace=traceparent), running)
                tracing.submitted(span, [found[0]])
                span.set_attribute("cronkit.job.merged", not found[1])
                return found
        return self._queue_unique(site, row, running)

    def _queue_unique(self, site: Site, row: dict, running: bool) -> tuple[int, bool]:
        job_id, created = self.kit.store.add_unique_job(row, running=running)
        if created and self.metrics is not None:
            self.metrics.queued_one(site.name, row["type"])
        if created:
            notify(JobQueuedEvent(site=site, job=Job(site, dict(row, id=job_id))))
            if logs.jobs_log.isEnabledFor(logging.INFO):
                logs.queued(Job(site, dict(row, id=job_id)))
            self.kit.wake()
        return job_id, created

    # -- started ----------------------------------------------------------------------

    def claim(self, now: datetime, limit: int) -> list[dict]:
        return self.kit.store.claim(now, limit, self.kit.worker_id, os.getpid(),
                                    limits=self.limits() or None)

    def limits(self) -> dict[str, TypeLimit]:
        """The claim limits of every job type whose runner declares one, by type name:
        ``max_running`` (jobs of that type running at once across every worker on the
        store) and ``rate_limit`` ("N/s", "N/m" or "N/h": starts per period). A name
        registered with different limits (a site's own runner) gets the strictest.
        Read again only when a registration changed (every claim asks)."""
        registries = [getGlobalSiteManager().adapters] + [site.registry.adapters
                                                          for site in self.kit.open_sites()]
        key = tuple((id(r), r._generation) for r in registries)
        if self._limits is not None and self._limits[0] == key:
            return self._limits[1]
        found: dict[str, TypeLimit] = {}
        for registry in registries:
            for name, factory in registry.lookupAll((ISite, IJob), IJobRunner):
                limit = TypeLimit(getattr(factory, "max_running", None),
                                  parse_rate(getattr(factory, "rate_limit", None), name))
                if limit != (None, None):
                    found[name] = limit.stricter(found.get(name))
        self._limits = (key, found)
        return found

    def start_now(self, job_id: int) -> dict:
        store, now = self.kit.store, self.kit.clock.now()
        row = store.get_job(job_id)
        store.update_job(job_id, status="running", started_at=now, heartbeat=now,
                         finished_at=None, worker=self.kit.worker_id, pid=os.getpid(),
                         canceled=False, progress=0, attempts=(row["attempts"] or 0) + 1)
        return store.get_job(job_id)

    def execute(self, row: dict | Job, debug: bool = False,
                written: Callable[[], None] | None = None) -> Job:
        steps = self.steps(row, debug, written)
        try:
            run = next(steps)
            while True:
                run = steps.send(call_runner(run.site, run.job, run.check_canceled))
        except StopIteration as stop:
            return stop.value

    def steps(self, row: dict | Job, debug: bool = False,
              written: Callable[[], None] | None = None) -> Generator[RunRequest, Outcome, Job]:
        """A job's run as steps: what comes before its runner runs (events, the cron
        firing's checks), a RunRequest yielded when the runner must run, the runner's
        Outcome sent back, then its end; the Job returned. ``execute`` drives it in one
        thread; an executor may run the runner elsewhere (an async one on its loop, with
        no thread held while it awaits) and the steps around it in a thread.

        With ``written`` (an executor's), the end of a plain job may be handed to the
        writer (group commit) while it runs: the Job returned then has ``_end_queued``
        set, and ``written()`` is called once the end is in the store."""
        job = row if isinstance(row, Job) else Job(self.kit.site(row["site"]), row, debug=debug)
        site = job.site
        if job._debug:    # a debug run changes nothing: no status, no event
            yield RunRequest(site, job, False)
            return job
        span = tracing.run_started(job, row)    # None when tracing is off
        if job.cron_uid is not None:
            return (yield from self._firing_steps(site, job, span))
        if _listened(site, JobStartedEvent):    # else building it is all it would cost
            notify(JobStartedEvent(site=site, job=job))
        if logs.jobs_log.isEnabledFor(logging.INFO):
            logs.started(job)
        if self.metrics is not None:
            self.metrics.started(job)
        out = yield RunRequest(site, job, False)
        if self._retried(job, out):
            tracing.run_ended(span, "retried", out.exc or out.error)
            return job.refresh()
        status, message, progress, result = end_of(out)
        tracing.run_ended(span, status, (out.exc or message) if status == Status.FAILED else None)
        if written is not None and self.writer.running and not self._interrupted(job):
            end = PendingEnd(job, status, None if message is None else storable_text(message),
                             progress, result, self.kit.clock.now(), written)
            if self.writer.put(end):
                job._end_queued = True
                return job
        self.finish(job, status, message, progress=progress, result=result)
        return job

    def _firing_steps(self, site: Site, job: Job,
                      span: Any = None) -> Generator[RunRequest, Outcome, Job]:
        assert job.cron_uid is not None
        cron, crontab_on, version = load_cron(site, job.cron_uid)
        if cron is None:
            tracing.run_ended(span, Status.CANCELED, "the cron no longer exists")
            self.finish(job, Status.CANCELED, f"cron {job.cron_uid!r} no longer exists")
            return job
        job.cron = cron
        notify(StartedCronJobEvent(site=site, cron=cron, job_id=job.id))
        notify(JobStartedEvent(site=site, job=job))
        if logs.jobs_log.isEnabledFor(logging.INFO):
            logs.started(job)
        if self.metrics is not None:
            self.metrics.started(job)
        start = self.kit.clock.now()
        manager = site.cron_manager(cron)
        skipped, missed = manager.skip_reason(job, crontab_on, start)
        message: str | None
        if skipped is not None:
            status, message, log = Status.CANCELED, skipped, (LogStatus.NOTRUN, [skipped])
        else:
            try:       # the environ, checked against the runner's format, with its defaults
                job.payload = check_environ_of(site, cron.uid, cron.name, job.payload or {})
            except InvalidCron as exc:
                out = Outcome(Status.FAILED, error=f"InvalidCron: {exc}")
            else:
                out = yield RunRequest(site, job, True)
            if self._retried(job, out):
                # Still one firing: the same job (site, cron, time) runs again later,
                # and the cron's next firing is queued when this one ends.
                tracing.run_ended(span, "retried", out.exc or out.error)
                return job.refresh()
            status, message, log = firing_end_of(out, cron.name)
            if (job.attempts or 1) > 1:
                log = (log[0], [*log[1], f"after {job.attempts} attempts"])
        # "all": the next firing follows this one (or, if this one was missed, the first
        # still within the grace); else the next time is counted from now.
        base = manager.next_base(job, start, missed)
        tracing.run_ended(span, status, message if status != Status.SUCCESS else None)
        self.finish(job, status, message, progress=100 if status == Status.SUCCESS else None,
                    log=log, log_date=start, cron=cron, base=base, version=version,
                    missed=skipped is not None and missed and crontab_on and cron.activated)
        return job

    # -- progress ---------------------------------------------------------------------

    def progress(self, job: Job, progress: int | None = None, text: str | None = None) -> None:
        fields: dict[str, Any] = {"heartbeat": self.kit.clock.now()}
        if progress is not None:
            fields["progress"] = progress
        if text is not None:
            fields["status_text"] = text
        self.kit.store.update_job(job.id, **fields)
        notify(JobProgressEvent(site=job.site, job=job, progress=job.progress, text=text))

    # -- retried ----------------------------------------------------------------------

    def _retry_if_allowed(self, job: Job, why: str, now: datetime | None = None,
                          delay: float | None = None, asked: bool = False) -> bool:
        """Retry ``job`` if its runner allows another attempt: ``retries`` of them (a
        runner that raised cronkit.Retry, ``asked``, gets Celery's default of 3 when
        its ``retries`` is 0)."""
        factory = runner_factory(job.site, job.type)
        allowed = getattr(factory, "retries", 0) or 0
        if asked and not allowed:
            allowed = RETRY_ASKED_DEFAULT
        if (job.attempts or 1) > allowed:
            return False
        return self.retry(job, why, delay=delay, now=now)

    def _retried(self, job: Job, out: Outcome) -> bool:
        """Whether the failed run ``out`` of ``job`` is retried: it raised cronkit.Retry,
        or an exception its runner's ``retry_on`` names (any exception when it names
        none), and attempts are left."""
        if out.status != Status.FAILED or out.unknown or job._ended is not None \
                or self._interrupted(job):
            return False
        if isinstance(out.exc, Retry):
            return self._retry_if_allowed(job, out.exc.reason, delay=out.exc.delay, asked=True)
        retry_on = getattr(runner_factory(job.site, job.type), "retry_on", None)
        if retry_on and not isinstance(out.exc, tuple(retry_on)):
            return False
        return self._retry_if_allowed(job, out.error or "failed")

    def retry(self, job: Job | dict, why: str, delay: float | None = None,
              now: datetime | None = None) -> bool:
        job = self._job(job)
        now = now or self.kit.clock.now()
        attempt = job.attempts or 1
        if delay is None:
            factory = runner_factory(job.site, job.type)
            delay = float(getattr(factory, "retry_backoff", 10.0)) * 2 ** (attempt - 1)
        run_after = now + timedelta(seconds=delay)
        text = f"attempt {attempt} failed: {why}"
        if not self.kit.store.requeue_job(job.id, run_after, text, attempt=job.attempts):
            return False
        self.kit.store.add_history(job.id, now, f"{text}; retry in {delay:g} s", "retry")
        job.status, job.run_after, job.message = Status.PENDING, run_after, text
        notify(JobRetriedEvent(site=job.site, job=job, attempt=attempt, run_after=run_after,
                               reason=why, timestamp=now))
        if logs.jobs_log.isEnabledFor(logging.INFO):
            logs.retried(job, attempt, why, run_after, delay)
        if self.metrics is not None:
            self.metrics.retried(job)
        self.kit.wake()
        return True

    # -- finished ---------------------------------------------------------------------

    def finish(self, job: Job | dict, status: Status | str, message: str | None = None,
               progress: int | None = None, log: LogEntry | None = None,
               now: datetime | None = None, *, log_date: datetime | None = None,
               cron: Cron | None = None, base: datetime | None = None,
               version: int | None = None, result: Any = None,
               missed: bool = False) -> str | None:
        self.finishing += 1
        try:
            return self._finish(self._job(job), Status(status), message, progress, log,
                                now or self.kit.clock.now(), log_date, cron, base, version,
                                result, missed)
        finally:
            self.finishing -= 1
            if self.exit_after_finish and not self.finishing:
                os._exit(1)

    def _finish(self, job: Job, status: Status, message: str | None, progress: int | None,
                log: LogEntry | None, now: datetime, log_date: datetime | None,
                cron: Cron | None, base: datetime | None, version: int | None,
                result: Any = None, missed: bool = False) -> str | None:
        site, store = job.site, self.kit.store
        if self._interrupted(job) and not job._debug:
            return self._requeue_interrupted(job, now)
        note, not_run = None, int(missed)   # firings not run: this one if missed, and those between
        if message is not None:
            message = storable_text(message)
        if job.cron_uid is not None:
            cron = cron or job.cron or load_cron(site, job.cron_uid)[0]
            # Queued while this firing still runs: at no instant has the cron neither a
            # running nor a pending job, or another worker's restore or register would
            # queue a firing of its own and those in between would be lost.
            if cron is not None:
                if base is None:      # ended from outside its run: reaped, timed out, killed
                    base = job.fire_at if cron.misfire == "all" and job.fire_at else now
                if (site.cron_manager(cron).reschedule(base, version=version)
                        and job.fire_at is not None and base > job.fire_at):
                    # Counted from later than this firing: those due between do not run.
                    between, note = missed_firings(cron, job.fire_at, base)
                    not_run += between
        final = store.finish_job(job.id, status, now, message, progress=progress,
                                 attempt=job.attempts, result=result)
        if final is None:      # ended already, or another attempt owns the job
            job.refresh()
            return None
        job.status, job.finished_at = Status(final), now
        if message is not None:
            job.message = message
        if progress is not None and final == Status.SUCCESS:
            job.progress = progress
        if result is not None:
            job.result = result
        entry = log or log_of(job.status, message)
        if note is not None:
            entry = (entry[0], [*entry[1], note])
        self._ended(job, cron, entry, log_date or now, now, missed=not_run)
        return final

    def _ended(self, job: Job, cron: Cron | None, log: LogEntry, date: datetime,
               now: datetime, missed: int = 0) -> None:
        """What follows an end the caller wrote at ``now``: the firing's Log (dated
        ``date``) and event (``missed``: the firings not run it records), then
        JobFinishedEvent."""
        site = job.site
        if cron is not None:
            entry = Log(date, log[0], log[1])
            entry.id, version = self.kit.store.add_log(
                site.name, cron.uid, entry.to_dict() | {"date": date}, cron.logs_limit)
            site.log_added(cron.uid, entry, version)
            notify(FinishedCronJobEvent(site=site, cron=cron, log=entry, job_id=job.id,
                                        timestamp=now, missed=missed))
            if self.metrics is not None:
                self.metrics.fired(site.name, cron.uid, entry.status, missed)
            if logs.crons_log.isEnabledFor(logging.INFO):
                logs.cron_logged(site.name, cron, entry, job.id)
        if _listened(site, JobFinishedEvent):
            notify(JobFinishedEvent(site=site, job=job, timestamp=now))
        if logs.jobs_log.isEnabledFor(logging.INFO):
            logs.finished(job, now)
        if self.metrics is not None:
            self.metrics.finished(job)
        if self._may_wait_on(job):
            self.continue_after(site, [job.id], now)

    # -- continuations ----------------------------------------------------------------

    def _may_wait_on(self, job: Job) -> bool:
        """Whether a continuation may wait on ``job``: the store is asked at most once a
        second (the reaper's sweep catches what that misses); a kit that queued one
        itself asks at once."""
        tick = time.monotonic()
        if self._waiting_seen is None or tick - self._waiting_seen[0] > 1.0:
            self._waiting_seen = (tick, bool(self.kit.store.continuations(waiting=True)))
        return self._waiting_seen[1]

    def continue_after(self, site: Site | None, ended: list[int] | None,
                       now: datetime | None = None) -> None:
        """Release or cancel the waiting continuations of the jobs ``ended`` (of every
        job when None, the reaper's sweep): one whose jobs have all succeeded is due
        now; one of whose jobs failed, was canceled or is gone ends CANCELED naming
        it (and so, in turn, do its own continuations)."""
        store = self.kit.store
        now = now or self.kit.clock.now()
        rows = store.continuations(waiting=True)
        self._waiting_seen = (time.monotonic(), bool(rows))
        for row in rows:
            if ended is not None and not set(row["after_ids"]) & set(ended):
                continue
            statuses = {}
            for job_id in row["after_ids"]:
                try:
                    statuses[job_id] = store.get_job(job_id)["status"]
                except NoSuchJob:
                    statuses[job_id] = "deleted"
            bad = next(((i, s) for i, s in statuses.items()
                        if s in ("failed", "canceled", "deleted")), None)
            target = site if site is not None and site.name == row["site"] \
                else self.kit.site(row["site"])
            if bad is not None:
                if store.cancel_pending(row["id"], now):
                    text = f"not run: job {bad[0]}, which it runs after, ended {bad[1]}"
                    store.update_job(row["id"], message=text, status_text="")
                    job = Job(target, store.get_job(row["id"]))
                    self._ended(job, None, log_of(Status.CANCELED, text), now, now)
            elif all(s == "success" for s in statuses.values()):
                store.update_job(row["id"], run_after=now, status_text="")
                self.kit.wake()

    # -- interrupted by a worker's shutdown ---------------------------------------------

    def interrupt(self, job_ids: Iterable[int],
                  tell: Callable[[int], None] | None = None) -> list[int]:
        """A draining worker stops the runs of ``job_ids``: each still RUNNING is
        remembered with its attempt, ``tell(job_id)`` is called (the processes
        executor tells the job's child first), then its canceled flag is set, which its
        runner's cancel check reads. Its end, whatever it is, then puts the job back to
        PENDING (``_requeue_interrupted``). A job whose cancel a user asked already is
        left to end CANCELED. Return the ids interrupted."""
        store, now, done = self.kit.store, self.kit.clock.now(), []
        for job_id in job_ids:
            try:
                row = store.get_job(job_id)
            except NoSuchJob:
                continue
            if row["status"] != Status.RUNNING or row["canceled"]:
                continue
            self.interrupted[job_id] = row["attempts"]
            if tell is not None:
                tell(job_id)
            store.cancel_job(job_id, now)
            done.append(job_id)
        return done

    def _interrupted(self, job: Job) -> bool:
        """Whether this run of ``job`` (its attempt) is one a draining worker stopped."""
        return bool(self.interrupted) and self.interrupted.get(job.id) == job.attempts

    def _requeue_interrupted(self, job: Job, now: datetime) -> str | None:
        """The end of a run its worker's shutdown interrupted: the job goes back to
        PENDING, due now, to run again (elsewhere), its attempts kept and its canceled
        flag cleared, with a history record; JobRetriedEvent. Only while that attempt
        still owns the job: a later end of the same attempt changes nothing. A cron
        firing stays the same row (one firing, run once). Return "pending" or None."""
        store, attempt = self.kit.store, self.interrupted[job.id]
        try:
            row = store.get_job(job.id)
        except NoSuchJob:
            return None
        if row["status"] != Status.RUNNING or row["attempts"] != attempt:
            return None
        why = "interrupted by the worker's shutdown"
        store.update_job(job.id, canceled=False)
        if not store.requeue_job(job.id, now, why, attempt=attempt):
            return None
        store.add_history(job.id, now, f"attempt {attempt} {why}; queued again", "retry")
        job.status, job.run_after, job.message = Status.PENDING, now, why
        notify(JobRetriedEvent(site=job.site, job=job, attempt=attempt, run_after=now,
                               reason=why, timestamp=now))
        if logs.jobs_log.isEnabledFor(logging.INFO):
            logs.retried(job, attempt, why, now, 0.0)
        if self.metrics is not None:
            self.metrics.retried(job)
        self.kit.wake()
        return Status.PENDING.value

    # -- canceled ---------------------------------------------------------------------

    def cancel(self, site: Site, job_id: int, force: bool = False) -> str:
        store, now = self.kit.store, self.kit.clock.now()
        status: str
        if store.cancel_pending(job_id, now):      # it never ran: ended here, once
            status = Status.CANCELED
            job = Job(site, store.get_job(job_id))
            cron = load_cron(site, job.cron_uid)[0] if job.cron_uid is not None else None
            if cron is not None:
                base = max(now, job.fire_at) if job.fire_at is not None else None
                site.cron_manager(cron).reschedule(base)
            self._ended(job, cron, (LogStatus.NOTRUN, ["canceled before it ran"]), now, now)
            return status
        status = store.cancel_job(job_id, now)    # running: its flag; finished: as it is
        if force and status == Status.RUNNING:
            self.kill(Job(site, store.get_job(job_id)))
        return status

    def kill(self, job: Job) -> bool:
        """Kill the process running ``job`` if it runs on this host in a process of its
        own, and end it CANCELED; a thread cannot be killed (it sees ``canceled``)."""
        name, _, worker_pid = (job.worker or "").rpartition(":")
        if (name != socket.gethostname() or not job.pid or job.pid == os.getpid()
                or str(job.pid) == worker_pid):
            return False
        kill_group(job.pid)
        self.finish(job, Status.CANCELED, "canceled (killed)")
        return True

    # -- lost -------------------------------------------------------------------------

    def reap(self, now: datetime | None = None) -> list[int]:
        kit = self.kit
        now = now or kit.clock.now()
        stale = {r["id"]: r for r in kit.store.stale_jobs(now - timedelta(seconds=kit.error_timeout))}
        host = socket.gethostname()
        for row in kit.store.running_jobs():
            name, _, pid = (row.get("worker") or "").rpartition(":")
            if name == host and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                stale[row["id"]] = row
        for row in stale.values():
            if self._process_alive(row, host):
                continue      # no heartbeat, but its own process runs: not lost
            job = self._job(row)
            if self._retry_if_allowed(job, "worker lost", now):   # a firing too: the same one
                continue
            self.finish(job, Status.FAILED, "worker lost", now=now)
        self.continue_after(None, None, now)     # a continuation another process missed
        return [job_id for job_id, row in stale.items() if not self._process_alive(row, host)]

    @staticmethod
    def _process_alive(row: dict, host: str) -> bool:
        """Whether the job runs in a process of its own on this host that still lives
        (the processes executor's child, or an orphan of a killed worker)."""
        name, _, worker_pid = (row.get("worker") or "").rpartition(":")
        pid = row.get("pid")
        return bool(name == host and pid and str(pid) != worker_pid and pid != os.getpid()
                    and _alive(pid))
