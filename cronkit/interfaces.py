"""The contracts of cronkit: the table of contents of the package.

Every component, backend and value object implements one of these. Nothing else
lives here.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

# -- time ---------------------------------------------------------------------


class IClock(Interface):
    """Where every reading of the time comes from."""

    def now():
        """Return the current instant, a timezone-aware datetime in UTC."""

    def add_listener(fn):
        """Call ``fn()`` whenever the clock jumps (a fake clock); may do nothing."""


# -- value objects ------------------------------------------------------------


class ILog(Interface):
    """One run of a cron: when, how it went, what it said."""

    date = Attribute("Aware datetime of the run (UTC).")
    status = Attribute("A LogStatus: OK, WARN, FAILURE or NOTRUN.")
    messages = Attribute("List of str.")

    def dump():
        """Return a JSON-compatible dict."""


class ICron(Interface):
    """A named, periodic firing of a runner."""

    uid = Attribute("Unique id within its crontab (str).")
    name = Attribute("Name of the runner to call.")
    periodicity = Attribute("Cron expression as written: croniter's language (5 fields, 6 "
                            "with seconds last, 7 with a year last, @alias; H and R).")
    seconds_first = Attribute("Read 6 or 7 fields with the seconds first (Quartz, cronsim).")
    expanded = Attribute("What the engine reads: the periodicity with H and R drawn once "
                         "(hashed from site and uid) and its fields in cronkit's order.")
    timezone = Attribute("IANA name, or None for the site's time zone.")
    activated = Attribute("bool")
    environ = Attribute("JSON object handed to the runner.")
    logs_limit = Attribute("How many logs are kept, 1..25.")
    user = Attribute("Who it runs as (stored and handed to the runner).")
    misfire = Attribute('"once", "all" or "skip".')
    misfire_grace = Attribute("Seconds of lateness after which a firing is skipped, or None.")
    logs = Attribute("Most recent first, capped at logs_limit.")
    crontab = Attribute("The crontab holding this cron, or None.")

    def next_after(instant):
        """Return the next firing strictly after the aware datetime ``instant``, or
        None when there is none (a year field has ended)."""

    def previous_before(instant):
        """Return the last firing strictly before the aware datetime ``instant``, or
        None when there is none."""

    def times(start, end, limit=None):
        """Iterate over the firings from ``start`` to ``end``, both included, oldest
        first (at most ``limit``)."""

    def log(status, messages=None, date=None):
        """Record a run; return the Log."""

    def dump():
        """Return a JSON-compatible dict."""

    def similar(other):
        """True when ``other`` has the same definition (logs and crontab aside)."""


class ICrontab(Interface):
    """The ordered collection of a site's crons."""

    crons = Attribute("Ordered mapping uid -> Cron; supports ``del``.")
    activated = Attribute("Global switch: no cron of a deactivated crontab runs.")
    read_only = Attribute("When true, save() raises ReadOnlyCrontab and changes nothing.")

    def add_cron(cron):
        """Add ``cron`` (its crontab becomes this one)."""

    def by(**criteria):
        """Return the list of crons whose attributes equal every criterion."""

    def by_uid(uid):
        """Return the cron of that uid; raise NoSuchCron."""

    def save():
        """Persist what changed; emits ModifiedCrontabEvent (which syncs the queue)."""

    def dump():
        """Return a JSON-compatible dict."""


class IJob(Interface):
    """One unit of work in the queue, and the runner's handle on it."""

    id = Attribute("Store-assigned integer id.")
    type = Attribute("Runner name.")
    status = Attribute("A Status.")
    payload = Attribute("JSON object.")
    progress = Attribute("Integer percent 0..100.")
    status_text = Attribute("What the job said last (or printed so far).")
    canceled = Attribute("True once a cancel was asked (read from the store).")

    def update(progress=None, text=None):
        """Set the percent complete and/or the status text."""

    def increment_progress(n=1, text=None):
        """Add ``n`` to the percent complete (capped at 100)."""

    def note(comment, status="info"):
        """Add a Job History record."""

    def finish(summary=None):
        """End the job as SUCCESS with an optional summary."""

    def fail(message):
        """End the job as FAILED with ``message``."""


class IJobRunner(Interface):
    """A named adapter (site, job) that does the work."""

    def run():
        """Do the work. Return None (OK), or str / list of str (WARN messages)."""


class ISite(Interface):
    """A named tenant: its registry, crontab and queue."""

    name = Attribute("str")
    registry = Attribute("Local zope.interface Components based on the kit's.")
    crontab = Attribute("The live Crontab of the site.")
    jobs = Attribute("The IQueueManager of the site.")


# -- the five components ------------------------------------------------------


class ICrontabRegistryManager(Interface):
    """Adapter of a site: persists its crontab through the store."""

    def load():
        """Return a new Crontab read from the store."""

    def save(crontab):
        """Write what changed in ``crontab``; raise ReadOnlyCrontab if it is read-only.
        Emits ModifiedCrontabEvent."""

    def save_cron(cron):
        """Write one cron (and its logs); emits ModifiedCrontabEvent."""


class ICrontabManager(Interface):
    """Multi-adapter (site, crontab): keeps the queue in line with the crontab."""

    def synchronize():
        """Make every activated cron of an activated crontab have exactly one pending
        job due at its next time, and every other cron none. Idempotent."""


class ICronManager(Interface):
    """Multi-adapter (site, cron): the queue seen from one cron."""

    def register(begin_after=None, force=False):
        """Queue the cron's next firing after ``begin_after`` (default now) unless one is
        pending. ``force`` replaces the pending job by one due at begin_after or now.
        Return True when a job was queued."""

    def remove():
        """Delete the cron's pending job; return True if there was one."""

    def register_or_remove():
        """register() when the cron and its crontab are activated, else remove()."""

    def run_job(job):
        """The cron job wrapper: run the runner for ``job``, log, reschedule."""


class IQueueManager(Interface):
    """Adapter of a site: its job queue."""

    def get(job_id):
        """Return the Job; raise NoSuchJob."""

    def list(cron=None, status=None, type=None):
        """Return jobs, newest first."""

    def cancel(job_id, force=False):
        """Cancel a job: a pending one never starts, a running one sees ``canceled``."""

    def dependents(job_id):
        """Return the continuations submitted to run after job ``job_id``."""

    def remove(job_id):
        """Delete the job whatever its state; raise NoSuchJob."""

    def is_job_present(cron):
        """True if any job of the cron is pending or running."""

    def is_job_pending(cron):
        """True if the cron has a pending job."""

    def is_job_running(cron):
        """True if the cron has a running job."""

    def is_job_finished(cron):
        """True if the cron has a finished job and none pending or running."""


class IQueueMarker(Interface):
    """Adapter of a site: marks it crontab-aware, so restarts restore its crons."""

    def mark():
        """Record the site as crontab-aware in the store."""

    def is_marked():
        """True if the site is crontab-aware."""


class IJobLifecycle(Interface):
    """The one owner of a job's life (one per kit, ``kit.lifecycle``): every state
    change of a job goes through it, and it sends the job events. For a cron firing's
    end it also writes the Log, queues the next firing and sends FinishedCronJobEvent.
    An end is accepted only from the attempt that owns the job: written, and its events
    sent, exactly once."""

    def queue(site, rows, ignore_duplicates=False):
        """Insert job rows; JobQueuedEvent for each inserted. Return their ids (a
        duplicate firing is skipped if ``ignore_duplicates``, else DuplicateFiring)."""

    def queue_unique(site, row, running=False):
        """Insert ``row`` unless a pending twin (or running, with ``running``) has its
        unique key; return ``(job_id, created)``; JobQueuedEvent when created."""

    def continue_after(site, ended, now=None):
        """Release the waiting continuations of the jobs ``ended`` whose jobs have all
        succeeded (due now), cancel those of which one failed, was canceled or is gone
        (naming it); ``ended`` None sweeps every waiting continuation."""

    def claim(now, limit):
        """Move up to ``limit`` due jobs to RUNNING for this kit's worker; return rows."""

    def start_now(job_id):
        """A manual run: the job (whatever its state) RUNNING here as a new attempt;
        return its row."""

    def execute(row, debug=False):
        """Run a claimed job row to its end here (a firing by DESIGN rules 2 and 3);
        return the Job. With ``debug`` nothing in the store changes."""

    def progress(job, progress=None, text=None):
        """Record a running job's progress and/or status text; JobProgressEvent."""

    def retry(job, why, delay=None):
        """Put the RUNNING attempt ``job`` back to PENDING, due after ``delay`` seconds
        (the runner's backoff when None), with a history record; JobRetriedEvent.
        Return False when the attempt no longer owns the job."""

    def finish(job, status, message=None, progress=None, log=None):
        """End the RUNNING attempt ``job`` (a Job or a row). If this call ends it: a
        firing's Log, next firing and FinishedCronJobEvent, then JobFinishedEvent.
        Return the final status, or None (ended already, or another attempt's)."""

    def cancel(site, job_id, force=False):
        """A pending job ends CANCELED now (a firing is logged NOTRUN, its next one
        queued); a running one sees ``canceled``, or with ``force`` is killed if it
        runs in a process of its own here. Return the status after; raise NoSuchJob."""

    def interrupt(job_ids, tell=None):
        """A draining worker stops the RUNNING jobs of ``job_ids`` (a user's cancel
        already asked excepted): ``tell(job_id)``, then their canceled flag; the end
        their attempt then reports, whatever it is, puts the job back to PENDING, due
        now, with a history record and JobRetriedEvent (a later end of that attempt
        changes nothing). Return the ids interrupted."""

    def reap(now):
        """Fail (or retry) RUNNING jobs whose worker is gone (no heartbeat for
        ``error_timeout`` before ``now``, or a dead worker process of this host) and
        whose own process is gone too. Return the ids handled."""


# -- events -------------------------------------------------------------------


class IEvent(Interface):
    """Something that happened, sent through the registry of the kit that owns it and
    then to the event class's blinker signal. Frozen; built with keyword arguments."""

    timestamp = Attribute("Aware datetime (UTC), read from the kit's clock.")
    site_name = Attribute("Name of the site it happened in, or None.")

    def to_dict():
        """Return the plain values (ids, statuses, texts, ISO dates): JSON-compatible."""


class IModifiedCrontabEvent(IEvent):
    """A crontab was saved (``crontab``)."""


class ICrontabSynchronisationEvent(IEvent):
    """The queue of ``site`` must be brought in line with ``crontab``."""


class IServerRestartEvent(IEvent):
    """A worker or server started: the cron jobs of ``site`` come back."""


class IStartedCronJobEvent(IEvent):
    """A cron firing (``cron_uid``, ``job_id``) is about to run."""


class IFinishedCronJobEvent(IEvent):
    """A cron firing ended; ``log`` (``status``, ``messages``) says how; ``missed``:
    how many firings that Log records as not run."""


class IJobQueuedEvent(IEvent):
    """A job (``job_id``, ``type``) entered the queue."""


class IJobStartedEvent(IEvent):
    """A job moved to RUNNING and its runner is about to run (``attempt``)."""


class IJobProgressEvent(IEvent):
    """A running job reported ``progress`` and/or ``text``."""


class IJobRetriedEvent(IEvent):
    """A job's attempt failed or was lost; it is PENDING again, due at ``run_after``."""


class IJobFinishedEvent(IEvent):
    """A job ended: ``status`` is SUCCESS, FAILED or CANCELED, ``message`` says why."""


# -- backends -----------------------------------------------------------------


class ICrontabStore(Interface):
    """Where sites, their crontabs and the crons' logs live.

    The typed form of every store contract is ``cronkit.stores.base``. Every method
    raises StoreError when the database fails or refuses the change. "Repeatable":
    safe to repeat after a lost connection (twice leaves the same rows and gives the
    same answer as once). "Unsafe": not, so a store that retries must make it
    idempotent or raise StoreError (``cronkit.stores.base.REPEATABLE`` / ``UNSAFE``).
    Datetimes are aware; a naive one raises StoreError. A read-only store (see
    IStore.read_only) refuses every operation that writes (``cronkit.stores.base.WRITES``)
    with ReadOnlyStore, and changes nothing.
    """

    def ensure_site(site):
        """Make the site (str) known, unmarked, activated, at version 0, unless it is.
        Return None. Repeatable."""

    def sites():
        """Return every known site as a dict {name, marked, activated, version}, sorted
        by name. Repeatable."""

    def mark_site(site, marked=True):
        """Mark (or unmark) the site crontab-aware, making it known; its crontab and
        version do not change. Return None. Repeatable."""

    def marked_sites():
        """Return the names (list of str) of the crontab-aware sites, sorted. Repeatable."""

    def crontab_version(site):
        """Return an int that grows with every change of the site's crontab or its logs;
        0 for an unknown site. Repeatable."""

    def load_crontab(site, uid=None):
        """Return the dict {version, activated, crons} of the site: crons in position
        order, each a dict (uid, name, periodicity, timezone, activated, environ,
        logs_limit, user, misfire, misfire_grace, position) with its ``logs`` newest
        first ({id, date, status, messages}); only the cron ``uid`` when given. An
        unknown site: version 0, activated, no crons. Repeatable."""

    def save_crontab(site, activated, upserts, deletes, new_logs, deleted_logs):
        """Apply one crontab change in one transaction: ``activated`` (bool, or None to
        leave it), ``upserts`` (cron dicts with position, inserted or replaced by uid),
        ``deletes`` (uids: the crons and their logs go), ``new_logs`` ((uid, {date,
        status, messages}) pairs, oldest first; each cron then keeps its newest
        logs_limit), ``deleted_logs`` (log ids). Return (new version, list of the new
        logs' ids in order). Unsafe: new logs would be added twice."""

    def add_log(site, cron_uid, entry, limit):
        """Append ``entry`` ({date, status, messages}) to the cron's logs and keep its
        newest ``limit``; return (log id, new crontab version). Unsafe: twice is two
        logs."""


class IJobStore(Interface):
    """Where jobs, their claims and their history live (see ICrontabStore for errors
    and the Repeatable / Unsafe marking). A job row is a dict of every column of
    ``cronkit_jobs``, its payload a dict."""

    def add_jobs(rows, ignore_duplicates=False):
        """Insert job rows in one transaction; return their ids (list of int) in order.
        A second job for one cron firing (site, cron_uid, fire_at) raises DuplicateFiring
        and inserts nothing, or with ``ignore_duplicates`` is skipped (no id in the
        result). Unsafe: a plain job would be inserted twice, a firing's id lost."""

    def add_unique_job(row, running=False):
        """Insert ``row`` unless a PENDING job (or RUNNING, with ``running``) has its
        ``unique_key``; return (id, created). Calls at once with one key make one job. Unsafe: a retry answers
        created=False, or makes a second job once the first was claimed."""

    def get_job(job_id):
        """Return the job row; raise NoSuchJob. Repeatable."""

    def list_jobs(site=None, cron_uid=None, status=None, type=None, limit=None, offset=0,
                  oldest_first=False, search=None):
        """Return the job rows matching every filter given (``status``: a str or several;
        ``search``: text in the name, type, payload or message, case-insensitive, no
        wildcard), newest first (oldest first with ``oldest_first``), ``limit`` of them
        from ``offset``. Repeatable."""

    def count_jobs(site=None, cron_uid=None, status=None, type=None, search=None):
        """Return how many jobs (int) match every filter given. Repeatable."""

    def cron_job_statuses(site, cron_uid):
        """Return the set of statuses (str) the cron's jobs are in. Repeatable."""

    def pending_cron_jobs(site):
        """Return uid -> {id, cron_uid, signature, run_after, fire_at} of the site's
        PENDING cron jobs (the oldest, when a cron has several). Repeatable."""

    def running_cron_uids(site):
        """Return the set of uids of the site's crons with a RUNNING job. Repeatable."""

    def pending_and_running_cron_jobs(site):
        """Return (pending_cron_jobs(site), running_cron_uids(site)) read at one instant:
        a cron whose run is ending shows its running job or its next pending one, never
        neither (two separate reads can see neither). Repeatable."""

    def delete_pending_cron_jobs(site, uids):
        """Delete the PENDING jobs of those crons (running and finished ones stay);
        return how many. Unsafe: a retry counts none."""

    def claim(now, limit, worker, pid=None):
        """Atomically move up to ``limit`` due PENDING jobs (run_after <= now) to RUNNING
        for ``worker`` (str) and ``pid``: started_at and heartbeat ``now``, attempts + 1,
        progress 0. Highest priority first, then earliest run_after, then submission
        order; a cron job waits while a job of its cron runs, and one claim takes one
        job per cron. No two claims get the same job. Return the rows in claim order.
        Unsafe: a retry would claim other jobs."""

    def next_due():
        """Return the earliest run_after of a PENDING job, or None. Repeatable."""

    def update_job(job_id, **fields):
        """Set columns of the job (``payload`` a dict); an unknown id changes nothing.
        Return None. Repeatable."""

    def append_text(job_id, text):
        """Append ``text`` to the job's status_text. Return None. Unsafe: twice appends
        twice."""

    def finish_job(job_id, status, now, message=None, progress=None, only_running=True,
                   attempt=None):
        """End the job as ``status`` at ``now`` (finished_at and heartbeat), with
        ``message`` and ``progress`` when given (else kept). With ``only_running`` only
        a RUNNING job changes; with ``attempt`` (int) only one whose attempts equals it,
        so an old attempt's late end never closes a newer attempt. A SUCCESS of a job
        whose cancel was asked ends CANCELED. Return the final status (str), or None
        when nothing changed. Unsafe: a retry answers None."""

    def finish_jobs(ends):
        """End many jobs in one transaction (group commit): each of ``ends`` is a
        mapping of ``finish_job``'s arguments, applied as that call would be. Return
        each final status (None where nothing changed), in order. Unsafe."""

    def lease(now, until, limit, worker, pid, expires, limited=()):
        """Claim ahead: lease to ``worker`` up to ``limit`` PENDING plain jobs (no cron
        job, none of the ``limited`` types, none paused) due after ``now`` and by
        ``until``, until ``expires``: they stay PENDING, with ``worker`` and ``pid`` the
        holder's and ``heartbeat`` the expiry, and no claim takes them meanwhile. Return
        the rows in claim order. Unsafe."""

    def start_leased(job_ids, now, worker, pid):
        """Start (as ``claim`` would) the jobs of ``job_ids`` still PENDING, held by
        ``worker`` and not paused; give back the others it held. Return the started
        rows. A job canceled while leased never starts. Unsafe."""

    def renew_leases(job_ids, worker, expires):
        """Extend the leases ``worker`` holds on ``job_ids`` to ``expires``; return the
        set of ids it still holds. Repeatable."""

    def release_leases(job_ids, worker):
        """Give back the leases ``worker`` holds on ``job_ids``. Repeatable."""

    def cancel_pending(job_id, now):
        """End the job CANCELED at ``now`` (with its canceled flag) if it is PENDING;
        return True if this call ended it (the lifecycle then sends its end's
        events). Unsafe."""

    def cancel_job(job_id, now):
        """Cancel: a PENDING job ends CANCELED at ``now`` (with its canceled flag), a
        RUNNING one gets its canceled flag, a finished one stays as it is. Return the
        status (str) after the call; raise NoSuchJob. Repeatable."""

    def is_canceled(job_id):
        """True once a cancel was asked for the job (False for an unknown id).
        Repeatable."""

    def canceled_among(job_ids):
        """The set of the ids of ``job_ids`` whose cancel was asked (unknown ids are
        not in it), in one read: a worker's jobs started ahead of their due instant
        are checked at that instant. Repeatable."""

    def heartbeat(job_ids, now):
        """Set the heartbeat of those jobs that are RUNNING to ``now``. Return None.
        Repeatable."""

    def stale_jobs(before):
        """Return the RUNNING job rows whose heartbeat is older than ``before``.
        Repeatable."""

    def running_jobs():
        """Return every RUNNING job row. Repeatable."""

    def pause(site, type, now):
        """Pause the site's queue (type None) or its jobs of ``type`` as of ``now``: no
        claim by any worker takes them until resumed; they stay PENDING. Repeatable."""

    def resume(site, type):
        """End that pause; return True if it was paused. Unsafe: a retry answers False."""

    def pauses(site):
        """Return what of the site is paused: None for the whole queue first, then the
        paused types, sorted ([] when nothing is). Repeatable."""

    def paused_sites():
        """Return the names of the sites with a pause (whole or of a type), sorted.
        Repeatable."""

    def count_ends(since, until, step, site=None, type=None):
        """Return the jobs (of ``site`` and ``type`` when given) that ended (SUCCESS,
        FAILED, CANCELED) with ``since <= finished_at < until``, counted per interval of
        ``step`` (a timedelta; ``until - since`` must be a whole number of them, at most
        1000) and per status: a list, one dict per interval in time order, ``{"start":
        datetime, "success": int, "failed": int, "canceled": int}`` (zeros included).
        Counted by the database in one aggregate query, never by reading the rows.
        Raise StoreError for a step that does not divide the span. Repeatable."""

    def job_timings(since, until, edges, site=None, type=None):
        """Return the lateness (``started_at - run_after``) and run duration
        (``finished_at - started_at``) of the jobs (of ``site`` and ``type`` when given)
        that ran (``started_at`` set) and ended with ``since <= finished_at < until``,
        per job type: ``{type: {"count": int, "lateness": D, "duration": D}}`` where D
        is ``{"bins": [int, ...], "mean": float, "max": float}`` in seconds; ``bins``
        has ``len(edges) + 1`` counts: below ``edges[0]``, then from each edge (included)
        to the next, then from the last edge up. ``edges``: ascending seconds (1 to 20
        of them). One aggregate query, never by reading the rows; {} when no job ran.
        Raise StoreError for edges out of order. Repeatable."""

    def continuations(after_id=None, waiting=True):
        """Return the continuation rows (with ``after_ids``) of job ``after_id`` (of any
        job when None), oldest first; only those still waiting (PENDING, run_after
        ``WAITING``) unless ``waiting`` is false. Repeatable."""

    def requeue_job(job_id, run_after, message, attempt=None):
        """Put a RUNNING job (of that ``attempt``, when given) back to PENDING, due at
        ``run_after``, with ``message``; worker, pid and heartbeat are cleared, attempts
        kept. Return True if it changed. Unsafe: a retry answers False."""

    def adopt_job(job_id, attempt, owner, worker, pid, now):
        """Hand a RUNNING job from its claimer ``owner`` to ``worker`` and ``pid``
        (heartbeat ``now``; a remote executor's process), only if it is still that claim
        (``attempt``, ``owner``): a message delivered twice, late, or after a retry
        adopts nothing. Return the row, or None. Unsafe: a retry finds the job no longer
        the owner's."""

    def remove_job(job_id):
        """Delete the job, whatever its state, and its history. Return None; raise
        NoSuchJob. Unsafe: a retry raises NoSuchJob."""

    def delete_jobs(job_ids):
        """Delete those jobs (unknown ids are ignored) and their history; return how
        many. Unsafe: a retry counts none."""

    def cleanup(success_before, all_before):
        """Delete the SUCCESS jobs finished before ``success_before`` and every finished
        job finished before ``all_before`` (None keeps them), with their history;
        return how many. Unsafe: a retry counts none."""

    def add_history(job_id, date, comment, status="info"):
        """Add a Job History record. Return None. Unsafe: twice is two records."""

    def history(job_id):
        """Return the job's history records ({date, status, comment}), oldest first.
        Repeatable."""

    def register_worker(row):
        """Insert a worker's row (id, host, pid, executor, concurrency, state,
        started_at, heartbeat, version, info: a JSON object), or replace the row of its
        id; its stopped_at is cleared. Return None. Repeatable."""

    def worker_heartbeat(worker_id, now, state=None, info=None):
        """Set the worker's heartbeat to ``now``, and its ``state`` (running, paused,
        draining) and ``info`` when given; return whether its row exists (False: it was
        deleted, and the worker registers again). Repeatable."""

    def stop_worker(worker_id, now):
        """Mark the worker stopped at ``now`` (state "stopped", stopped_at, heartbeat);
        return whether its row exists. Repeatable."""

    def list_workers():
        """Return every worker row (``info`` a dict), newest first (by started_at,
        then id). Repeatable."""

    def delete_workers(before):
        """Delete the workers stopped before ``before`` and those whose heartbeat is
        older than ``before`` (lost long ago); return how many. Unsafe: a retry counts
        none."""


class IStore(ICrontabStore, IJobStore):
    """A whole store, built from its URL by ``cronkit.stores.open_store``."""

    url = Attribute("The URL the store was opened with (str).")
    read_only = Attribute(
        "True when the store was opened read-only: with ``mode=ro`` in its URL, "
        "``read_only=True``, or by itself for a SQLite file or folder that cannot be "
        "written. Every read works; every write raises ReadOnlyStore and changes nothing.")

    def schema_version():
        """Return the schema version (int) of the database. Repeatable."""

    def check():
        """Raise StoreGone when the database is no longer the one the store opened (its
        SQLite file deleted, or replaced by another file, since); return None. Cheap (a
        stat), for a worker to call every second or so; a store with no file of its own
        (memory://, PostgreSQL) has nothing to check. Repeatable."""

    def close():
        """Let go of every connection; the store is not used afterwards. No database
        operation."""

    def after_fork():
        """In a forked child (the processes executor): forget, never close, the parent's
        connections; the store opens its own from then on. No database operation."""


class IListeningStore(Interface):
    """A store that wakes idle workers when work arrives (PostgreSQL: LISTEN/NOTIFY on
    ``notify_channel``). Polling stays the fallback: a lost notification costs one poll.
    None of these methods is a retried database operation."""

    notify_channel = Attribute("The channel notifications are sent on (str).")
    ends_channel = Attribute("The channel job ends are notified on, by a store whose "
                             "``notify_ends`` is set (a Celery worker's) (str).")

    def start_listener(callback=None, timeout=10.0, channel=None):
        """Call ``callback()`` whenever a job is queued or requeued, or a crontab saved,
        by any process on this database (once more after every reconnection); with
        ``channel`` the ``ends_channel``, call ``callback(payload)`` whenever jobs
        ended, ``payload`` naming them ("id:attempt", comma-separated; "" after a
        reconnection). Start listening on first use and wait up to ``timeout`` seconds
        for it; return True if listening."""

    def stop_listener(callback=None, channel=None):
        """Forget ``callback`` (of ``channel``); with none given, or none left, stop
        listening."""

    def wait_for_notify(timeout):
        """Sleep until a notification arrives or ``timeout`` seconds pass; return True
        if one did (one that arrived since the previous wait counts)."""


class IExecutor(Interface):
    """Runs claimed jobs somewhere: threads, processes, Celery."""

    capacity = Attribute("How many jobs it runs at once.")

    def start(kit):
        """Get ready to run jobs for ``kit``."""

    def submit(job_row, done):
        """Run the claimed job; call ``done(job_id)`` when it has ended."""

    def running():
        """Return the ids of the jobs it runs now."""

    def shutdown(wait=True):
        """Stop; with ``wait``, let running jobs end first."""
