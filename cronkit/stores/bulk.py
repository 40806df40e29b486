"""Many job rows at once: the firings a crontab's sync queues (100,000 crons, 100,000
rows), any batch ``add_jobs`` is given, and the cron jobs a sync reads first.

On SQLite the rows go through the hot path's plain ``sqlite3`` connection in one
``BEGIN IMMEDIATE`` transaction, as one ``executemany`` of a prepared INSERT: none of
SQLAlchemy's per-row work (parameter processing, result objects), and no result row
per job. The ids are read back once, as the range the batch made: ids grow (the
table is AUTOINCREMENT) and the transaction holds the database's write lock, so the
jobs of ids above the largest id before the batch are the batch's, in its order (a
duplicate firing skipped takes no id). Other stores (PostgreSQL) insert through
SQLAlchemy, whose executemany already sends rows in batches.

:func:`pending_and_running_cron_jobs` reads what ``pending_and_running_cron_jobs``
gives, as tuples on the hot path: a sync of 100,000 crons reads 100,000 jobs, and
their few distinct signatures and times are held once each.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from .hotpath import Statement, from_micros, to_db
from .schema import _JOB_DEFAULTS, UTCDateTime, insert, job_values, jobs

if TYPE_CHECKING:
    from .sql import SQLStore

_COLUMNS = [c.name for c in jobs.columns if c.name != "id"]


class FiringRows:
    """The job rows of cron firings, as ``IQueueManager.register_cron_jobs`` queues
    them: for each ``(cron, run_after, fire_at)`` of ``entries`` (fire_at None for a
    forced run) a pending job of site ``site`` made at ``now``.

    Iterated, it gives the rows as ``add_jobs`` takes them (a dict each, made as it is
    read). SQLite's bulk insert reads the crons themselves instead and lays out each
    row as its INSERT's parameters (see ``_FiringInsert``): no dict per firing, which
    was most of the Python a sync of 100,000 crons did."""

    __slots__ = ("entries", "now", "site")

    #: The columns a firing sets (every other one is NULL, or its default).
    COLUMNS = ("site", "type", "name", "status", "priority", "payload", "run_after",
               "created_at", "cron_uid", "fire_at", "signature", "user", "progress",
               "status_text", "attempts", "canceled")

    def __init__(self, site: str, now: datetime,
                 entries: Sequence[tuple[Any, datetime, datetime | None]]):
        self.site = site
        self.now = now
        self.entries = entries

    def __iter__(self) -> Iterator[dict[str, Any]]:
        site, now = self.site, self.now
        for cron, run_after, fire_at in self.entries:
            yield {"site": site, "type": cron.name, "name": cron.name, "status": "pending",
                   "priority": 0, "payload": cron.environ, "run_after": run_after,
                   "created_at": now, "cron_uid": cron.uid, "fire_at": fire_at,
                   "signature": cron.signature, "user": cron.user, "progress": 0,
                   "status_text": "", "attempts": 0, "canceled": False}


#: The columns of a firing's INSERT: those a firing sets, and those with a default of
#: their own (a column added later with one gets it here too; the others are NULL).
_FIRING_COLUMNS = [c for c in _COLUMNS
                   if c in FiringRows.COLUMNS or _JOB_DEFAULTS.get(c) is not None]


class _FiringInsert:
    """The INSERT of cron firings for the hot path (skipping a duplicate firing), and
    the layout of its parameters straight from ``FiringRows``' crons."""

    def __init__(self, stmt: Any, dialect: Any):
        statement = Statement(stmt, dialect, column_keys=_FIRING_COLUMNS)
        self.sql = statement.sql
        names = statement.names
        self._template = [to_db(_JOB_DEFAULTS.get(n)) for n in names]
        self._at = {n: names.index(n) for n in FiringRows.COLUMNS}

    def args(self, firings: FiringRows) -> Iterator[list[Any]]:
        at = self._at
        template = list(self._template)
        template[at["site"]] = firings.site
        template[at["status"]] = "pending"
        template[at["created_at"]] = to_db(firings.now)
        for name, value in (("priority", 0), ("progress", 0), ("status_text", ""),
                            ("attempts", 0), ("canceled", False)):
            template[at[name]] = value
        i_type, i_name, i_payload = at["type"], at["name"], at["payload"]
        i_run, i_uid, i_fire = at["run_after"], at["cron_uid"], at["fire_at"]
        i_sig, i_user = at["signature"], at["user"]
        # The firings of a sync share a few datetimes (each expression's next time):
        # each is converted once. Keyed by identity: the entries keep them alive.
        seen: dict[int, tuple[Any, Any]] = {}
        dumps = json.dumps
        for cron, run_after, fire_at in firings.entries:
            values = template.copy()
            values[i_type] = values[i_name] = cron.name
            environ = cron.environ
            if environ:
                values[i_payload] = dumps(environ)
            else:
                values[i_payload] = "{}"
            known = seen.get(id(run_after))
            if known is None or known[0] is not run_after:
                known = seen[id(run_after)] = (run_after, to_db(run_after))
            values[i_run] = known[1]
            if fire_at is not None:
                if fire_at is not run_after:
                    known = seen.get(id(fire_at))
                    if known is None or known[0] is not fire_at:
                        known = seen[id(fire_at)] = (fire_at, to_db(fire_at))
                values[i_fire] = known[1]
            values[i_uid] = cron.uid
            values[i_sig] = cron.signature
            values[i_user] = cron.user
            yield values

_LAST_ID = f"SELECT max(id) FROM {jobs.name}"
_IDS_AFTER = f"SELECT id FROM {jobs.name} WHERE id > ? ORDER BY id"

class _Insert:
    """One INSERT for the hot path, with no RETURNING, and how to lay out a job row's
    parameters for it (those Statement.args gives, without its per-column checks)."""

    def __init__(self, stmt: Any, dialect: Any):
        statement = Statement(stmt, dialect, column_keys=_COLUMNS)
        self.sql = statement.sql
        self._get = itemgetter(*statement.names)
        self._times = [i for i, n in enumerate(statement.names) if n in _TIMES]

    def args(self, rows: Iterable[dict[str, Any]]) -> Iterator[list[Any]]:
        get, times = self._get, self._times
        # The rows of a sync share a few datetimes (its now, each expression's next
        # time): each is converted once. Keyed by identity: the rows keep them alive.
        seen: dict[int, tuple[Any, Any]] = {}
        for row in rows:
            values = list(get(job_values(row)))
            for i in times:
                value = values[i]
                if value is not None:
                    known = seen.get(id(value))
                    if known is None or known[0] is not value:
                        known = seen[id(value)] = (value, to_db(value))
                    values[i] = known[1]
            yield values


#: The columns of datetimes (integer microseconds in the database).
_TIMES = frozenset(c.name for c in jobs.columns if isinstance(c.type, UTCDateTime))
#: Each store's INSERTs (plain, skipping a duplicate firing, of firings), compiled once.
_COMPILED: WeakKeyDictionary[Any, tuple[_Insert, _Insert, _FiringInsert]] = WeakKeyDictionary()


def _inserts(store: SQLStore) -> tuple[_Insert, _Insert, _FiringInsert]:
    found = _COMPILED.get(store)
    if found is None:
        stmt, dialect = insert(store.dialect, jobs), store.engine.dialect
        ignoring = stmt.on_conflict_do_nothing()
        found = _COMPILED[store] = (_Insert(stmt, dialect), _Insert(ignoring, dialect),
                                    _FiringInsert(ignoring, dialect))
    return found


def insert_jobs(store: SQLStore, rows: Iterable[dict[str, Any]],
                ignore_duplicates: bool = False) -> list[int]:
    """Insert the job ``rows`` (as ``add_jobs`` takes them) in one transaction; return
    the ids of the new jobs, in the order of ``rows``. With ``ignore_duplicates`` a
    row whose firing is already in the store is skipped (it has no id in the answer);
    without it, such a row refuses the whole batch (DuplicateFiring), nothing inserted.

    ``rows`` may be any iterable, read once: on SQLite each row is laid out as the
    INSERT reaches it, so a generator of 100,000 rows is never held whole (one
    transaction for a whole sync costs half of what transactions of 1,000 rows do)."""
    hot = store._hot
    if hot is None or store._hot_stmts is None:
        values = [job_values(r) for r in rows]
        if not values:
            return []
        stmt = store._stmts.insert_ignore if ignore_duplicates else store._stmts.insert_job
        with store._tx() as conn:
            return [r[0] for r in conn.execute(stmt, values)]
    if isinstance(rows, (list, tuple)) and not rows:
        return []
    inserts = _inserts(store)
    firings: FiringRows | None = None
    if isinstance(rows, FiringRows) and ignore_duplicates:
        firings = rows
    if firings is not None:     # a sync's, or a cron's
        if not firings.entries:
            return []
        sql, args = inserts[2].sql, inserts[2].args(firings)
    else:
        statement = inserts[1] if ignore_duplicates else inserts[0]
        sql, args = statement.sql, statement.args(rows)
    with hot.write(store.url) as conn:
        last = conn.execute(_LAST_ID).fetchone()[0] or 0
        conn.executemany(sql, args)
        return [found for (found,) in conn.execute(_IDS_AFTER, (last,))]


_CRON_JOBS = (f"SELECT id, cron_uid, signature, run_after, fire_at, status FROM {jobs.name} "
              "WHERE site = ? AND status IN ('pending', 'running') AND cron_uid IS NOT NULL "
              "ORDER BY id")


def pending_and_running_cron_jobs(
        store: SQLStore, site: str) -> tuple[dict[str, dict[str, Any]], set[str]] | None:
    """What ``store.pending_and_running_cron_jobs(site)`` gives (the first pending job
    of each cron: id, cron_uid, signature, run_after, fire_at; the uids of the crons
    with a running job), read in one statement (one snapshot) on the hot path; None
    for a store without one (read it through SQLAlchemy)."""
    hot = store._hot
    if hot is None:
        return None
    pending: dict[str, dict[str, Any]] = {}
    running: set[str] = set()
    texts: dict[str, str] = {}
    times: dict[int | None, datetime | None] = {None: None}
    with hot.connection() as conn:
        try:
            for job_id, uid, signature, run_after, fire_at, status in \
                    conn.execute(_CRON_JOBS, (site,)):
                if status == "running":
                    running.add(uid)
                elif uid not in pending:
                    if signature is not None:
                        signature = texts.setdefault(signature, signature)
                    if run_after not in times:
                        times[run_after] = from_micros(run_after)
                    if fire_at not in times:
                        times[fire_at] = from_micros(fire_at)
                    pending[uid] = {"id": job_id, "cron_uid": uid, "signature": signature,
                                    "run_after": times[run_after], "fire_at": times[fire_at]}
        except sqlite3.Error as exc:
            raise store._error(exc) from None
    return pending, running
