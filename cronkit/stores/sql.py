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
opened (and whether it is still there) in ``sqlitefile.py``, the job queries in
``jobqueries.py``; the engine, the transactions and the migrations are here.
"""

from __future__ import annotations

import json
import threading
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError, StatementError
from sqlalchemy.pool import StaticPool
from zope.interface import implementer

from ..exceptions import CronkitError, ReadOnlyStore, StoreError, StoreGone
from ..interfaces import ICrontabStore, IJobStore, IStore
from .base import Store, WorkerRow, WorkerStore
from .crontabs import CrontabQueries
from .hotpath import HotPath, refused
from .jobqueries import JobQueries
from .schema import (
    CRON_COLUMNS,
    JOB_COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    UTCDateTime,
    chunks,
    crons,
    history,
    insert,
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
    workers,
)
from .sqlitefile import ASKED, SQLiteFile, split_mode
from .statements import HotStatements, hot_statements, job_statements

# Names other modules imported from here before the schema moved out; they stay.
__all__ = ["CRON_COLUMNS", "JOB_COLUMNS", "MIGRATIONS", "SCHEMA_VERSION", "SQLStore",
           "UTCDateTime", "crons", "history", "jobs", "logs", "meta", "metadata", "sites"]
_job_row, _raw_job_row, _job_values, _chunks = job_row, raw_job_row, job_values, chunks


class WorkerQueries(WorkerStore):
    """The workers table (``cronkit_workers``); mixed into SQLStore."""

    dialect: str

    @abstractmethod
    def _tx(self, write: bool = True) -> AbstractContextManager[sa.Connection]:
        """One transaction (a write one unless ``write`` is false)."""

    def register_worker(self, row: WorkerRow) -> None:
        values = {c.name: row.get(c.name) for c in workers.columns}
        values["info"] = json.dumps(dict(row.get("info") or {}))
        values["version"] = values["version"] or ""
        values["stopped_at"] = None
        stmt = insert(self.dialect, workers).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[workers.c.id],
            set_={k: v for k, v in values.items() if k != "id"})
        with self._tx() as conn:
            conn.execute(stmt)

    def worker_heartbeat(self, worker_id: str, now: datetime, state: str | None = None,
                         info: Mapping[str, Any] | None = None) -> bool:
        values: dict[str, Any] = {"heartbeat": now}
        if state is not None:
            values["state"] = state
        if info is not None:
            values["info"] = json.dumps(dict(info))
        with self._tx() as conn:
            return bool(conn.execute(workers.update().where(workers.c.id == worker_id)
                                     .values(**values)).rowcount)

    def stop_worker(self, worker_id: str, now: datetime) -> bool:
        with self._tx() as conn:
            return bool(conn.execute(workers.update().where(workers.c.id == worker_id).values(
                state="stopped", stopped_at=now, heartbeat=now)).rowcount)

    def list_workers(self) -> list[WorkerRow]:
        q = sa.select(workers).order_by(workers.c.started_at.desc(), workers.c.id)
        with self._tx(write=False) as conn:
            found = [dict(r._mapping) for r in conn.execute(q)]
        for found_row in found:
            found_row["info"] = json.loads(found_row["info"] or "{}")
        return found

    def delete_workers(self, before: datetime) -> int:
        stopped = sa.and_(workers.c.state == "stopped", workers.c.stopped_at < before)
        with self._tx() as conn:
            return int(conn.execute(workers.delete().where(
                sa.or_(stopped, workers.c.heartbeat < before))).rowcount)


#: What a malformed SQLite URL's message ends with: the two forms of a file's URL.
SQLITE_FORMS = ("; a SQLite store URL is sqlite:///relative.db (three slashes: a path from "
                "the current folder) or sqlite:////abs/path.db (four: an absolute path)")


@implementer(ICrontabStore, IJobStore, IStore)
class SQLStore(CrontabQueries, JobQueries, WorkerQueries, Store):
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
        if sa_url.host or sa_url.database == "":
            raise StoreError(f"invalid store URL {self.url!r}: "
                             + ("no file path" if sa_url.database == "" and not sa_url.host
                                else f"{sa_url.host!r} would be a host") + SQLITE_FORMS)
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
        lock: Any = self._lock
        if lock is None and write and self._hot is not None:
            lock = self._hot.write_lock    # this process's writers take turns there
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

    def _lock_limits(self, conn: sa.Connection) -> None:
        """Serialise claims of limited types (SQLite: BEGIN IMMEDIATE does)."""

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
