"""The SQL schema of the store (SQLAlchemy Core, one for SQLite and PostgreSQL), its
versioned migrations, and the conversion of job rows between Python and the database.

Datetimes are stored as integer microseconds since the epoch (UTC): portable, exact,
and ordered the same way in every database. A cron firing is unique on (site, cron
uid, scheduled time) by the ``ux_cronkit_jobs_firing`` index.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..exceptions import StoreError
from .hotpath import from_micros, to_micros

# Every change of the tables below (a column, an index, a constraint) bumps this and adds
# a migration to MIGRATIONS: tests/contracts/test_schema.py holds a database made by
# version 1 and fails when migrating it does not give what a fresh database gets.
SCHEMA_VERSION = 8

T = TypeVar("T")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes stored as integer microseconds since the epoch (UTC)."""

    impl = sa.BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> int | None:
        return None if value is None else to_micros(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
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
    # Version 3: the periodicity read seconds first, and what the engine reads (H and R
    # drawn once, the fields in cronkit's order); NULL in rows older than version 3.
    sa.Column("seconds_first", sa.Boolean),
    sa.Column("expanded", sa.String(300)),
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
    # Version 4: what a runner returned (JSON text), and the jobs a continuation waits
    # for (a JSON list of ids; NULL for a job that waits for none).
    sa.Column("result", sa.Text),
    sa.Column("after_ids", sa.Text),
    # Version 7: the W3C trace context (``traceparent``) of the span that submitted the
    # job, so that its run, in whichever process, continues that trace (NULL: none).
    sa.Column("trace", sa.String(200)),
    sa.Index("ix_cronkit_jobs_due", "status", "run_after"),
    sa.Index("ix_cronkit_jobs_site", "site", "status", "id"),
    sa.Index("ix_cronkit_jobs_site_id", "site", "id"),
    sqlite_autoincrement=True,
)


def _partial(name: str, *columns: str, where: str, unique: bool = False) -> sa.Index:
    """An index of only the jobs ``where`` holds (the column named is not NULL): a job
    without that column costs the index nothing, at its insert or at any change."""
    cond = jobs.c[where].is_not(None)
    return sa.Index(name, *(jobs.c[c] for c in columns), unique=unique, sqlite_where=cond,
                    postgresql_where=cond)


# Version 6: partial, these three index only the jobs they are for (a cron firing, a
# unique submission, a started job): a plain job's insert writes four index entries
# fewer, and a single-job commit as many pages fewer.
_partial("ux_cronkit_jobs_firing", "site", "cron_uid", "fire_at", where="cron_uid", unique=True)
_partial("ix_cronkit_jobs_unique", "unique_key", where="unique_key")
# Version 5: a rate-limited type's starts within its window, counted at each claim.
_partial("ix_cronkit_jobs_started", "type", "started_at", where="started_at")
# Version 8: the ended jobs by end time: the dashboard's charts (``count_ends``,
# ``job_timings``) read only the hour or day they show, and ``cleanup`` only what it drops.
_partial("ix_cronkit_jobs_finished", "finished_at", where="finished_at")

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

# Version 4: paused queues: a site's whole queue (type "") or one job type of it.
pauses = sa.Table(
    "cronkit_pauses", metadata,
    sa.Column("site", sa.String(200), primary_key=True),
    sa.Column("type", sa.String(200), primary_key=True),
    sa.Column("paused_at", UTCDateTime, nullable=False),
)

# Version 7: the workers of the store, each registered by itself and heartbeating: what
# `cronkit workers` and /api/v1/workers show. ``state`` is running, paused, draining or
# stopped; one whose heartbeat is older than its kit's error timeout is reported lost.
workers = sa.Table(
    "cronkit_workers", metadata,
    sa.Column("id", sa.String(300), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("executor", sa.String(50), nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat", UTCDateTime, nullable=False),
    sa.Column("stopped_at", UTCDateTime),
    sa.Column("version", sa.String(50), nullable=False, default=""),
    sa.Column("info", sa.Text, nullable=False, default="{}"),   # JSON: sites, queues...
)

JOB_COLUMNS = [c.name for c in jobs.columns]
CRON_COLUMNS = [c.name for c in crons.columns if c.name not in ("site", "position")]


# -- migrations ---------------------------------------------------------------------------


def _migrate_1(conn: sa.Connection) -> None:
    """Version 1, and every table of a fresh database (at the current version: the
    later migrations then find nothing left to do)."""
    metadata.create_all(conn)


def _index(table: sa.Table, name: str) -> sa.Index:
    return next(ix for ix in table.indexes if ix.name == name)


def _migrate_2(conn: sa.Connection) -> None:
    """Version 2: the two indexes of the job queue added while the version stayed 1, so
    that databases made before them never got them: (site, id) for a site's job list,
    and the claim-order index the claim walks."""
    for name in ("ix_cronkit_jobs_site_id", "ix_cronkit_jobs_claim"):
        _index(jobs, name).create(conn, checkfirst=True)


def _migrate_3(conn: sa.Connection) -> None:
    """Version 3: crons keep whether their periodicity is read seconds first and the
    expression the engine reads (``expanded``): both added, filled for the crons there
    (seconds last, the periodicity itself: no cron before version 3 could draw)."""
    _add_columns(conn, crons, ("seconds_first", "expanded"))
    conn.execute(crons.update().where(crons.c.expanded.is_(None))
                 .values(expanded=crons.c.periodicity, seconds_first=False))


def _add_columns(conn: sa.Connection, table: sa.Table, names: tuple[str, ...]) -> None:
    have = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    for column in names:
        if column not in have:
            kind = table.c[column].type.compile(conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {column} {kind}"))


def _migrate_4(conn: sa.Connection) -> None:
    """Version 4: a job's result and the jobs a continuation waits for (both NULL for
    the jobs there), and the table of paused queues."""
    _add_columns(conn, jobs, ("result", "after_ids"))
    pauses.create(conn, checkfirst=True)


def _migrate_5(conn: sa.Connection) -> None:
    """Version 5: the (type, started_at) index a rate-limited claim counts starts with."""
    _index(jobs, "ix_cronkit_jobs_started").create(conn, checkfirst=True)


def _migrate_6(conn: sa.Connection) -> None:
    """Version 6: the firing, unique-key and started indexes made partial (see above)."""
    for name in ("ux_cronkit_jobs_firing", "ix_cronkit_jobs_unique", "ix_cronkit_jobs_started"):
        conn.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
        _index(jobs, name).create(conn)


def _migrate_7(conn: sa.Connection) -> None:
    """Version 7: a job's trace context (NULL for the jobs there), the workers table."""
    _add_columns(conn, jobs, ("trace",))
    workers.create(conn, checkfirst=True)


def _migrate_8(conn: sa.Connection) -> None:
    """Version 8: the (partial) end-time index of the ended jobs (see above)."""
    _index(jobs, "ix_cronkit_jobs_finished").create(conn, checkfirst=True)


# Versioned schema: MIGRATIONS[n] brings a database from version n to n + 1. Each one is
# idempotent (it creates only what is missing), as _migrate_1 makes the latest tables.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {0: _migrate_1, 1: _migrate_2,
                                                          2: _migrate_3, 3: _migrate_4,
                                                          4: _migrate_5, 5: _migrate_6,
                                                          6: _migrate_7, 7: _migrate_8}


def read_version(value: Any, url: str) -> int:
    """The schema version stored as ``value``; StoreError when it is not one."""
    try:
        version = int(value)
    except (TypeError, ValueError):
        version = -1
    if version < 0:
        raise StoreError(f"store {url!r} has a corrupt schema version {str(value)[:40]!r}: "
                         "not a cronkit database, or a damaged one")
    return version


def stored_version(conn: sa.Connection, url: str) -> int | None:
    """The schema version the database of ``conn`` records, read without writing
    anything (a read-only store opens with this alone); None when it records none (a
    new or foreign database). StoreError when the value is corrupt."""
    if not sa.inspect(conn).has_table(meta.name):
        return None
    row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
    return None if row is None else read_version(row[0], url)


def migrate(conn: sa.Connection, url: str) -> int:
    """Bring the database of ``conn`` to SCHEMA_VERSION inside the caller's transaction;
    return the version it had. Raise StoreError when it is newer than this cronkit."""
    meta.create(conn, checkfirst=True)
    row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
    found = version = read_version(row[0], url) if row else 0
    if version > SCHEMA_VERSION:
        raise StoreError(f"store {url!r} has schema version {version}, newer than "
                         f"this cronkit ({SCHEMA_VERSION}): upgrade cronkit")
    while version < SCHEMA_VERSION:
        MIGRATIONS[version](conn)
        version += 1
    if row is None:
        conn.execute(meta.insert().values(key="schema_version", value=str(version)))
    elif found != version:
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(version)))
    return found


# -- rows ---------------------------------------------------------------------------------

_JOB_DEFAULTS: dict[str, Any] = {c.name: None for c in jobs.columns if c.name != "id"}
_JOB_DEFAULTS.update(priority=0, progress=0, status_text="", attempts=0, canceled=False)
_TIME_COLUMNS = [c.name for c in jobs.columns if isinstance(c.type, UTCDateTime)]


def job_values(row: dict[str, Any]) -> dict[str, Any]:
    """A job row as given to ``add_jobs`` as the values of its INSERT (every column)."""
    values = dict(_JOB_DEFAULTS)
    values.update(row)
    payload = row.get("payload")
    values["payload"] = json.dumps(payload) if payload else "{}"
    result = row.get("result")
    values["result"] = None if result is None else json.dumps(result)
    after = row.get("after_ids")
    values["after_ids"] = json.dumps(after) if after else None
    return values


def _read_json_columns(data: dict[str, Any]) -> dict[str, Any]:
    data["payload"] = json.loads(data["payload"])
    data["canceled"] = bool(data["canceled"])
    for name in ("result", "after_ids"):
        if data[name] is not None:
            data[name] = json.loads(data[name])
    return data


def job_row(row: sa.Row[Any]) -> dict[str, Any]:
    """A job row read through SQLAlchemy as the store returns it."""
    return _read_json_columns(dict(row._mapping))


def raw_job_row(values: Sequence[Any]) -> dict[str, Any]:
    """A job row read on the hot path (a plain tuple in column order) as job_row's dict."""
    data = dict(zip(JOB_COLUMNS, values, strict=True))
    for name in _TIME_COLUMNS:
        data[name] = from_micros(data[name])
    return _read_json_columns(data)


def claim_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows sorted as they are claimed: priority, then run_after, then submission order."""
    rows.sort(key=lambda r: (-r["priority"], r["run_after"], r["id"]))
    return rows


def insert(dialect: str, table: sa.Table) -> Any:
    """The dialect's INSERT (with ON CONFLICT) for ``table``."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def chunks(items: list[T], size: int = 500) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size``: IN lists and batches stay bounded."""
    for i in range(0, len(items), size):
        yield items[i:i + size]
