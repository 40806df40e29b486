"""The SQL store's sites and crontabs: the CrontabStore half of SQLStore.

A crontab is saved as one transaction that bumps its site's version, so a reader can
tell with one cheap query whether what it holds is still current.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from .base import CronRow, CrontabData, CrontabStore, LogEntry, SiteRow
from .hotpath import from_micros
from .schema import CRON_COLUMNS, chunks, crons, insert, logs, sites

# -- SQLite: whole crontabs in plain sqlite3 statements -----------------------------------
# A crontab of 100,000 crons is read and written in one transaction of SQLAlchemy's, but
# its rows go through the driver connection of that transaction (one prepared statement
# run for every row, tuples read back): SQLAlchemy's per-row work is most of the cost.


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


#: The cron columns as the SQLite statements below read and write them.
_CRON_COLUMNS = tuple(CRON_COLUMNS)
_UPSERT_COLUMNS = ("site", "position", *_CRON_COLUMNS)
_UPSERT_SQL = (
    f"INSERT INTO {_quoted(crons.name)} ({', '.join(map(_quoted, _UPSERT_COLUMNS))}) "
    f"VALUES ({', '.join('?' * len(_UPSERT_COLUMNS))}) "
    f"ON CONFLICT ({_quoted('site')}, {_quoted('uid')}) DO UPDATE SET "
    + ", ".join(f"{_quoted(c)} = excluded.{_quoted(c)}" for c in _UPSERT_COLUMNS
                if c not in ("site", "uid")))
_SELECT_CRONS = (f"SELECT {', '.join(map(_quoted, (*_CRON_COLUMNS, 'position')))} "
                 f"FROM {_quoted(crons.name)} WHERE site = ?")
#: _SELECT_CRONS without the (site, uid) index: a scan of the table.
_SCAN_CRONS = _SELECT_CRONS.replace("WHERE site = ?", "WHERE +site = ?")
_COUNT_SITES = f"SELECT count(*) FROM {_quoted(sites.name)}"
_SELECT_LOGS = (f"SELECT id, cron_uid, date, status, messages FROM {_quoted(logs.name)} "
                "WHERE site = ?")


def _environ_text(environ: Any) -> str:
    return "{}" if not environ and isinstance(environ, dict) else json.dumps(environ)


def _environ_value(text: str) -> Any:
    return {} if text == "{}" else json.loads(text)


_ROW_VALUES = itemgetter("position", *_CRON_COLUMNS)
_ENVIRON = _UPSERT_COLUMNS.index("environ")


def _upsert_args(site: str, upserts: list[CronRow]) -> Iterator[list[Any]]:
    """The parameters of _UPSERT_SQL for each row, made as the statement runs: a crontab
    of 100,000 crons is never copied whole. A column a row lacks is NULL. A row that
    gives its values as one tuple (``row``, in the order of its class's ``KEYS``: the
    model's CronRecord) is laid out from it, not read key by key."""
    kind: type | None = None
    layout: Any = False
    for u in upserts:
        if type(u) is not kind:
            kind = type(u)
            layout = _layout(kind)
        if layout:
            values = [site, *layout(u.row)]     # type: ignore[attr-defined]
        else:
            try:
                values = [site, *_ROW_VALUES(u)]
            except KeyError:
                values = [site, u["position"], *[u.get(c) for c in _CRON_COLUMNS]]
        values[_ENVIRON] = _environ_text(values[_ENVIRON])
        yield values


@lru_cache(maxsize=8)
def _layout(kind: type) -> Any:
    """How to take _UPSERT_COLUMNS (after ``site``) from the ``row`` of a row of class
    ``kind``; False when it has no ``row`` or its ``KEYS`` lack a column."""
    keys = getattr(kind, "KEYS", None)
    if not isinstance(keys, tuple) or not isinstance(getattr(kind, "row", None), property):
        return False
    try:
        return itemgetter(*(keys.index(c) for c in _UPSERT_COLUMNS[1:]))
    except ValueError:
        return False


#: The columns _SELECT_CRONS reads, in order.
_READ_COLUMNS = (*_CRON_COLUMNS, "position")
_READ_INDEX = {name: i for i, name in enumerate(_READ_COLUMNS)}
#: Texts most crons of a crontab share (one runner's name, a few expressions): each held
#: once, however many rows show it.
_SHARED = tuple(_READ_INDEX[c] for c in
                ("name", "periodicity", "expanded", "timezone", "user", "misfire"))
_BOOLEAN = tuple(_READ_INDEX[c] for c in ("activated", "seconds_first"))
_ENVIRON_AT = _READ_INDEX["environ"]


#: Where ``StoredCron.fields`` finds each key: the columns read, then the logs.
_FIELD_INDEX = {**_READ_INDEX, "logs": len(_READ_COLUMNS)}
_GETTERS: dict[tuple[str, ...], tuple[Any, int]] = {}


class StoredCron(Mapping[str, Any]):
    """A cron row as ``load_crontab`` gives it on SQLite: a read-only mapping (the
    cron's columns, ``position`` and ``logs``) over the values SQLite gave, not a dict:
    reading a crontab holds all of its rows at once, and a dict per cron was most of
    what reading 100,000 crons took. Its ``environ`` is decoded from the stored JSON
    text on each read (a new dict each time, which its reader may keep).
    ``fields(names)`` gives the values of several keys in one call."""

    __slots__ = ("_logs", "_values")

    KEYS = (*_READ_COLUMNS, "logs")

    def __init__(self, values: tuple[Any, ...], logs: list[LogEntry] | None):
        self._values = values
        self._logs = logs

    @classmethod
    def read(cls, row: tuple[Any, ...], logs: list[LogEntry] | None) -> StoredCron:
        """The row of the tuple ``row`` SQLite gave (the columns of _SELECT_CRONS)."""
        values = list(row)
        for i in _BOOLEAN:
            if values[i] is not None:
                values[i] = bool(values[i])
        for i in _SHARED:
            if values[i] is not None:
                values[i] = sys.intern(values[i])
        if values[_ENVIRON_AT] == "{}":
            values[_ENVIRON_AT] = "{}"
        return cls(tuple(values), logs)

    def fields(self, names: tuple[str, ...]) -> list[Any]:
        """The values of the keys ``names`` (as ``[self[n] for n in names]`` gives
        them), taken at once: a reader of 100,000 rows asks for them so."""
        getter = _GETTERS.get(names)
        if getter is None:
            getter = _GETTERS[names] = (itemgetter(*(_FIELD_INDEX[n] for n in names)),
                                        names.index("environ") if "environ" in names else -1)
        take, environ_at = getter
        out = list(take((*self._values, self._logs if self._logs is not None else [])))
        if environ_at >= 0:
            out[environ_at] = _environ_value(out[environ_at])
        return out

    def __getitem__(self, key: str) -> Any:
        if key == "logs":
            return self._logs if self._logs is not None else []
        i = _READ_INDEX[key]
        if i == _ENVIRON_AT:
            return _environ_value(self._values[i])
        return self._values[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    def __repr__(self) -> str:
        return f"StoredCron({dict(self)!r})"


@contextmanager
def _driver_errors(sql: str) -> Iterator[None]:
    """sqlite3's errors as SQLAlchemy's, which the store's transaction turns into its own."""
    try:
        yield
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, None, exc, sqlite3.Error) from None


class CrontabQueries(CrontabStore):
    """Sites and crontabs on SQLAlchemy Core; mixed into SQLStore, which gives the
    transactions."""

    dialect: str

    @abstractmethod
    def _tx(self, write: bool = True) -> AbstractContextManager[sa.Connection]:
        """One transaction (a write one unless ``write`` is false)."""

    # -- sites ----------------------------------------------------------------

    def ensure_site(self, site: str) -> None:
        with self._tx() as conn:
            self._ensure_site(conn, site)

    def _ensure_site(self, conn: sa.Connection, site: str) -> None:
        conn.execute(insert(self.dialect, sites)
                     .values(name=site, marked=False, activated=True, version=0)
                     .on_conflict_do_nothing())

    def _bump(self, conn: sa.Connection, site: str) -> int:
        self._ensure_site(conn, site)
        conn.execute(sites.update().where(sites.c.name == site).values(version=sites.c.version + 1))
        return conn.execute(sa.select(sites.c.version).where(sites.c.name == site)).scalar_one()

    def sites(self) -> list[SiteRow]:
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

    def load_crontab(self, site: str, uid: str | None = None) -> CrontabData:
        with self._tx(write=False) as conn:
            head = conn.execute(sa.select(sites.c.version, sites.c.activated)
                                .where(sites.c.name == site)).first()
            out: list[Any] = (self._load_crons_sqlite(conn, site, uid)
                              if self.dialect == "sqlite" else self._load_crons(conn, site, uid))
        return {"version": head.version if head else 0,
                "activated": bool(head.activated) if head else True, "crons": out}

    def _load_crons(self, conn: sa.Connection, site: str, uid: str | None) -> list[CronRow]:
        q = sa.select(crons).where(crons.c.site == site).order_by(crons.c.position)
        lq = sa.select(logs).where(logs.c.site == site).order_by(logs.c.id.desc())
        if uid is not None:
            q = q.where(crons.c.uid == uid)
            lq = lq.where(logs.c.cron_uid == uid)
        rows = conn.execute(q).all()
        log_rows = conn.execute(lq).all()
        by_uid: dict[str, list[LogEntry]] = {}
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
        return out

    def _load_crons_sqlite(self, conn: sa.Connection, site: str,
                           uid: str | None) -> list[StoredCron]:
        """load_crontab's crons on the transaction's own sqlite3 connection."""
        raw = conn.connection.driver_connection
        assert raw is not None
        args: tuple[Any, ...] = (site,) if uid is None else (site, uid)
        log_sql = _SELECT_LOGS + (" AND cron_uid = ?" if uid is not None else "") \
            + " ORDER BY id DESC"
        if uid is not None:
            cron_sql = _SELECT_CRONS + " AND uid = ? ORDER BY position"
        else:
            with _driver_errors(_COUNT_SITES):
                (n_sites,) = raw.execute(_COUNT_SITES).fetchone()
            # The crons of the only site are all the crons: read in the table's order,
            # not looked up one by one from the (site, uid) index (half the reading).
            cron_sql = (_SCAN_CRONS if n_sites <= 1 else _SELECT_CRONS) + " ORDER BY position"
        by_uid: dict[str, list[LogEntry]] = {}
        with _driver_errors(log_sql):
            for log_id, cron_uid, date, status, messages in raw.execute(log_sql, args):
                by_uid.setdefault(cron_uid, []).append(
                    {"id": log_id, "date": from_micros(date), "status": status,
                     "messages": json.loads(messages)})
        uid_at = _READ_INDEX["uid"]
        with _driver_errors(cron_sql):
            return [StoredCron.read(values, by_uid.get(values[uid_at]))
                    for values in raw.execute(cron_sql, args)]

    def save_crontab(self, site: str, activated: bool | None, upserts: list[CronRow],
                     deletes: Iterable[str], new_logs: list[tuple[str, LogEntry]],
                     deleted_logs: Iterable[int]) -> tuple[int, list[int]]:
        deletes = list(deletes)
        deleted_logs = list(deleted_logs)
        with self._tx() as conn:
            self._ensure_site(conn, site)
            if activated is not None:
                conn.execute(sites.update().where(sites.c.name == site).values(activated=activated))
            for chunk in chunks(deletes):
                conn.execute(crons.delete().where(crons.c.site == site, crons.c.uid.in_(chunk)))
                conn.execute(logs.delete().where(logs.c.site == site, logs.c.cron_uid.in_(chunk)))
            if upserts and self.dialect == "sqlite":
                raw = conn.connection.driver_connection
                assert raw is not None
                with _driver_errors(_UPSERT_SQL):
                    raw.executemany(_UPSERT_SQL, _upsert_args(site, upserts))
            elif upserts:
                stmt = insert(self.dialect, crons)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[crons.c.site, crons.c.uid],
                    set_={c: stmt.excluded[c] for c in CRON_COLUMNS + ["position"] if c != "uid"})
                for batch in chunks(upserts):
                    conn.execute(stmt, [dict(u, site=site, environ=json.dumps(u["environ"]))
                                        for u in batch])
            for some in chunks(deleted_logs):
                conn.execute(logs.delete().where(logs.c.site == site, logs.c.id.in_(some)))
            ids = [self._insert_log(conn, site, uid, entry) for uid, entry in new_logs]
            logged = {uid for uid, _ in new_logs}
            limits = {u["uid"]: u["logs_limit"] for u in upserts if u["uid"] in logged} \
                if logged else {}
            for uid in logged:
                self._trim_logs(conn, site, uid, limits.get(uid, 25))
            return self._bump(conn, site), ids

    def _insert_log(self, conn: sa.Connection, site: str, uid: str, entry: LogEntry) -> int:
        key: Any = conn.execute(logs.insert().values(
            site=site, cron_uid=uid, date=entry["date"], status=entry["status"],
            messages=json.dumps(entry["messages"]))).inserted_primary_key
        return int(key[0])

    def _trim_logs(self, conn: sa.Connection, site: str, uid: str, limit: int) -> None:
        keep = sa.select(logs.c.id).where(logs.c.site == site, logs.c.cron_uid == uid) \
            .order_by(logs.c.id.desc()).limit(limit)
        conn.execute(logs.delete().where(logs.c.site == site, logs.c.cron_uid == uid,
                                         logs.c.id.not_in(keep.scalar_subquery())))

    def add_log(self, site: str, cron_uid: str, entry: LogEntry, limit: int) -> tuple[int, int]:
        with self._tx() as conn:
            log_id = self._insert_log(conn, site, cron_uid, entry)
            self._trim_logs(conn, site, cron_uid, limit)
            return log_id, self._bump(conn, site)
