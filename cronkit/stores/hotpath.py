"""The SQLite hot path: the statements every job goes through (insert, claim, finish,
the cancel check, the next due time) run on plain ``sqlite3`` connections.

The SQL is the one SQLAlchemy compiles from the store's statements, compiled once; only
the per-call machinery is skipped (connection checkout, events, result objects), which
is most of the cost of a statement that SQLite itself runs in some ten microseconds.
Parameters stay bound (``?``), never formatted into the SQL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from ..exceptions import DuplicateFiring, StoreError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The page cache of each hot-path connection, in KiB (SQLite's default is 2,000).
CACHE_KIB = 8192


def to_micros(value: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (UTC), exactly."""
    if value.tzinfo is None:
        raise StoreError(f"naive datetime {value!r} given to the store")
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def to_db(value: Any) -> Any:
    """A Python value as the store keeps it: datetimes as ``UTCDateTime`` does, the rest
    as is (sqlite3 binds booleans as 0/1)."""
    return to_micros(value) if isinstance(value, datetime) else value


def from_micros(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + timedelta(microseconds=value)


def refused(url: str, reason: object) -> StoreError:
    """The error for a change the database refused: DuplicateFiring when the (site,
    cron uid, scheduled time) key refused the row, else a StoreError naming the store."""
    text = str(reason)
    if "ux_cronkit_jobs_firing" in text or "cronkit_jobs.fire_at" in text:
        return DuplicateFiring(f"duplicate cron firing refused by the store: {text}")
    return StoreError(f"store {url!r} refused the change: {text}")


class Statement:
    """One compiled statement: its SQL and how to lay out its positional parameters.

    An expanding parameter (``IN`` of a list) is laid out by ``bind``: its list gives as
    many ``?`` as it has items (the SQL of each length is made once)."""

    def __init__(self, stmt: Any, dialect: Any, **compile_kw: Any):
        compiled = stmt.compile(dialect=dialect, **compile_kw)
        self.sql = str(compiled)
        self.names = tuple(compiled.positiontup or ())
        # Literals of the statement ("pending", LIMIT's offset...) are bound too.
        self.fixed = {name: to_db(bind.effective_value) for name, bind in compiled.binds.items()}
        self.expanding = tuple(n for n in self.names if f"__[POSTCOMPILE_{n}]" in self.sql)
        self._sized: dict[tuple[int, ...], str] = {}

    def args(self, params: dict) -> list:
        fixed = self.fixed
        return [to_db(params[n]) if n in params else fixed[n] for n in self.names]

    def bind(self, params: dict) -> tuple[str, list]:
        """The SQL and positional arguments for ``params``, lists expanded."""
        if not self.expanding:
            return self.sql, self.args(params)
        sizes = tuple(len(params[n]) for n in self.expanding)
        sql = self._sized.get(sizes)
        if sql is None:
            sql = self.sql
            for name, size in zip(self.expanding, sizes, strict=True):
                sql = sql.replace(f"__[POSTCOMPILE_{name}]", ", ".join("?" * size) or "SELECT NULL WHERE 0")
            self._sized[sizes] = sql
        args: list = []
        fixed = self.fixed
        for n in self.names:
            if n in self.expanding:
                args.extend(to_db(v) for v in params[n])
            else:
                args.append(to_db(params[n]) if n in params else fixed[n])
        return sql, args


class HotPath:
    """Plain ``sqlite3`` connections to the store's database, for the hot statements.

    File databases get a small pool of their own connections, made by ``connect`` (WAL
    lets them share the file with SQLAlchemy's); ``memory://`` shares its single
    connection and lock. ``error`` turns an error of SQLite into the store's (a
    StoreError naming the store by default).
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection] | None,
                 shared: sqlite3.Connection | None = None, lock: threading.RLock | None = None,
                 error: Callable[[sqlite3.Error], StoreError] | None = None):
        self._open = connect
        self._shared = shared
        self._lock = lock
        self._error = error
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        #: Writers of this process take turns here rather than in SQLite's busy
        #: handler, which sleeps in steps of milliseconds between tries.
        self.write_lock = lock or threading.RLock()

    def _fail(self, url: str, exc: sqlite3.Error) -> StoreError:
        if self._error is not None:
            return self._error(exc)
        return StoreError(f"store {url!r}: {exc}" if url else f"store: {exc}")

    def _connect(self) -> sqlite3.Connection:
        if self._open is None:
            raise StoreError("the hot path of a memory:// store has no file to connect to")
        conn: sqlite3.Connection | None = None
        try:
            conn = self._open()
            conn.isolation_level = None
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=60000")
            # A queue of a million jobs keeps its claim path (the claim-order index,
            # the rows at its head) in this connection's cache: the cost of a claim
            # stays flat with the backlog. Pages are held only once read.
            conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise self._fail("", exc) from None
        return conn

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        if self._shared is not None:
            with self._lock:   # type: ignore[union-attr]
                yield self._shared
            return
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._pool_lock:
                keep = not self._closed
                if keep:
                    self._idle.append(conn)
            if not keep:   # the store was closed meanwhile: never close a busy connection
                conn.close()

    @contextmanager
    def write(self, url: str) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction, committed or rolled back; SQLite's
        errors become the store's typed errors."""
        with self.write_lock, self.connection() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError):
                    raise refused(url, exc) from None
                if isinstance(exc, sqlite3.Error):
                    raise self._fail(url, exc) from None
                raise

    def write_one(self, url: str, stmt: Statement, params: dict) -> list[Any]:
        """Run the one statement ``stmt`` as its own transaction (SQLite's autocommit:
        the statement takes the write lock, and its end commits) and return its rows.
        One call into SQLite instead of three (BEGIN IMMEDIATE, it, COMMIT): each call
        lets go of the GIL, and a thread that lets go of it waits for it again behind
        every busy thread of the process."""
        with self.write_lock, self.connection() as conn:
            try:
                return conn.execute(stmt.sql, stmt.args(params)).fetchall()
            except sqlite3.IntegrityError as exc:
                raise refused(url, exc) from None
            except sqlite3.Error as exc:
                raise self._fail(url, exc) from None

    def read(self, url: str, stmt: Statement, params: dict, one: Callable[[Any], Any]) -> Any:
        with self.connection() as conn:
            try:
                return one(conn.execute(stmt.sql, stmt.args(params)).fetchone())
            except sqlite3.Error as exc:
                raise self._fail(url, exc) from None

    def close(self) -> None:
        """Close the idle connections now, and those in use when they are given back."""
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def forget(self, lock: threading.RLock | None = None) -> None:
        """After a fork: the parent's connections are not this process's to use or close
        (a shared connection stays, under ``lock``)."""
        if lock is not None:
            self._lock = lock
        self._pool_lock = threading.Lock()
        self._idle = []
        self._closed = False
