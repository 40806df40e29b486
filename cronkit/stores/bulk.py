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

import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from .hotpath import Statement, from_micros, to_db
from .schema import UTCDateTime, insert, job_values, jobs

if TYPE_CHECKING:
    from .sql import SQLStore

_COLUMNS = [c.name for c in jobs.columns if c.name != "id"]
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
#: Each store's two INSERTs (plain, and skipping a duplicate firing), compiled once.
_COMPILED: WeakKeyDictionary[Any, tuple[_Insert, _Insert]] = WeakKeyDictionary()


def _inserts(store: SQLStore) -> tuple[_Insert, _Insert]:
    found = _COMPILED.get(store)
    if found is None:
        stmt, dialect = insert(store.dialect, jobs), store.engine.dialect
        found = _COMPILED[store] = (_Insert(stmt, dialect),
                                    _Insert(stmt.on_conflict_do_nothing(), dialect))
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
    statement = _inserts(store)[1 if ignore_duplicates else 0]
    with hot.write(store.url) as conn:
        last = conn.execute(_LAST_ID).fetchone()[0] or 0
        conn.executemany(statement.sql, statement.args(rows))
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
