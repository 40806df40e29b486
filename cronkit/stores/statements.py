"""The statements every job goes through (insert, claim, finish, requeue, the cancel
check, the next due time), built once per store rather than on every call.

Each optional condition is a variant of its own (``finish[only_running, by_attempt]``)
rather than a parameter tested in SQL, so the common statement stays the one it was.
On SQLite the same statements are also compiled once for the hot path.

Every claim skips the jobs of a paused site or type inside its own statement (a probe
of ``cronkit_pauses``' primary key per candidate, nothing when no pause exists): a
pause holds from its commit on, in every process, with no cache to go stale. A claim
with limits uses ``claim_candidates``, ``claim_ids`` and the counts (see
``JobQueries.claim``).
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


@dataclass
class HotStatements:
    """The SQLite hot path's compiled forms of JobStatements."""

    insert: Statement
    claim: Statement
    finish: dict[tuple[bool, bool], Statement]
    is_canceled: Statement
    next_due: Statement


def _claimable(now: Any, dialect: str = "") -> list[Any]:
    """The conditions of a job a claim may take at ``now``: due, PENDING, of no paused
    site or type, and not a cron job whose cron runs or has an earlier due job."""
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
    paused = sa.exists().where(pauses.c.site == jobs.c.site,
                               sa.or_(pauses.c.type == "", pauses.c.type == jobs.c.type))
    # SQLite plans a SELECT of these (not the claim's UPDATE) on the due index, which
    # sorts the whole queue; ``+ 0`` keeps run_after out of its index choice, so it
    # walks the claim-order index and stops at the LIMIT.
    due = (sa.type_coerce(jobs.c.run_after, sa.BigInteger) + 0 if dialect == "sqlite"
           else jobs.c.run_after) <= now
    return [jobs.c.status == "pending", due, ~paused,
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
                               jobs.c.status == "pending").values(
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
    return JobStatements(
        claim=_claim(dialect),
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
    )


def hot_statements(stmts: JobStatements, dialect: sa.Dialect) -> HotStatements:
    """Compile ``stmts`` once for plain sqlite3 connections."""
    return HotStatements(
        insert=Statement(stmts.insert_job, dialect,
                         column_keys=[c.name for c in jobs.columns if c.name != "id"]),
        claim=Statement(stmts.claim, dialect),
        finish={k: Statement(v, dialect) for k, v in stmts.finish.items()},
        is_canceled=Statement(stmts.is_canceled, dialect),
        next_due=Statement(stmts.next_due, dialect),
    )
