"""The SQL store: SQLite (embedded, WAL) and PostgreSQL through one SQLAlchemy Core schema.

Claims are atomic: on SQLite a claim is one ``BEGIN IMMEDIATE`` write transaction, on
PostgreSQL a ``SELECT ... FOR UPDATE SKIP LOCKED``. A cron firing is unique on
(site, cron uid, scheduled time) by a unique index, so no two workers or hosts can
queue, and therefore run, the same firing twice.
"""

from __future__ import annotations

import json
import os
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

from ..exceptions import CronkitError, NoSuchJob, StoreError
from ..interfaces import ICrontabStore, IJobStore
from .hotpath import HotPath, Statement, from_micros, refused, to_micros

SCHEMA_VERSION = 1


class UTCDateTime(sa.types.TypeDecorator):
    """Aware datetimes stored as integer microseconds since the epoch (UTC): portable,
    exact, and ordered the same way in every database."""

    impl = sa.BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else to_micros(value)

    def process_result_value(self, value, dialect):
        return from_micros(value)


metadata = sa.MetaData()

meta = sa.Table(
    "cronkit_meta", metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

sites = sa.Table(
    "cronkit_sites", metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("marked", sa.Boolean, nullable=False, default=False),
    sa.Column("activated", sa.Boolean, nullable=False, default=True),
    sa.Column("version", sa.BigInteger, nullable=False, default=0),
)

crons = sa.Table(
    "cronkit_crons", metadata,
    sa.Column("site", sa.String(200), primary_key=True),
    sa.Column("uid", sa.String(200), primary_key=True),
    sa.Column("position", sa.Float, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("periodicity", sa.String(200), nullable=False),
    sa.Column("timezone", sa.String(100)),
    sa.Column("activated", sa.Boolean, nullable=False),
    sa.Column("environ", sa.Text, nullable=False),
    sa.Column("logs_limit", sa.Integer, nullable=False),
    sa.Column("user", sa.String(200)),
    sa.Column("misfire", sa.String(10), nullable=False),
    sa.Column("misfire_grace", sa.Float),
)

logs = sa.Table(
    "cronkit_logs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site", sa.String(200), nullable=False),
    sa.Column("cron_uid", sa.String(200), nullable=False),
    sa.Column("date", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("messages", sa.Text, nullable=False),
    sa.Index("ix_cronkit_logs_cron", "site", "cron_uid", "id"),
    sqlite_autoincrement=True,
)

jobs = sa.Table(
    "cronkit_jobs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site", sa.String(200), nullable=False),
    sa.Column("type", sa.String(200), nullable=False),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, default=0),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("run_after", UTCDateTime, nullable=False),
    sa.Column("cron_uid", sa.String(200)),
    sa.Column("fire_at", UTCDateTime),          # scheduled time of a cron firing
    sa.Column("signature", sa.String(500)),     # the cron definition the job was made for
    sa.Column("unique_key", sa.String(64)),
    sa.Column("progress", sa.Integer, nullable=False, default=0),
    sa.Column("status_text", sa.Text, nullable=False, default=""),
    sa.Column("message", sa.Text),
    sa.Column("pid", sa.Integer),
    sa.Column("worker", sa.String(300)),
    sa.Column("heartbeat", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("user", sa.String(200)),
    sa.Column("timeout", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("canceled", sa.Boolean, nullable=False, default=False),
    sa.Index("ux_cronkit_jobs_firing", "site", "cron_uid", "fire_at", unique=True),
    sa.Index("ix_cronkit_jobs_due", "status", "run_after"),
    sa.Index("ix_cronkit_jobs_site", "site", "status", "id"),
    sa.Index("ix_cronkit_jobs_site_id", "site", "id"),
    sa.Index("ix_cronkit_jobs_unique", "unique_key"),
    sqlite_autoincrement=True,
)

# The claim walks this index in claim order and stops at its LIMIT: no sort of the queue.
sa.Index("ix_cronkit_jobs_claim", jobs.c.status, jobs.c.priority.desc(), jobs.c.run_after, jobs.c.id)

history = sa.Table(
    "cronkit_history", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.Integer, nullable=False, index=True),
    sa.Column("date", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sqlite_autoincrement=True,
)

JOB_COLUMNS = [c.name for c in jobs.columns]
CRON_COLUMNS = [c.name for c in crons.columns if c.name not in ("site", "position")]


def _migrate_1(conn) -> None:
    metadata.create_all(conn)


# Versioned schema: MIGRATIONS[n] brings a database from version n to n + 1.
MIGRATIONS = {0: _migrate_1}


_JOB_DEFAULTS = {c.name: None for c in jobs.columns if c.name != "id"}
_JOB_DEFAULTS.update(priority=0, progress=0, status_text="", attempts=0, canceled=False)


def _job_values(row: dict) -> dict:
    values = dict(_JOB_DEFAULTS)
    values.update(row)
    values["payload"] = json.dumps(row.get("payload") or {})
    return values


def _job_row(row) -> dict:
    data = dict(row._mapping)
    data["payload"] = json.loads(data["payload"])
    data["canceled"] = bool(data["canceled"])
    return data


_TIME_COLUMNS = [c.name for c in jobs.columns if isinstance(c.type, UTCDateTime)]


def _raw_job_row(values: tuple) -> dict:
    """A job row read on the hot path (a plain tuple in column order) as _job_row's dict."""
    data = dict(zip(JOB_COLUMNS, values, strict=True))
    for name in _TIME_COLUMNS:
        data[name] = from_micros(data[name])
    data["payload"] = json.loads(data["payload"])
    data["canceled"] = bool(data["canceled"])
    return data


@implementer(ICrontabStore, IJobStore)
class SQLStore:
    """A store on SQLAlchemy Core: ``sqlite:///path``, ``postgresql://...``, ``memory://``."""

    def __init__(self, url: str):
        self.url = url
        self._lock: threading.RLock | None = None
        self._hot: HotPath | None = None
        try:
            self.engine = self._make_engine(url)
            self.dialect = self.engine.dialect.name
            self._migrate()
            self._prepare_statements()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open store {url!r}: {exc}") from None

    # -- engine ---------------------------------------------------------------

    def _make_engine(self, url: str) -> sa.Engine:
        if url.startswith("memory://"):
            self._lock = threading.RLock()
            engine = sa.create_engine("sqlite://", poolclass=StaticPool,
                                      connect_args={"check_same_thread": False})
            self._sqlite_events(engine)
            return engine
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                parent = os.path.dirname(os.path.abspath(path))
                if not os.path.isdir(parent):
                    raise StoreError(f"cannot open store {url!r}: folder {parent!r} does not exist")
            engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})
            self._sqlite_events(engine)
            return engine
        if url.startswith(("postgresql://", "postgres://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        try:
            return sa.create_engine(url, pool_pre_ping=True)
        except (ImportError, sa.exc.ArgumentError) as exc:
            raise StoreError(f"cannot open store {url!r}: {exc}") from None

    @staticmethod
    def _sqlite_events(engine: sa.Engine) -> None:
        # pysqlite's own transaction handling is turned off so that writes can start
        # with BEGIN IMMEDIATE: a claim is then one write transaction, never a
        # read-then-upgrade that two processes could both win.
        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            immediate = conn.get_execution_options().get("cronkit_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[sa.Connection]:
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
            raise StoreError(f"store {self.url!r}: {exc.orig}") from None
        except StatementError as exc:
            if isinstance(exc.orig, CronkitError):  # raised by a type, e.g. a naive datetime
                raise exc.orig from None
            raise
        finally:
            if lock is not None:
                lock.release()

    def _migrate(self) -> None:
        with self._tx() as conn:
            self._lock_schema(conn)
            metadata.tables["cronkit_meta"].create(conn, checkfirst=True)
            row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(f"store {self.url!r} has schema version {version}, newer than "
                                 f"this cronkit ({SCHEMA_VERSION}): upgrade cronkit")
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                version += 1
            if row is None:
                conn.execute(meta.insert().values(key="schema_version", value=str(version)))
            else:
                conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(version)))

    def _lock_schema(self, conn) -> None:
        """Serialise schema creation and migrations between processes opening one
        database at once. SQLite: the migration's BEGIN IMMEDIATE already does."""

    def _lock_unique(self, conn, key: str) -> None:
        """Serialise unique submissions of one key (SQLite: BEGIN IMMEDIATE does)."""

    def _prepare_statements(self) -> None:
        """Build the hot-path statements once: claim, finish, insert."""
        now = sa.bindparam("now", type_=UTCDateTime())
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
        due = sa.select(jobs.c.id).where(
            jobs.c.status == "pending", jobs.c.run_after <= now,
            sa.or_(jobs.c.cron_uid.is_(None), ~(busy | queued_before)),
        ).order_by(jobs.c.priority.desc(), jobs.c.run_after, jobs.c.id).limit(sa.bindparam("lim"))
        if self.dialect == "postgresql":
            due = due.with_for_update(skip_locked=True, of=jobs)
        self._claim = jobs.update().where(jobs.c.id.in_(due.scalar_subquery()),
                                          jobs.c.status == "pending").values(
            status="running", started_at=now, heartbeat=now, worker=sa.bindparam("worker"),
            pid=sa.bindparam("pid"), attempts=jobs.c.attempts + 1, progress=0).returning(*jobs.c)
        insert = self._insert(jobs)
        self._insert_job = insert.returning(jobs.c.id, sort_by_parameter_order=True)
        self._insert_ignore = insert.on_conflict_do_nothing().returning(jobs.c.id)
        status = sa.bindparam("status", type_=sa.String)
        new_status = sa.case((sa.and_(status == "success", jobs.c.canceled.is_(True)), "canceled"),
                             else_=status)
        finish = jobs.update().where(jobs.c.id == sa.bindparam("job_id")).values(
            status=new_status, finished_at=now, heartbeat=now,
            message=sa.func.coalesce(sa.bindparam("message", type_=sa.Text), jobs.c.message),
            progress=sa.func.coalesce(sa.bindparam("progress", type_=sa.Integer), jobs.c.progress),
        ).returning(jobs.c.status)
        self._finish = {False: finish, True: finish.where(jobs.c.status == "running")}
        self._is_canceled = sa.select(jobs.c.canceled).where(jobs.c.id == sa.bindparam("job_id"))
        self._next_due = sa.select(sa.func.min(jobs.c.run_after)).where(jobs.c.status == "pending")
        if self.dialect == "sqlite":
            self._prepare_hot_path()

    def _prepare_hot_path(self) -> None:
        """SQLite: the same statements, compiled once for plain sqlite3 connections."""
        if self._lock is not None:   # memory://: its one connection, under its lock
            raw = self.engine.raw_connection()
            self._hot = HotPath(None, shared=raw.driver_connection, lock=self._lock)
            raw.close()
        elif self.engine.url.database not in (None, "", ":memory:"):
            self._hot = HotPath(self.engine.url.database)
        else:
            return
        dialect = self.engine.dialect
        self._hot_insert = Statement(self._insert_job, dialect,
                                     column_keys=[c.name for c in jobs.columns if c.name != "id"])
        self._hot_claim = Statement(self._claim, dialect)
        self._hot_finish = {k: Statement(v, dialect) for k, v in self._finish.items()}
        self._hot_is_canceled = Statement(self._is_canceled, dialect)
        self._hot_next_due = Statement(self._next_due, dialect)

    def schema_version(self) -> int:
        with self._tx(write=False) as conn:
            q = sa.select(meta.c.value).where(meta.c.key == "schema_version")
            return int(conn.execute(q).scalar_one())

    def close(self) -> None:
        if self._hot is not None:
            self._hot.close()
        self.engine.dispose()

    def after_fork(self) -> None:
        """Drop connections inherited from a parent process (processes executor)."""
        if self._hot is not None:
            self._hot.forget()
        self.engine.dispose(close=False)

    def _insert(self, table):
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    # -- sites ----------------------------------------------------------------

    def ensure_site(self, site: str) -> None:
        with self._tx() as conn:
            self._ensure_site(conn, site)

    def _ensure_site(self, conn, site: str) -> None:
        conn.execute(self._insert(sites).values(name=site, marked=False, activated=True, version=0)
                     .on_conflict_do_nothing())

    def _bump(self, conn, site: str) -> int:
        self._ensure_site(conn, site)
        conn.execute(sites.update().where(sites.c.name == site).values(version=sites.c.version + 1))
        return conn.execute(sa.select(sites.c.version).where(sites.c.name == site)).scalar_one()

    def sites(self) -> list[dict]:
        with self._tx(write=False) as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(sites).order_by(sites.c.name))]

    def mark_site(self, site: str, marked: bool = True) -> None:
        with self._tx() as conn:
            self._ensure_site(conn, site)
            conn.execute(sites.update().where(sites.c.name == site).values(marked=marked))

    def marked_sites(self) -> list[str]:
        with self._tx(write=False) as conn:
            return list(conn.execute(sa.select(sites.c.name).where(sites.c.marked.is_(True))
                                     .order_by(sites.c.name)).scalars())

    # -- crontabs -------------------------------------------------------------

    def crontab_version(self, site: str) -> int:
        with self._tx(write=False) as conn:
            return conn.execute(sa.select(sites.c.version).where(sites.c.name == site)).scalar() or 0

    def load_crontab(self, site: str, uid: str | None = None) -> dict:
        """Return {version, activated, crons: [cron dict + logs]} (one cron if ``uid``)."""
        with self._tx(write=False) as conn:
            head = conn.execute(sa.select(sites.c.version, sites.c.activated)
                                .where(sites.c.name == site)).first()
            q = sa.select(crons).where(crons.c.site == site).order_by(crons.c.position)
            lq = sa.select(logs).where(logs.c.site == site).order_by(logs.c.id.desc())
            if uid is not None:
                q = q.where(crons.c.uid == uid)
                lq = lq.where(logs.c.cron_uid == uid)
            rows = conn.execute(q).all()
            log_rows = conn.execute(lq).all()
        by_uid: dict[str, list] = {}
        for r in log_rows:
            by_uid.setdefault(r.cron_uid, []).append(
                {"id": r.id, "date": r.date, "status": r.status, "messages": json.loads(r.messages)})
        out = []
        for r in rows:
            data = {c: getattr(r, c) for c in CRON_COLUMNS}
            data["environ"] = json.loads(data["environ"])
            data["logs"] = by_uid.get(r.uid, [])
            data["position"] = r.position
            out.append(data)
        return {"version": head.version if head else 0,
                "activated": bool(head.activated) if head else True, "crons": out}

    def save_crontab(self, site: str, activated: bool | None, upserts: list[dict],
                     deletes: Iterable[str], new_logs: list[tuple[str, dict]],
                     deleted_logs: Iterable[int]) -> tuple[int, list[int]]:
        """Apply one crontab change atomically; return (new version, ids of new logs)."""
        deletes = list(deletes)
        deleted_logs = list(deleted_logs)
        with self._tx() as conn:
            self._ensure_site(conn, site)
            if activated is not None:
                conn.execute(sites.update().where(sites.c.name == site).values(activated=activated))
            if deletes:
                for chunk in _chunks(deletes):
                    conn.execute(crons.delete().where(crons.c.site == site, crons.c.uid.in_(chunk)))
                    conn.execute(logs.delete().where(logs.c.site == site, logs.c.cron_uid.in_(chunk)))
            if upserts:
                rows = [dict(u, site=site, environ=json.dumps(u["environ"])) for u in upserts]
                stmt = self._insert(crons)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[crons.c.site, crons.c.uid],
                    set_={c: stmt.excluded[c] for c in CRON_COLUMNS + ["position"] if c != "uid"})
                for chunk in _chunks(rows, 500):
                    conn.execute(stmt, chunk)
            if deleted_logs:
                for chunk in _chunks(deleted_logs):
                    conn.execute(logs.delete().where(logs.c.site == site, logs.c.id.in_(chunk)))
            ids = []
            for uid, entry in new_logs:
                ids.append(conn.execute(logs.insert().values(
                    site=site, cron_uid=uid, date=entry["date"], status=entry["status"],
                    messages=json.dumps(entry["messages"]))).inserted_primary_key[0])
            limits = {u["uid"]: u["logs_limit"] for u in upserts}
            for uid in {uid for uid, _ in new_logs}:
                self._trim_logs(conn, site, uid, limits.get(uid, 25))
            return self._bump(conn, site), ids

    def _trim_logs(self, conn, site: str, uid: str, limit: int) -> None:
        keep = sa.select(logs.c.id).where(logs.c.site == site, logs.c.cron_uid == uid) \
            .order_by(logs.c.id.desc()).limit(limit)
        conn.execute(logs.delete().where(logs.c.site == site, logs.c.cron_uid == uid,
                                         logs.c.id.not_in(keep.scalar_subquery())))

    def add_log(self, site: str, cron_uid: str, entry: dict, limit: int) -> tuple[int, int]:
        """Append a log to a cron and keep its newest ``limit``; return (id, version)."""
        with self._tx() as conn:
            log_id = conn.execute(logs.insert().values(
                site=site, cron_uid=cron_uid, date=entry["date"], status=entry["status"],
                messages=json.dumps(entry["messages"]))).inserted_primary_key[0]
            self._trim_logs(conn, site, cron_uid, limit)
            return log_id, self._bump(conn, site)

    # -- jobs -----------------------------------------------------------------

    def add_jobs(self, rows: list[dict], ignore_duplicates: bool = False) -> list[int]:
        """Insert jobs in one transaction; return the new ids in order. A duplicate cron
        firing raises DuplicateFiring, or with ``ignore_duplicates`` is skipped (and has
        no id in the result)."""
        if not rows:
            return []
        values = [_job_values(r) for r in rows]
        if len(values) == 1 and not ignore_duplicates and self._hot is not None:
            with self._hot.write(self.url) as conn:
                cur = conn.execute(self._hot_insert.sql, self._hot_insert.args(values[0]))
                return [cur.fetchone()[0]]
        stmt = self._insert_ignore if ignore_duplicates else self._insert_job
        with self._tx() as conn:
            if len(values) == 1:
                res = conn.execute(stmt, values[0]).first()
                return [res[0]] if res else []
            return [r[0] for r in conn.execute(stmt, values)]

    def add_unique_job(self, row: dict) -> tuple[int, bool]:
        """Insert a job unless a pending one has its unique key; return (id, created)."""
        with self._tx() as conn:
            self._lock_unique(conn, row["unique_key"])
            found = conn.execute(sa.select(jobs.c.id).where(
                jobs.c.unique_key == row["unique_key"], jobs.c.status == "pending")
                .order_by(jobs.c.id).limit(1)).scalar()
            if found is not None:
                return found, False
            values = dict(row, payload=json.dumps(row.get("payload") or {}))
            return conn.execute(jobs.insert().values(**values)).inserted_primary_key[0], True

    def get_job(self, job_id: int) -> dict:
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NoSuchJob(f"no job with id {job_id!r}")
        return _job_row(row)

    def _filters(self, q, site=None, cron_uid=None, status=None, type=None):
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

    def list_jobs(self, site=None, cron_uid=None, status=None, type=None,
                  limit: int | None = None, offset: int = 0, oldest_first: bool = False) -> list[dict]:
        q = self._filters(sa.select(jobs), site, cron_uid, status, type)
        q = q.order_by(jobs.c.id if oldest_first else jobs.c.id.desc())
        if limit is not None:
            q = q.limit(limit).offset(offset)
        with self._tx(write=False) as conn:
            return [_job_row(r) for r in conn.execute(q)]

    def count_jobs(self, site=None, cron_uid=None, status=None, type=None) -> int:
        q = self._filters(sa.select(sa.func.count()).select_from(jobs), site, cron_uid, status, type)
        with self._tx(write=False) as conn:
            return conn.execute(q).scalar_one()

    def cron_job_statuses(self, site: str, cron_uid: str) -> set[str]:
        with self._tx(write=False) as conn:
            return set(conn.execute(sa.select(jobs.c.status).distinct().where(
                jobs.c.site == site, jobs.c.cron_uid == cron_uid)).scalars())

    def pending_cron_jobs(self, site: str) -> dict[str, dict]:
        """uid -> {id, signature, run_after, fire_at} of the site's pending cron jobs."""
        q = sa.select(jobs.c.id, jobs.c.cron_uid, jobs.c.signature, jobs.c.run_after, jobs.c.fire_at) \
            .where(jobs.c.site == site, jobs.c.status == "pending", jobs.c.cron_uid.is_not(None))
        out: dict[str, dict] = {}
        with self._tx(write=False) as conn:
            for r in conn.execute(q):
                out.setdefault(r.cron_uid, dict(r._mapping))
        return out

    def running_cron_uids(self, site: str) -> set[str]:
        with self._tx(write=False) as conn:
            return set(conn.execute(sa.select(jobs.c.cron_uid).where(
                jobs.c.site == site, jobs.c.status == "running",
                jobs.c.cron_uid.is_not(None))).scalars())

    def delete_pending_cron_jobs(self, site: str, uids: Iterable[str]) -> int:
        n = 0
        with self._tx() as conn:
            for chunk in _chunks(list(uids)):
                n += conn.execute(jobs.delete().where(
                    jobs.c.site == site, jobs.c.status == "pending",
                    jobs.c.cron_uid.in_(chunk))).rowcount
        return n

    def claim(self, now: datetime, limit: int, worker: str, pid: int | None = None) -> list[dict]:
        """Move up to ``limit`` due pending jobs to RUNNING in one statement: highest
        priority first, then earliest run_after, then submission order. A cron job is
        not claimed while another job of the same cron runs."""
        if limit <= 0:
            return []
        params = {"now": now, "lim": limit, "worker": worker, "pid": pid}
        if self._hot is not None:
            with self._hot.write(self.url) as conn:
                raw = conn.execute(self._hot_claim.sql, self._hot_claim.args(params)).fetchall()
            rows = [_raw_job_row(r) for r in raw]
        else:
            with self._tx() as conn:
                rows = [_job_row(r) for r in conn.execute(self._claim, params)]
        rows.sort(key=lambda r: (-r["priority"], r["run_after"], r["id"]))
        return rows

    def next_due(self) -> datetime | None:
        if self._hot is not None:
            return self._hot.read(self.url, self._hot_next_due, {}, lambda r: from_micros(r[0]))
        with self._tx(write=False) as conn:
            return conn.execute(self._next_due).scalar()

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
                   progress: int | None = None, only_running: bool = True) -> str | None:
        """End a job; with ``only_running`` only a RUNNING job changes. A SUCCESS of a
        job whose cancel was asked ends CANCELED. Return the final status, or None if
        nothing changed."""
        params = {"job_id": job_id, "now": now, "status": str(status), "message": message,
                  "progress": progress}
        if self._hot is not None:
            stmt = self._hot_finish[only_running]
            with self._hot.write(self.url) as conn:
                row = conn.execute(stmt.sql, stmt.args(params)).fetchone()
            return row[0] if row else None
        with self._tx() as conn:
            row = conn.execute(self._finish[only_running], params).first()
        return row[0] if row else None

    def cancel_job(self, job_id: int, now: datetime) -> str:
        """Cancel: a pending job ends CANCELED, a running one gets its flag set.
        Return the job's status after the call."""
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
            return row.status

    def is_canceled(self, job_id: int) -> bool:
        if self._hot is not None:
            return self._hot.read(self.url, self._hot_is_canceled, {"job_id": job_id},
                                  lambda r: bool(r and r[0]))
        with self._tx(write=False) as conn:
            return bool(conn.execute(self._is_canceled, {"job_id": job_id}).scalar())

    def heartbeat(self, job_ids: Iterable[int], now: datetime) -> None:
        ids = list(job_ids)
        if not ids:
            return
        with self._tx() as conn:
            conn.execute(jobs.update().where(jobs.c.id.in_(ids), jobs.c.status == "running")
                         .values(heartbeat=now))

    def stale_jobs(self, before: datetime) -> list[dict]:
        """RUNNING jobs whose last heartbeat is older than ``before``."""
        with self._tx(write=False) as conn:
            return [_job_row(r) for r in conn.execute(sa.select(jobs).where(
                jobs.c.status == "running", jobs.c.heartbeat < before))]

    def running_jobs(self) -> list[dict]:
        with self._tx(write=False) as conn:
            return [_job_row(r) for r in conn.execute(sa.select(jobs).where(jobs.c.status == "running"))]

    def requeue_job(self, job_id: int, run_after: datetime, message: str) -> bool:
        """Put a RUNNING job back to PENDING (a retry); True if it was running."""
        with self._tx() as conn:
            return conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == "running")
                                .values(status="pending", run_after=run_after, message=message,
                                        worker=None, pid=None, heartbeat=None)).rowcount == 1

    def adopt_job(self, job_id: int, attempt: int, owner: str, worker: str, pid: int | None,
                  now: datetime) -> dict | None:
        """Hand a RUNNING job from its claimer ``owner`` to ``worker`` (a remote executor
        process), only if it is still that claim (``attempt``, ``owner``): a message
        delivered twice, late, or after a retry adopts nothing. Return the row or None."""
        with self._tx() as conn:
            row = conn.execute(jobs.update().where(
                jobs.c.id == job_id, jobs.c.status == "running", jobs.c.attempts == attempt,
                jobs.c.worker == owner).values(worker=worker, pid=pid, heartbeat=now)
                .returning(*jobs.c)).first()
        return None if row is None else _job_row(row)

    def remove_job(self, job_id: int) -> None:
        with self._tx() as conn:
            if conn.execute(jobs.delete().where(jobs.c.id == job_id)).rowcount == 0:
                raise NoSuchJob(f"no job with id {job_id!r}")
            conn.execute(history.delete().where(history.c.job_id == job_id))

    def delete_jobs(self, job_ids: Iterable[int]) -> int:
        n = 0
        with self._tx() as conn:
            for chunk in _chunks(list(job_ids)):
                n += conn.execute(jobs.delete().where(jobs.c.id.in_(chunk))).rowcount
                conn.execute(history.delete().where(history.c.job_id.in_(chunk)))
        return n

    def cleanup(self, success_before: datetime | None, all_before: datetime | None) -> int:
        """Delete finished jobs: successful ones finished before ``success_before``,
        any finished one before ``all_before`` (None keeps). Return how many."""
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

    def history(self, job_id: int) -> list[dict]:
        with self._tx(write=False) as conn:
            return [dict(r._mapping) for r in conn.execute(
                sa.select(history.c.date, history.c.status, history.c.comment)
                .where(history.c.job_id == job_id).order_by(history.c.id))]


def _chunks(items: list, size: int = 500) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
