"""The SQL store: SQLite (embedded, WAL) and PostgreSQL through one SQLAlchemy Core schema.

Claims are atomic: on SQLite a claim is one ``BEGIN IMMEDIATE`` write transaction, on
PostgreSQL a ``SELECT ... FOR UPDATE SKIP LOCKED``. A cron firing is unique on
(site, cron uid, scheduled time) by a unique index, so no two workers or hosts can
queue, and therefore run, the same firing twice.

A store opened read-only (``mode=ro`` in its URL, ``read_only=True``, or a SQLite
file or folder that cannot be written: see ``sqlitefile.py``) reads its schema version
without a write transaction, opens SQLite with ``mode=ro``, answers every read and
refuses every write with ReadOnlyStore before it touches the database.

The schema and its migrations are in ``schema.py``, the sites and crontabs in
``crontabs.py``, the prebuilt job statements in ``statements.py``, how a SQLite file is
opened (and whether it is still there) in ``sqlitefile.py``; the job queries are here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError, StatementError
from sqlalchemy.pool import StaticPool
from zope.interface import implementer

from ..exceptions import CronkitError, NoSuchJob, ReadOnlyStore, StoreError, StoreGone
from ..interfaces import ICrontabStore, IJobStore, IStore
from .base import JobRow, Statuses, Store
from .crontabs import CrontabQueries
from .hotpath import HotPath, from_micros, refused
from .schema import (
    CRON_COLUMNS,
    JOB_COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    UTCDateTime,
    chunks,
    claim_order,
    crons,
    history,
    job_row,
    job_values,
    jobs,
    logs,
    meta,
    metadata,
    migrate,
    raw_job_row,
    read_version,
    sites,
    stored_version,
)
from .sqlitefile import ASKED, SQLiteFile, split_mode
from .statements import HotStatements, hot_statements, job_statements

# Names other modules imported from here before the schema moved out; they stay.
__all__ = ["CRON_COLUMNS", "JOB_COLUMNS", "MIGRATIONS", "SCHEMA_VERSION", "SQLStore",
           "UTCDateTime", "crons", "history", "jobs", "logs", "meta", "metadata", "sites"]
_job_row, _raw_job_row, _job_values, _chunks = job_row, raw_job_row, job_values, chunks


@implementer(ICrontabStore, IJobStore, IStore)
class SQLStore(CrontabQueries, Store):
    """A store on SQLAlchemy Core: ``sqlite:///path``, ``postgresql://...``, ``memory://``.

    ``read_only=True`` (or ``mode=ro`` in the URL) opens it read-only; ``mode=rw`` opens
    an existing SQLite file only (see ``sqlitefile.py``)."""

    def __init__(self, url: str, read_only: bool = False):
        self.url = url
        base, self._mode = split_mode(url)
        self.read_only = bool(read_only) or self._mode == "ro"
        self._read_only_why = ASKED
        self._lock: threading.RLock | None = None
        self._file: SQLiteFile | None = None
        self._private = False   # memory:// or an anonymous SQLite database
        self._hot: HotPath | None = None
        self._hot_stmts: HotStatements | None = None
        try:
            self.engine = self._make_engine(base)
            self.dialect = self.engine.dialect.name
            # A private database is made with its schema even when it is read-only:
            # nobody else could ever have made it.
            private_read_only = self.read_only and self._private
            self.read_only = self.read_only and not private_read_only
            self._migrate()
            self.read_only = self.read_only or private_read_only
            if self._file is not None:
                self._file.opened()
            self._prepare_statements()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open store {url!r}: {exc}") from None

    # -- engine ---------------------------------------------------------------

    def _make_engine(self, url: str) -> sa.Engine:
        """The engine for ``url`` (the store's URL without its mode option)."""
        if url.startswith("memory://"):
            self._lock = threading.RLock()
            self._private = True
            engine = sa.create_engine("sqlite://", poolclass=StaticPool,
                                      connect_args={"check_same_thread": False})
            self._sqlite_events(engine)
            return engine
        if url.startswith("sqlite"):
            return self._sqlite_engine(url)
        if url.startswith(("postgresql://", "postgres://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        try:
            return sa.create_engine(url, pool_pre_ping=True)
        except (ImportError, sa.exc.ArgumentError) as exc:
            raise StoreError(f"cannot open store {url!r}: {exc}") from None

    def _sqlite_engine(self, url: str) -> sa.Engine:
        try:
            sa_url = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise StoreError(f"invalid store URL {self.url!r}: {exc}") from None
        if sa_url.query:
            raise StoreError(f"invalid store URL {self.url!r}: unknown option(s) "
                             f"{', '.join(sorted(sa_url.query))} (a SQLite store URL takes "
                             "mode=ro, rw or rwc)")
        if sa_url.database in (None, "", ":memory:"):
            self._private = True
            engine = sa.create_engine(sa_url, connect_args={"check_same_thread": False})
            self._sqlite_events(engine)
            return engine
        self._file = file = SQLiteFile(self.url, sa_url.database, self._mode, self.read_only)
        if file.read_only:
            self.read_only, self._read_only_why = True, file.read_only
        engine = sa.create_engine(sa_url.set(database=file.path), creator=file.connect)
        self._sqlite_events(engine, wal=not file.read_only)
        return engine

    @staticmethod
    def _sqlite_events(engine: sa.Engine, wal: bool = True) -> None:
        # pysqlite's own transaction handling is turned off so that writes can start
        # with BEGIN IMMEDIATE: a claim is then one write transaction, never a
        # read-then-upgrade that two processes could both win.
        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if wal:   # a read-only connection reads the journal mode the file has
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            immediate = conn.get_execution_options().get("cronkit_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    def _refusal(self) -> ReadOnlyStore:
        return ReadOnlyStore(f"store {self.url!r} is read-only ({self._read_only_why}): "
                             "writes are refused, nothing was changed")

    def _error(self, exc: object) -> StoreError:
        """The store's error for an error of its database: StoreGone when the file is no
        longer the one opened, ReadOnlyStore when SQLite refused to write."""
        if self._file is not None:
            problem = self._file.problem()
            if problem is not None:
                return StoreGone(f"{problem} ({exc})")
        if "readonly database" in str(exc):
            return ReadOnlyStore(f"store {self.url!r} is read-only: {exc}")
        return StoreError(f"store {self.url!r}: {exc}")

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[sa.Connection]:
        if write and self.read_only:
            raise self._refusal()
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(cronkit_write=True)
                with conn.begin():
                    yield conn
        except IntegrityError as exc:
            raise refused(self.url, exc.orig) from None
        except OperationalError as exc:
            raise self._error(exc.orig) from None
        except StatementError as exc:
            if isinstance(exc.orig, CronkitError):  # raised by a type, e.g. a naive datetime
                raise exc.orig from None
            raise
        finally:
            if lock is not None:
                lock.release()

    def _migrate(self) -> None:
        """Bring the schema to SCHEMA_VERSION. The version is read first, in a read
        transaction: a store at the current version (every read-only one) writes
        nothing on opening."""
        with self._tx(write=False) as conn:
            found = stored_version(conn, self.url)
        if found == SCHEMA_VERSION:
            return
        if found is not None and found > SCHEMA_VERSION:
            raise StoreError(f"store {self.url!r} has schema version {found}, newer than "
                             f"this cronkit ({SCHEMA_VERSION}): upgrade cronkit")
        if self.read_only:
            what = "has no cronkit schema" if found is None else \
                f"has schema version {found}, older than this cronkit's ({SCHEMA_VERSION})"
            raise ReadOnlyStore(f"cannot open store {self.url!r}: it is read-only "
                                f"({self._read_only_why}) and {what}: open it once "
                                "writable to migrate it")
        with self._tx() as conn:
            self._lock_schema(conn)
            migrate(conn, self.url)

    def _lock_schema(self, conn: sa.Connection) -> None:
        """Serialise schema creation and migrations between processes opening one
        database at once. SQLite: the migration's BEGIN IMMEDIATE already does."""

    def _lock_unique(self, conn: sa.Connection, key: str) -> None:
        """Serialise unique submissions of one key (SQLite: BEGIN IMMEDIATE does)."""

    def _prepare_statements(self) -> None:
        """Build the job statements once; on a writable SQLite store, compile them for
        the hot path (a read-only one reads through SQLAlchemy, which refuses writes)."""
        self._stmts = job_statements(self.dialect)
        if self.dialect != "sqlite" or self.read_only:
            return
        if self._lock is not None:   # memory://: its one connection, under its lock
            raw = self.engine.raw_connection()
            self._hot = HotPath(None, shared=raw.driver_connection, lock=self._lock,
                                error=self._error)
            raw.close()
        elif self._file is not None:
            self._hot = HotPath(self._file.connect, error=self._error)
        else:
            return
        self._hot_stmts = hot_statements(self._stmts, self.engine.dialect)

    def schema_version(self) -> int:
        with self._tx(write=False) as conn:
            q = sa.select(meta.c.value).where(meta.c.key == "schema_version")
            return read_version(conn.execute(q).scalar_one(), self.url)

    def check(self) -> None:
        if self._file is not None:
            problem = self._file.problem()
            if problem is not None:
                raise StoreGone(problem)

    def close(self) -> None:
        if self._hot is not None:
            self._hot.close()
        self.engine.dispose()

    def after_fork(self) -> None:
        """Drop connections inherited from a parent process (processes executor). A
        memory:// database is its one connection: the child keeps its own copy of it,
        under a new lock (the parent's may be held by a thread the child does not have)."""
        if self._lock is not None:
            self._lock = threading.RLock()
            if self._hot is not None:
                self._hot.forget(lock=self._lock)
            return
        if self._hot is not None:
            self._hot.forget()
        self.engine.dispose(close=False)

    # -- jobs -----------------------------------------------------------------

    def add_jobs(self, rows: list[JobRow], ignore_duplicates: bool = False) -> list[int]:
        if not rows:
            return []
        values = [job_values(r) for r in rows]
        hot = self._hot_stmts
        if len(values) == 1 and not ignore_duplicates and hot is not None and self._hot is not None:
            with self._hot.write(self.url) as conn:
                cur = conn.execute(hot.insert.sql, hot.insert.args(values[0]))
                return [cur.fetchone()[0]]
        stmt = self._stmts.insert_ignore if ignore_duplicates else self._stmts.insert_job
        with self._tx() as conn:
            if len(values) == 1:
                res = conn.execute(stmt, values[0]).first()
                return [res[0]] if res else []
            return [r[0] for r in conn.execute(stmt, values)]

    def add_unique_job(self, row: JobRow) -> tuple[int, bool]:
        with self._tx() as conn:
            self._lock_unique(conn, row["unique_key"])
            found = conn.execute(sa.select(jobs.c.id).where(
                jobs.c.unique_key == row["unique_key"], jobs.c.status == "pending")
                .order_by(jobs.c.id).limit(1)).scalar()
            if found is not None:
                return found, False
            values = dict(row, payload=json.dumps(row.get("payload") or {}))
            key: Any = conn.execute(jobs.insert().values(**values)).inserted_primary_key
            return int(key[0]), True

    def get_job(self, job_id: int) -> JobRow:
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NoSuchJob(f"no job with id {job_id!r}")
        return job_row(row)

    def _filters(self, q: Any, site: str | None = None, cron_uid: str | None = None,
                 status: Statuses = None, type: str | None = None) -> Any:
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
                  offset: int = 0, oldest_first: bool = False) -> list[JobRow]:
        q = self._filters(sa.select(jobs), site, cron_uid, status, type)
        q = q.order_by(jobs.c.id if oldest_first else jobs.c.id.desc())
        if limit is not None:
            q = q.limit(limit).offset(offset)
        with self._tx(write=False) as conn:
            return [job_row(r) for r in conn.execute(q)]

    def count_jobs(self, site: str | None = None, cron_uid: str | None = None,
                   status: Statuses = None, type: str | None = None) -> int:
        q = self._filters(sa.select(sa.func.count()).select_from(jobs), site, cron_uid, status, type)
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

    def claim(self, now: datetime, limit: int, worker: str, pid: int | None = None) -> list[JobRow]:
        if limit <= 0:
            return []
        params = {"now": now, "lim": limit, "worker": worker, "pid": pid}
        hot = self._hot_stmts
        if hot is not None and self._hot is not None:
            with self._hot.write(self.url) as conn:
                raw = conn.execute(hot.claim.sql, hot.claim.args(params)).fetchall()
            return claim_order([raw_job_row(r) for r in raw])
        with self._tx() as conn:
            return claim_order([job_row(r) for r in conn.execute(self._stmts.claim, params)])

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
                   attempt: int | None = None) -> str | None:
        params = {"job_id": job_id, "now": now, "status": str(status), "message": message,
                  "progress": progress, "attempt": attempt}
        variant = (bool(only_running), attempt is not None)
        hot = self._hot_stmts
        if hot is not None and self._hot is not None:
            stmt = hot.finish[variant]
            with self._hot.write(self.url) as conn:
                row = conn.execute(stmt.sql, stmt.args(params)).fetchone()
            return row[0] if row else None
        with self._tx() as conn:
            found = conn.execute(self._stmts.finish[variant], params).first()
        return found[0] if found else None

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
