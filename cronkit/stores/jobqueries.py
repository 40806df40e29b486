"""The SQL store's jobs: the JobStore half of SQLStore (the queue, claims, ends,
history, retention).

Claims are atomic: on SQLite a claim is one ``BEGIN IMMEDIATE`` write transaction, on
PostgreSQL a ``SELECT ... FOR UPDATE SKIP LOCKED``. The statements every job goes
through run on SQLite's hot path (``hotpath.py``) when the store has one.

Paused queues (``cronkit_pauses``: a site's whole queue, type "", or one type of it)
are skipped by every claim's own statement. Limits (a type's ``max_running`` and
``rate``) are counted inside the claim's transaction; how concurrent claims are kept
from both spending the same room is in ``JobQueries.claim``.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import sqlalchemy as sa

from ..exceptions import NoSuchJob, StoreError
from .base import WAITING, JobRow, JobStore, Statuses
from .bulk import insert_jobs
from .bulk import pending_and_running_cron_jobs as bulk_cron_jobs
from .hotpath import HotPath, from_micros, to_micros
from .schema import (
    chunks,
    claim_order,
    history,
    insert,
    job_row,
    job_values,
    jobs,
    pauses,
    raw_job_row,
)
from .statements import HotStatements, JobStatements

#: The end statuses (the jobs counted by ``count_ends`` and ``job_timings``).
ENDED = ("success", "failed", "canceled")
#: At most so many intervals in one ``count_ends``, edges in one ``job_timings``.
MAX_INTERVALS = 1000
MAX_EDGES = 20


class JobQueries(JobStore):
    """Jobs on SQLAlchemy Core (and SQLite's hot path); mixed into SQLStore, which gives
    the transactions, the prebuilt statements and the hot path."""

    url: str
    dialect: str
    _hot: HotPath | None
    _hot_stmts: HotStatements | None
    _stmts: JobStatements

    @abstractmethod
    def _tx(self, write: bool = True) -> AbstractContextManager[sa.Connection]:
        """One transaction (a write one unless ``write`` is false)."""

    @abstractmethod
    def _lock_unique(self, conn: sa.Connection, key: str) -> None:
        """Serialise unique submissions of one key."""

    @abstractmethod
    def _lock_limits(self, conn: sa.Connection) -> None:
        """Serialise the claims that take jobs of limited types, from here to the end of
        the claim's transaction."""

    def add_jobs(self, rows: Iterable[JobRow], ignore_duplicates: bool = False) -> list[int]:
        if not isinstance(rows, list):     # made as they are inserted: one executemany
            return insert_jobs(self, rows, ignore_duplicates)  # type: ignore[arg-type]
        if not rows:
            return []
        hot = self._hot_stmts
        if len(rows) > 1:     # one executemany (see bulk.py)
            return insert_jobs(self, rows, ignore_duplicates)  # type: ignore[arg-type]
        values = job_values(rows[0])
        if not ignore_duplicates and hot is not None and self._hot is not None:
            return [self._hot.write_one(self.url, hot.insert, values)[0][0]]
        stmt = self._stmts.insert_ignore if ignore_duplicates else self._stmts.insert_job
        with self._tx() as conn:
            res = conn.execute(stmt, values).first()
            return [res[0]] if res else []

    def add_unique_job(self, row: JobRow, running: bool = False) -> tuple[int, bool]:
        statuses = ["pending", "running"] if running else ["pending"]
        with self._tx() as conn:
            self._lock_unique(conn, row["unique_key"])
            found = conn.execute(sa.select(jobs.c.id).where(
                jobs.c.unique_key == row["unique_key"], jobs.c.status.in_(statuses))
                .order_by(jobs.c.id).limit(1)).scalar()
            if found is not None:
                return found, False
            values = job_values(row)
            values.pop("id", None)
            key: Any = conn.execute(jobs.insert().values(**values)).inserted_primary_key
            return int(key[0]), True

    def get_job(self, job_id: int) -> JobRow:
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NoSuchJob(f"no job with id {job_id!r}")
        return job_row(row)

    def _filters(self, q: Any, site: str | None = None, cron_uid: str | None = None,
                 status: Statuses = None, type: str | None = None,
                 search: str | None = None) -> Any:
        if search:
            q = q.where(search_clause(search, self.dialect))
        if site is not None:
            q = q.where(jobs.c.site == site)
        if cron_uid is not None:
            q = q.where(jobs.c.cron_uid == cron_uid)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            q = q.where(jobs.c.status.in_([str(s) for s in statuses]))
        if type is not None:
            q = q.where(jobs.c.type == type)
        return q

    def list_jobs(self, site: str | None = None, cron_uid: str | None = None,
                  status: Statuses = None, type: str | None = None, limit: int | None = None,
                  offset: int = 0, oldest_first: bool = False,
                  search: str | None = None) -> list[JobRow]:
        q = self._filters(sa.select(jobs), site, cron_uid, status, type, search)
        q = q.order_by(jobs.c.id if oldest_first else jobs.c.id.desc())
        if limit is not None:
            q = q.limit(limit).offset(offset)
        with self._tx(write=False) as conn:
            return [job_row(r) for r in conn.execute(q)]

    def count_jobs(self, site: str | None = None, cron_uid: str | None = None,
                   status: Statuses = None, type: str | None = None,
                   search: str | None = None) -> int:
        q = self._filters(sa.select(sa.func.count()).select_from(jobs), site, cron_uid, status,
                          type, search)
        with self._tx(write=False) as conn:
            return int(conn.execute(q).scalar_one())

    def cron_job_statuses(self, site: str, cron_uid: str) -> set[str]:
        with self._tx(write=False) as conn:
            return set(conn.execute(sa.select(jobs.c.status).distinct().where(
                jobs.c.site == site, jobs.c.cron_uid == cron_uid)).scalars())

    def pending_cron_jobs(self, site: str) -> dict[str, dict[str, Any]]:
        q = sa.select(jobs.c.id, jobs.c.cron_uid, jobs.c.signature, jobs.c.run_after, jobs.c.fire_at) \
            .where(jobs.c.site == site, jobs.c.status == "pending", jobs.c.cron_uid.is_not(None)) \
            .order_by(jobs.c.id)
        out: dict[str, dict[str, Any]] = {}
        with self._tx(write=False) as conn:
            for r in conn.execute(q):
                out.setdefault(r.cron_uid, dict(r._mapping))
        return out

    def running_cron_uids(self, site: str) -> set[str]:
        with self._tx(write=False) as conn:
            return set(conn.execute(sa.select(jobs.c.cron_uid).where(
                jobs.c.site == site, jobs.c.status == "running",
                jobs.c.cron_uid.is_not(None))).scalars())

    def pending_and_running_cron_jobs(self, site: str) -> tuple[dict[str, dict[str, Any]], set[str]]:
        # One statement, so one snapshot: the next firing is queued before a run ends.
        found = bulk_cron_jobs(self, site)  # type: ignore[arg-type]
        if found is not None:     # SQLite's hot path
            return found
        q = sa.select(jobs.c.id, jobs.c.cron_uid, jobs.c.signature, jobs.c.run_after,
                      jobs.c.fire_at, jobs.c.status).where(
            jobs.c.site == site, jobs.c.status.in_(["pending", "running"]),
            jobs.c.cron_uid.is_not(None)).order_by(jobs.c.id)
        pending: dict[str, dict[str, Any]] = {}
        running: set[str] = set()
        with self._tx(write=False) as conn:
            for r in conn.execute(q):
                if r.status == "running":
                    running.add(r.cron_uid)
                else:
                    pending.setdefault(r.cron_uid, {k: v for k, v in r._mapping.items()
                                                    if k != "status"})
        return pending, running

    def delete_pending_cron_jobs(self, site: str, uids: Iterable[str]) -> int:
        n = 0
        with self._tx() as conn:
            for chunk in chunks(list(uids)):
                n += conn.execute(jobs.delete().where(
                    jobs.c.site == site, jobs.c.status == "pending",
                    jobs.c.cron_uid.in_(chunk))).rowcount
        return n

    def claim(self, now: datetime, limit: int, worker: str, pid: int | None = None,
              limits: Mapping[str, Any] | None = None) -> list[JobRow]:
        """Claim as the contract says. Without ``limits`` a claim is one statement (on
        SQLite's hot path when there is one); pauses are part of it.

        With ``limits`` the claim runs in one write transaction: it reads the claimable
        jobs in claim order (``claim_candidates``); when some are of a limited type it
        takes the limits lock, then counts each such type's RUNNING jobs (all sites,
        all workers) and its starts within the rate's window (``started_at`` after
        ``now - seconds``: a sliding window), takes jobs while their type has room, and
        reads again without the types that have none, until it has ``limit`` jobs or
        none is left (at most one more read per limited type).

        Concurrent claims: on SQLite the transaction is ``BEGIN IMMEDIATE``, so claims
        run one at a time and each counts what the last one committed. On PostgreSQL
        claims run at once (SKIP LOCKED); two that counted the same room would both
        spend it. So a claim that meets a limited type first takes one transaction-wide
        advisory lock (``_lock_limits``), and counts after it: READ COMMITTED gives each
        count a snapshot taken once the previous holder committed. One lock for every
        limited type, not one per type: a claim meets its types one read after another,
        and per-type locks taken in that order could deadlock. Claims that meet no
        limited type never take it and stay concurrent."""
        if limit <= 0:
            return []
        params = {"now": now, "lim": limit, "worker": worker, "pid": pid}
        limited = {name: value for name, value in (limits or {}).items()
                   if _max_running(value) is not None or _rate(value) is not None}
        if limited:
            with self._tx() as conn:
                return claim_order(self._claim_limited(conn, params, limited))
        hot = self._hot_stmts
        if hot is not None and self._hot is not None:
            with self._hot.write(self.url) as conn:
                ids = [r[0] for r in conn.execute(hot.claim_due.sql,
                                                  hot.claim_due.args(params))]
                if not ids:
                    return []
                raw = conn.execute(*hot.claim_ids.bind(dict(params, ids=ids))).fetchall()
            return claim_order([raw_job_row(r) for r in raw])
        with self._tx() as conn:
            return claim_order([job_row(r) for r in conn.execute(self._stmts.claim, params)])

    def _claim_limited(self, conn: sa.Connection, params: dict[str, Any],
                       limits: Mapping[str, Any]) -> list[JobRow]:
        stmts, now, limit = self._stmts, params["now"], params["lim"]
        blocked: set[str] = set()
        room: dict[str, int] = {}
        locked = False
        claimed: list[JobRow] = []
        while len(claimed) < limit:
            want = limit - len(claimed)
            found = conn.execute(stmts.claim_candidates,
                                 {"now": now, "lim": want, "blocked": sorted(blocked)}).all()
            uncounted = {t for _, t in found if t in limits and t not in room}
            if uncounted:
                if not locked:
                    self._lock_limits(conn)
                    locked = True
                room.update(self._room(conn, now, uncounted, limits))
            take = []
            for job_id, type_ in found:
                if type_ in limits:
                    if room[type_] <= 0:
                        blocked.add(type_)
                        continue
                    room[type_] -= 1
                take.append(job_id)
            if take:
                claimed += [job_row(r) for r in conn.execute(stmts.claim_ids,
                                                             dict(params, ids=take))]
            if len(take) == len(found) or len(found) < want:
                break
        return claimed

    def _room(self, conn: sa.Connection, now: datetime, types: set[str],
              limits: Mapping[str, Any]) -> dict[str, int]:
        """How many more jobs of each of ``types`` may start now."""
        running: dict[str, int] = {
            t: n for t, n in conn.execute(self._stmts.running_by_type, {"types": sorted(types)})}
        room = {}
        for name in types:
            free: list[int] = []
            most = _max_running(limits[name])
            if most is not None:
                free.append(most - running.get(name, 0))
            rate = _rate(limits[name])
            if rate is not None:
                count, seconds = rate
                started = conn.execute(self._stmts.started_since, {
                    "type": name, "since": now - timedelta(seconds=seconds)}).scalar_one()
                free.append(count - started)
            room[name] = max(0, min(free))
        return room

    # -- claim-ahead (leases) ----------------------------------------------------

    def lease(self, now: datetime, until: datetime, limit: int, worker: str,
              pid: int | None, expires: datetime, limited: Iterable[str] = ()) -> list[JobRow]:
        if limit <= 0:
            return []
        find = {"now": now, "until": until, "lim": limit, "limited": sorted(limited)}
        take = {"worker": worker, "pid": pid, "expires": expires}
        hot = self._hot_stmts
        if hot is not None and self._hot is not None:
            with self._hot.write(self.url) as conn:
                ids = [r[0] for r in conn.execute(*hot.leasable.bind(find))]
                if not ids:
                    return []
                raw = conn.execute(*hot.lease_ids.bind(dict(take, ids=ids))).fetchall()
            return claim_order([raw_job_row(r) for r in raw])
        with self._tx() as conn:
            ids = list(conn.execute(self._stmts.leasable, find).scalars())
            if not ids:
                return []
            return claim_order([job_row(r) for r in conn.execute(
                self._stmts.lease_ids, dict(take, ids=ids))])

    def start_leased(self, job_ids: Iterable[int], now: datetime, worker: str,
                     pid: int | None) -> list[JobRow]:
        ids = list(job_ids)
        if not ids:
            return []
        params = {"ids": ids, "now": now, "worker": worker, "pid": pid, "holder": worker}
        hot = self._hot_stmts
        if hot is not None and self._hot is not None:
            with self._hot.write(self.url) as conn:
                raw = conn.execute(*hot.start_leased.bind(params)).fetchall()
                if len(raw) < len(ids):   # paused meanwhile: given back
                    conn.execute(*hot.release_leases.bind(params))
            return claim_order([raw_job_row(r) for r in raw])
        with self._tx() as conn:
            rows = [job_row(r) for r in conn.execute(self._stmts.start_leased, params)]
            if len(rows) < len(ids):
                conn.execute(self._stmts.release_leases, params)
        return claim_order(rows)

    def renew_leases(self, job_ids: Iterable[int], worker: str, expires: datetime) -> set[int]:
        ids = list(job_ids)
        held: set[int] = set()
        if not ids:
            return held
        hot = self._hot_stmts
        if hot is not None and self._hot is not None:
            with self._hot.write(self.url) as raw:
                for chunk in chunks(ids):
                    params = {"ids": chunk, "holder": worker, "expires": expires}
                    held.update(r[0] for r in raw.execute(*hot.renew_leases.bind(params)))
            return held
        with self._tx() as conn:
            for chunk in chunks(ids):
                params = {"ids": chunk, "holder": worker, "expires": expires}
                held.update(conn.execute(self._stmts.renew_leases, params).scalars())
        return held

    def release_leases(self, job_ids: Iterable[int], worker: str) -> None:
        ids = list(job_ids)
        if not ids:
            return
        with self._tx() as conn:
            for chunk in chunks(ids):
                conn.execute(self._stmts.release_leases, {"ids": chunk, "holder": worker})

    def next_due(self) -> datetime | None:
        hot = self._hot_stmts
        if hot is not None and self._hot is not None:
            return self._hot.read(self.url, hot.next_due, {}, lambda r: from_micros(r[0]))
        with self._tx(write=False) as conn:
            return conn.execute(self._stmts.next_due).scalar()

    def update_job(self, job_id: int, **fields: Any) -> None:
        if "payload" in fields:
            fields["payload"] = json.dumps(fields["payload"])
        with self._tx() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(**fields))

    def append_text(self, job_id: int, text: str) -> None:
        with self._tx() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id)
                         .values(status_text=jobs.c.status_text + text))

    def finish_job(self, job_id: int, status: str, now: datetime, message: str | None = None,
                   progress: int | None = None, only_running: bool = True,
                   attempt: int | None = None, result: Any = None) -> str | None:
        params, variant = _end_params(job_id, status, now, message, progress, only_running,
                                      attempt, result)
        hot = self._hot_stmts
        if hot is not None and self._hot is not None:
            rows = self._hot.write_one(self.url, hot.finish[variant], params)
            return rows[0][0] if rows else None
        with self._tx() as conn:
            found = conn.execute(self._stmts.finish[variant], params).first()
        return found[0] if found else None

    def finish_jobs(self, ends: Iterable[Mapping[str, Any]]) -> list[str | None]:
        """Each end as ``finish_job(**end)`` (only a RUNNING job changes), all in one
        transaction: group commit."""
        found: list[str | None] = []
        items = list(ends)
        if not items:
            return found
        hot = self._hot_stmts
        if hot is not None and self._hot is not None:
            with self._hot.write(self.url) as conn:
                for end in items:
                    params, variant = _end_params(**end)
                    stmt = hot.finish[variant]
                    row = conn.execute(stmt.sql, stmt.args(params)).fetchone()
                    found.append(row[0] if row else None)
            return found
        with self._tx() as conn:
            for end in items:
                params, variant = _end_params(**end)
                row = conn.execute(self._stmts.finish[variant], params).first()
                found.append(row[0] if row else None)
        return found

    def cancel_pending(self, job_id: int, now: datetime) -> bool:
        with self._tx() as conn:
            return conn.execute(jobs.update().where(
                jobs.c.id == job_id, jobs.c.status == "pending").values(
                status="canceled", canceled=True, finished_at=now)).rowcount == 1

    def cancel_job(self, job_id: int, now: datetime) -> str:
        with self._tx() as conn:
            row = conn.execute(sa.select(jobs.c.status).where(jobs.c.id == job_id)).first()
            if row is None:
                raise NoSuchJob(f"no job with id {job_id!r}")
            if row.status == "pending":
                conn.execute(jobs.update().where(jobs.c.id == job_id).values(
                    status="canceled", canceled=True, finished_at=now))
                return "canceled"
            if row.status == "running":
                conn.execute(jobs.update().where(jobs.c.id == job_id).values(canceled=True))
            return str(row.status)

    def is_canceled(self, job_id: int) -> bool:
        hot = self._hot_stmts
        if hot is not None and self._hot is not None:
            return bool(self._hot.read(self.url, hot.is_canceled, {"job_id": job_id},
                                       lambda r: bool(r and r[0])))
        with self._tx(write=False) as conn:
            return bool(conn.execute(self._stmts.is_canceled, {"job_id": job_id}).scalar())

    def canceled_among(self, job_ids: Iterable[int]) -> set[int]:
        found: set[int] = set()
        ids = list(job_ids)
        if not ids:
            return found
        with self._tx(write=False) as conn:
            for chunk in chunks(ids):
                found.update(conn.execute(sa.select(jobs.c.id).where(
                    jobs.c.id.in_(chunk), jobs.c.canceled.is_(True))).scalars())
        return found

    def heartbeat(self, job_ids: Iterable[int], now: datetime) -> None:
        ids = list(job_ids)
        if not ids:
            return
        with self._tx() as conn:
            for chunk in chunks(ids):
                conn.execute(jobs.update().where(jobs.c.id.in_(chunk), jobs.c.status == "running")
                             .values(heartbeat=now))

    def stale_jobs(self, before: datetime) -> list[JobRow]:
        with self._tx(write=False) as conn:
            return [job_row(r) for r in conn.execute(sa.select(jobs).where(
                jobs.c.status == "running", jobs.c.heartbeat < before))]

    def running_jobs(self) -> list[JobRow]:
        with self._tx(write=False) as conn:
            return [job_row(r) for r in conn.execute(sa.select(jobs).where(jobs.c.status == "running"))]

    def continuations(self, after_id: int | None = None, waiting: bool = True) -> list[JobRow]:
        q = sa.select(jobs).where(jobs.c.after_ids.is_not(None)).order_by(jobs.c.id)
        if waiting:
            q = q.where(jobs.c.status == "pending", jobs.c.run_after == WAITING)
        elif after_id is not None:   # a first cut by text; the ids are compared below
            q = q.where(jobs.c.after_ids.contains(str(after_id)))
        with self._tx(write=False) as conn:
            rows = [job_row(r) for r in conn.execute(q)]
        return rows if after_id is None else [r for r in rows if after_id in r["after_ids"]]

    def requeue_job(self, job_id: int, run_after: datetime, message: str,
                    attempt: int | None = None) -> bool:
        params = {"job_id": job_id, "run_at": run_after, "why": message, "attempt": attempt}
        with self._tx() as conn:
            return conn.execute(self._stmts.requeue[attempt is not None], params).rowcount == 1

    def adopt_job(self, job_id: int, attempt: int, owner: str, worker: str, pid: int | None,
                  now: datetime) -> JobRow | None:
        with self._tx() as conn:
            row = conn.execute(jobs.update().where(
                jobs.c.id == job_id, jobs.c.status == "running", jobs.c.attempts == attempt,
                jobs.c.worker == owner).values(worker=worker, pid=pid, heartbeat=now)
                .returning(*jobs.c)).first()
        return None if row is None else job_row(row)

    def remove_job(self, job_id: int) -> None:
        with self._tx() as conn:
            if conn.execute(jobs.delete().where(jobs.c.id == job_id)).rowcount == 0:
                raise NoSuchJob(f"no job with id {job_id!r}")
            conn.execute(history.delete().where(history.c.job_id == job_id))

    def delete_jobs(self, job_ids: Iterable[int]) -> int:
        n = 0
        with self._tx() as conn:
            for chunk in chunks(list(job_ids)):
                n += conn.execute(jobs.delete().where(jobs.c.id.in_(chunk))).rowcount
                conn.execute(history.delete().where(history.c.job_id.in_(chunk)))
        return n

    def cleanup(self, success_before: datetime | None, all_before: datetime | None) -> int:
        conds = []
        if success_before is not None:
            conds.append(sa.and_(jobs.c.status == "success", jobs.c.finished_at < success_before))
        if all_before is not None:
            conds.append(sa.and_(jobs.c.status.in_(["success", "failed", "canceled"]),
                                 jobs.c.finished_at < all_before))
        if not conds:
            return 0
        with self._tx(write=False) as conn:
            ids = list(conn.execute(sa.select(jobs.c.id).where(sa.or_(*conds))).scalars())
        return self.delete_jobs(ids)

    # -- paused queues --------------------------------------------------------

    def pause(self, site: str, type: str | None, now: datetime) -> None:
        with self._tx() as conn:
            conn.execute(insert(self.dialect, pauses).values(
                site=site, type=type or "", paused_at=now).on_conflict_do_nothing())

    def resume(self, site: str, type: str | None) -> bool:
        with self._tx() as conn:
            return conn.execute(pauses.delete().where(
                pauses.c.site == site, pauses.c.type == (type or ""))).rowcount == 1

    def pauses(self, site: str) -> list[str | None]:
        with self._tx(write=False) as conn:
            found = sorted(conn.execute(sa.select(pauses.c.type).where(
                pauses.c.site == site)).scalars())
        return [t or None for t in found]

    def paused_sites(self) -> list[str]:
        with self._tx(write=False) as conn:
            return list(conn.execute(sa.select(pauses.c.site).distinct()
                                     .order_by(pauses.c.site)).scalars())

    # -- statistics (the dashboard's charts) -----------------------------------

    def count_ends(self, since: datetime, until: datetime, step: timedelta,
                   site: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
        start, step_us = to_micros(since), step // timedelta(microseconds=1)
        n, rest = divmod(to_micros(until) - start, step_us) if step_us > 0 else (0, 1)
        if rest or not 1 <= n <= MAX_INTERVALS:
            raise StoreError(f"count_ends: {until - since} is not 1 to {MAX_INTERVALS} "
                             f"whole intervals of {step}")
        finished = sa.type_coerce(jobs.c.finished_at, sa.BigInteger)
        # Integer division (``//`` on integers: ``/`` in SQLite and PostgreSQL alike),
        # in a subquery so that GROUP BY names a column, not an expression with params.
        ended = (sa.select(
            ((finished - sa.literal(start, sa.BigInteger))
             // sa.literal(step_us, sa.BigInteger)).label("bucket"), jobs.c.status)
            .where(jobs.c.finished_at >= since, jobs.c.finished_at < until,
                   *_ended(site, type))).subquery()
        q = sa.select(ended.c.bucket, ended.c.status, sa.func.count()) \
            .group_by(ended.c.bucket, ended.c.status)
        out = [{"start": since + i * step, **dict.fromkeys(ENDED, 0)} for i in range(n)]
        with self._tx(write=False) as conn:
            for bucket, status, count in conn.execute(q):
                out[int(bucket)][status] = int(count)
        return out

    def job_timings(self, since: datetime, until: datetime, edges: Iterable[float],
                    site: str | None = None, type: str | None = None) -> dict[str, Any]:
        cuts = [float(e) for e in edges]
        if not 1 <= len(cuts) <= MAX_EDGES or cuts != sorted(set(cuts)):
            raise StoreError(f"job_timings: edges must be 1 to {MAX_EDGES} ascending "
                             f"seconds, not {cuts!r}")

        def micros(column: Any) -> Any:
            return sa.type_coerce(column, sa.BigInteger)

        started = micros(jobs.c.started_at)
        measures = {"lateness": started - micros(jobs.c.run_after),
                    "duration": micros(jobs.c.finished_at) - started}
        columns: list[Any] = [jobs.c.type, sa.func.count()]
        for value in measures.values():   # how many fall below each edge, then mean, max
            columns += [sa.func.sum(sa.case((value < sa.literal(round(e * 1e6), sa.BigInteger),
                                             1), else_=0)) for e in cuts]
            columns += [sa.func.avg(value), sa.func.max(value)]
        q = sa.select(*columns).where(
            jobs.c.finished_at >= since, jobs.c.finished_at < until,
            jobs.c.started_at.is_not(None), *_ended(site, type))
        out: dict[str, Any] = {}
        with self._tx(write=False) as conn:
            for found in conn.execute(q.group_by(jobs.c.type)):
                count, width = int(found[1]), len(cuts) + 2
                stats: dict[str, Any] = {"count": count}
                for i, name in enumerate(measures):
                    *below, mean, top = found[2 + i * width:2 + (i + 1) * width]
                    below = [0, *(int(b or 0) for b in below), count]
                    stats[name] = {"bins": [b - a for a, b in pairwise(below)],
                                   "mean": float(mean or 0) / 1e6, "max": float(top or 0) / 1e6}
                out[found[0]] = stats
        return out

    # -- history --------------------------------------------------------------

    def add_history(self, job_id: int, date: datetime, comment: str, status: str = "info") -> None:
        with self._tx() as conn:
            conn.execute(history.insert().values(job_id=job_id, date=date, comment=comment,
                                                 status=status))

    def history(self, job_id: int) -> list[dict[str, Any]]:
        with self._tx(write=False) as conn:
            return [dict(r._mapping) for r in conn.execute(
                sa.select(history.c.date, history.c.status, history.c.comment)
                .where(history.c.job_id == job_id).order_by(history.c.id))]


#: The columns a jobs search looks in.
SEARCHED = ("name", "type", "payload", "message")


def like_pattern(text: str) -> str:
    """``%text%`` for LIKE with ``\\`` as the escape: the text's own ``%``, ``_`` and
    ``\\`` match themselves, never as wildcards."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_clause(text: str, dialect: str = "sqlite") -> Any:
    """Jobs whose name, type, payload (its JSON text) or message (a failed job's error)
    holds ``text``, case-insensitively: bound parameters, wildcards escaped. SQLite's
    LIKE ignores the case of ASCII letters itself (``lower()`` on every row of every
    column would double a search's scan); PostgreSQL's ILIKE does it for every letter."""
    pattern = like_pattern(text)
    if dialect == "sqlite":
        return sa.or_(*(jobs.c[name].like(pattern, escape="\\") for name in SEARCHED))
    return sa.or_(*(jobs.c[name].ilike(pattern, escape="\\") for name in SEARCHED))


def _ended(site: str | None, type: str | None) -> list[Any]:
    """The conditions of an ended job (of ``site`` and ``type`` when given) for the
    charts' queries, tested on ``column || ''``: expressions no index holds, so that the
    planner walks the end-time index (the window's rows), never an index by status, site
    or type (every ended job ever)."""
    conds: list[Any] = [jobs.c.status.concat("").in_(ENDED)]
    if site is not None:
        conds.append(jobs.c.site.concat("") == site)
    if type is not None:
        conds.append(jobs.c.type.concat("") == type)
    return conds


def _end_params(job_id: int, status: str, now: datetime, message: str | None = None,
                progress: int | None = None, only_running: bool = True,
                attempt: int | None = None, result: Any = None,
                ) -> tuple[dict[str, Any], tuple[bool, bool]]:
    """The parameters of a finish statement and its variant (only_running, by_attempt)."""
    params = {"job_id": job_id, "now": now, "status": str(status), "message": message,
              "progress": progress, "attempt": attempt,
              "result": None if result is None else json.dumps(result)}
    return params, (bool(only_running), attempt is not None)


def _max_running(value: Any) -> int | None:
    """A type limit's ``max_running`` (a TypeLimit, or a (max_running, rate) pair)."""
    return getattr(value, "max_running", None) if hasattr(value, "max_running") else value[0]


def _rate(value: Any) -> tuple[int, float] | None:
    """A type limit's ``rate``: (count, seconds), or None."""
    return getattr(value, "rate", None) if hasattr(value, "rate") else value[1]
