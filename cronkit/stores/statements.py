"""The statements every job goes through (insert, claim, finish, requeue, the cancel
check, the next due time), built once per store rather than on every call.

Each optional condition is a variant of its own (``finish[only_running, by_attempt]``)
rather than a parameter tested in SQL, so the common statement stays the one it was.
On SQLite the same statements are also compiled once for the hot path.

Every claim skips the jobs of a paused site or type inside its own statement (a probe
of ``cronkit_pauses``' primary key per candidate, nothing when no pause exists): a
pause holds from its commit on, in every process, with no cache to go stale. A claim
with limits uses ``claim_candidates``, ``claim_ids`` and the counts (see
``JobQueries.claim``); on SQLite every claim is ``claim_due`` then ``claim_ids`` in one
write transaction, so that its cost stays flat however long the queue.

Leases (claim-ahead): a PENDING job with a ``worker`` is held by that worker until its
``heartbeat`` (the lease's expiry); no claim takes it meanwhile, and the worker starts
it at its due time with ``start_leased`` (only if still PENDING, still its own, not
paused: a job canceled while leased never starts). An expired lease is no lease.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .hotpath import Statement
from .schema import UTCDateTime, insert, jobs, pauses


@dataclass
class JobStatements:
    claim: Any
    claim_due: Any           # ids of the due claimable jobs in claim order (SQLite)
    claim_candidates: Any    # (id, type) of due claimable jobs, some types left out
    claim_ids: Any           # claims the jobs of those ids
    running_by_type: Any     # type -> RUNNING jobs, for the types given
    started_since: Any       # jobs of a type started after a time
    insert_job: Any
    insert_ignore: Any
    finish: dict[tuple[bool, bool], Any]    # (only_running, by_attempt) -> UPDATE
    requeue: dict[bool, Any]                # by_attempt -> UPDATE
    is_canceled: Any
    next_due: Any
    leasable: Any            # ids of plain jobs due within a horizon, in claim order
    lease_ids: Any           # leases the jobs of those ids
    start_leased: Any        # starts the jobs of those ids the worker holds
    renew_leases: Any        # extends the leases of those ids the worker holds
    release_leases: Any      # gives back the leases of those ids the worker holds


@dataclass
class HotStatements:
    """The SQLite hot path's compiled forms of JobStatements."""

    insert: Statement
    claim: Statement
    claim_due: Statement
    claim_ids: Statement
    finish: dict[tuple[bool, bool], Statement]
    is_canceled: Statement
    next_due: Statement
    leasable: Statement
    lease_ids: Statement
    start_leased: Statement
    renew_leases: Statement
    release_leases: Statement


def _unleased(now: Any) -> Any:
    """A PENDING job no worker holds: one with a ``worker`` is leased (claimed ahead)
    by it until its ``heartbeat``; an expired lease is no lease."""
    return sa.or_(jobs.c.worker.is_(None), jobs.c.heartbeat.is_(None), jobs.c.heartbeat < now)


def _not_paused() -> Any:
    return ~sa.exists().where(pauses.c.site == jobs.c.site,
                              sa.or_(pauses.c.type == "", pauses.c.type == jobs.c.type))


def _by_row(column: Any, dialect: str) -> Any:
    """``column`` kept out of SQLite's index choice (``+ 0``): a SELECT of claimable jobs
    then walks the claim-order index and stops at its LIMIT instead of sorting every
    job the condition on ``column`` finds."""
    return sa.type_coerce(column, sa.BigInteger) + 0 if dialect == "sqlite" else column


def _status_is(status: str) -> Any:
    """The job's status is ``status``, tested row by row: a statement on ``id IN
    (...)`` then finds its rows by the primary key, never by scanning every job of that
    status (SQLite picks the status index otherwise, and the queue's length becomes its
    cost)."""
    return sa.func.coalesce(jobs.c.status, "") == status


def _claimable(now: Any, dialect: str = "") -> list[Any]:
    """The conditions of a job a claim may take at ``now``: due, PENDING, not leased by
    a worker, of no paused site or type, and not a cron job whose cron runs or has an
    earlier due job."""
    other = jobs.alias("other")
    busy = sa.exists().where(other.c.site == jobs.c.site, other.c.cron_uid == jobs.c.cron_uid,
                             other.c.status == "running")
    # Of two due jobs of one cron (a forced run beside its firing), only the first in
    # claim order may be taken: one claim must not start a cron twice at once.
    before = jobs.alias("before")
    queued_before = sa.exists().where(
        before.c.site == jobs.c.site, before.c.cron_uid == jobs.c.cron_uid,
        before.c.status == "pending", before.c.run_after <= now,
        sa.or_(before.c.priority > jobs.c.priority,
               sa.and_(before.c.priority == jobs.c.priority, sa.or_(
                   before.c.run_after < jobs.c.run_after,
                   sa.and_(before.c.run_after == jobs.c.run_after, before.c.id < jobs.c.id)))))
    return [jobs.c.status == "pending", _by_row(jobs.c.run_after, dialect) <= now,
            _unleased(now), _not_paused(),
            sa.or_(jobs.c.cron_uid.is_(None), ~(busy | queued_before))]


_CLAIM_ORDER = (jobs.c.priority.desc(), jobs.c.run_after, jobs.c.id)


def _claimed(now: Any) -> dict[str, Any]:
    """What a claim writes in each job it takes."""
    return dict(status="running", started_at=now, heartbeat=now, worker=sa.bindparam("worker"),
                pid=sa.bindparam("pid"), attempts=jobs.c.attempts + 1, progress=0)


def _claim(dialect: str) -> Any:
    now = sa.bindparam("now", type_=UTCDateTime())
    due = sa.select(jobs.c.id).where(*_claimable(now)).order_by(*_CLAIM_ORDER) \
        .limit(sa.bindparam("lim"))
    if dialect == "postgresql":
        due = due.with_for_update(skip_locked=True, of=jobs)
    return jobs.update().where(jobs.c.id.in_(due.scalar_subquery()),
                               jobs.c.status == "pending").values(
        **_claimed(now)).returning(*jobs.c)


def _claim_due() -> Any:
    """SQLite's claim, first half: the ids to claim, found by walking the claim-order
    index (the cost of a claim does not grow with the queue); ``claim_ids`` takes them
    in the same write transaction."""
    now = sa.bindparam("now", type_=UTCDateTime())
    return sa.select(jobs.c.id).where(*_claimable(now, "sqlite")).order_by(*_CLAIM_ORDER) \
        .limit(sa.bindparam("lim"))


def _leasable(dialect: str) -> Any:
    """Plain jobs (no cron, no limited type) due after ``now`` and by ``until``, unleased
    and not paused, in claim order: what a worker may claim ahead."""
    now = sa.bindparam("now", type_=UTCDateTime())
    until = sa.bindparam("until", type_=UTCDateTime())
    run_after = _by_row(jobs.c.run_after, dialect)
    found = sa.select(jobs.c.id).where(
        jobs.c.status == "pending", run_after > now, run_after <= until, _unleased(now),
        jobs.c.cron_uid.is_(None), _not_paused(),
        jobs.c.type.not_in(sa.bindparam("limited", expanding=True)),
    ).order_by(*_CLAIM_ORDER).limit(sa.bindparam("lim"))
    if dialect == "postgresql":
        found = found.with_for_update(skip_locked=True, of=jobs)
    return found


def _leases() -> tuple[Any, Any, Any, Any]:
    """(lease_ids, start_leased, renew_leases, release_leases): each on the ids given,
    of PENDING jobs; the last three only of those the worker ``holder`` holds."""
    ids = jobs.c.id.in_(sa.bindparam("ids", expanding=True))
    held = sa.and_(ids, _status_is("pending"), jobs.c.worker == sa.bindparam("holder"))
    expires = sa.bindparam("expires", type_=UTCDateTime())
    lease = jobs.update().where(ids, _status_is("pending")).values(
        worker=sa.bindparam("worker"), pid=sa.bindparam("pid"), heartbeat=expires,
    ).returning(*jobs.c)
    now = sa.bindparam("now", type_=UTCDateTime())
    start = jobs.update().where(held, _not_paused()).values(**_claimed(now)) \
        .returning(*jobs.c)
    renew = jobs.update().where(held).values(heartbeat=expires).returning(jobs.c.id)
    release = jobs.update().where(held).values(worker=sa.null(), pid=sa.null(),
                                               heartbeat=sa.null())
    return lease, start, renew, release


def _claim_candidates(dialect: str) -> Any:
    now = sa.bindparam("now", type_=UTCDateTime())
    found = sa.select(jobs.c.id, jobs.c.type).where(
        *_claimable(now, dialect), jobs.c.type.not_in(sa.bindparam("blocked", expanding=True)),
    ).order_by(*_CLAIM_ORDER).limit(sa.bindparam("lim"))
    if dialect == "postgresql":
        found = found.with_for_update(skip_locked=True, of=jobs)
    return found


def _claim_ids() -> Any:
    now = sa.bindparam("now", type_=UTCDateTime())
    return jobs.update().where(jobs.c.id.in_(sa.bindparam("ids", expanding=True)),
                               _status_is("pending")).values(
        **_claimed(now)).returning(*jobs.c)


def _finish() -> dict[tuple[bool, bool], Any]:
    now = sa.bindparam("now", type_=UTCDateTime())
    status = sa.bindparam("status", type_=sa.String)
    turned = sa.and_(status == "success", jobs.c.canceled.is_(True))   # asked to cancel
    new_status = sa.case((turned, "canceled"), else_=status)
    finish = jobs.update().where(jobs.c.id == sa.bindparam("job_id")).values(
        status=new_status, finished_at=now, heartbeat=now,
        message=sa.func.coalesce(sa.bindparam("message", type_=sa.Text), jobs.c.message),
        # a run that ends canceled keeps the progress it reached (never 100%)
        progress=sa.case((turned, jobs.c.progress), else_=sa.func.coalesce(
            sa.bindparam("progress", type_=sa.Integer), jobs.c.progress)),
        result=sa.func.coalesce(sa.bindparam("result", type_=sa.Text), jobs.c.result),
    ).returning(jobs.c.status)
    running = jobs.c.status == "running"
    same_attempt = jobs.c.attempts == sa.bindparam("attempt", type_=sa.Integer)
    return {(False, False): finish, (True, False): finish.where(running),
            (False, True): finish.where(same_attempt),
            (True, True): finish.where(running, same_attempt)}


def _requeue() -> dict[bool, Any]:
    requeue = jobs.update().where(
        jobs.c.id == sa.bindparam("job_id"), jobs.c.status == "running").values(
        status="pending", run_after=sa.bindparam("run_at", type_=UTCDateTime()),
        message=sa.bindparam("why", type_=sa.Text), worker=None, pid=None, heartbeat=None)
    same_attempt = jobs.c.attempts == sa.bindparam("attempt", type_=sa.Integer)
    return {False: requeue, True: requeue.where(same_attempt)}


def job_statements(dialect: str) -> JobStatements:
    """Build the job statements of a store on ``dialect`` ("sqlite" or "postgresql")."""
    stmt = insert(dialect, jobs)
    lease, start, renew, release = _leases()
    return JobStatements(
        claim=_claim(dialect),
        claim_due=_claim_due(),
        claim_candidates=_claim_candidates(dialect),
        claim_ids=_claim_ids(),
        running_by_type=sa.select(jobs.c.type, sa.func.count()).where(
            jobs.c.status == "running", jobs.c.type.in_(sa.bindparam("types", expanding=True)))
        .group_by(jobs.c.type),
        started_since=sa.select(sa.func.count()).select_from(jobs).where(
            jobs.c.type == sa.bindparam("type"),
            jobs.c.started_at > sa.bindparam("since", type_=UTCDateTime())),
        insert_job=stmt.returning(jobs.c.id, sort_by_parameter_order=True),
        insert_ignore=stmt.on_conflict_do_nothing().returning(jobs.c.id),
        finish=_finish(),
        requeue=_requeue(),
        is_canceled=sa.select(jobs.c.canceled).where(jobs.c.id == sa.bindparam("job_id")),
        next_due=sa.select(sa.func.min(jobs.c.run_after)).where(jobs.c.status == "pending"),
        leasable=_leasable(dialect),
        lease_ids=lease,
        start_leased=start,
        renew_leases=renew,
        release_leases=release,
    )


def hot_statements(stmts: JobStatements, dialect: sa.Dialect) -> HotStatements:
    """Compile ``stmts`` once for plain sqlite3 connections."""
    return HotStatements(
        insert=Statement(stmts.insert_job, dialect,
                         column_keys=[c.name for c in jobs.columns if c.name != "id"]),
        claim=Statement(stmts.claim, dialect),
        claim_due=Statement(stmts.claim_due, dialect),
        claim_ids=Statement(stmts.claim_ids, dialect),
        finish={k: Statement(v, dialect) for k, v in stmts.finish.items()},
        is_canceled=Statement(stmts.is_canceled, dialect),
        next_due=Statement(stmts.next_due, dialect),
        leasable=Statement(stmts.leasable, dialect),
        lease_ids=Statement(stmts.lease_ids, dialect),
        start_leased=Statement(stmts.start_leased, dialect),
        renew_leases=Statement(stmts.renew_leases, dialect),
        release_leases=Statement(stmts.release_leases, dialect),
    )
