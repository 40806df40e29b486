"""The PostgreSQL store: the SQL store's schema and queries, plus what a shared server
needs when many workers on many hosts use it at once.

- **Wake-ups.** A job insert, a retry (requeue) and a crontab save send ``NOTIFY
  cronkit`` in their own transaction, so the notification leaves exactly when the
  change becomes visible. ``start_listener(callback)`` runs one thread per store
  that ``LISTEN``\\ s on a dedicated psycopg connection and calls the callbacks (a
  worker passes ``kit.wake``); ``wait_for_notify(timeout)`` is the same wait as a
  blocking call. Polling stays the fallback: a lost notification costs one poll.
  A store with ``notify_ends`` set (a Celery worker's) also sends ``NOTIFY
  cronkit_ends`` in the transaction of every job end (``finish_job``, ``finish_jobs``,
  ``requeue_job``): a Celery dispatcher listening there (``start_listener(callback,
  channel=ENDS_CHANNEL)``) frees its slots at once instead of at its next poll.
- **Limits.** A claim that meets a job of a limited type (``max_running``,
  ``rate``) takes one advisory lock for the rest of its transaction before it counts,
  so concurrent claims never spend one type's room twice (``JobQueries.claim``).
  Resuming a paused queue notifies, as queuing a job does.
- **Round trips.** The driver runs in autocommit: a read is its statements alone (READ
  COMMITTED gives each statement its own snapshot, in a transaction or not); a write
  opens its transaction with one simple query that is BEGIN, its NOTIFYs and, for an
  unsafe operation, its transaction id; then its statements, then COMMIT. psycopg
  prepares a statement on the server after its fifth use on a connection.
- **Connection loss.** A pooled connection idle for more than PING_AFTER seconds is
  pinged before use (one in use is not: if it died, its call fails before COMMIT and is
  retried, or raises, as its marking says). What a call does after a lost or refused
  connection (server restart, failover, network cut) follows the marking of its
  operation in ``base.py``, declared per operation:

  - *repeatable* ones are retried as they are, with backoff, for ``retry_for``
    seconds before they raise StoreError;
  - *unsafe* ones are made exactly-once: each runs as one transaction that reads its
    own transaction id with its BEGIN. When the connection is lost before its
    COMMIT was sent, nothing was committed and the call runs again. When the answer
    to the COMMIT is lost, the retry first asks the server whether it committed
    (``pg_xact_status``): if it did, the answer computed before the COMMIT is
    returned and nothing is done again; if it did not, the call runs again. A
    transaction still in progress (its session outlived our end of the connection)
    is ended first, so the question always gets a final answer;
  - any other call (an operation with no marking) is never retried: a lost
    connection raises StoreError.

  The listener reconnects on its own and wakes its callbacks once it has
  (notifications sent meanwhile are gone).
"""

from __future__ import annotations

import functools
import inspect
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.selectable import ScalarSelect
from zope.interface import implementer

from ..exceptions import CronkitError, ReadOnlyStore, StoreError
from ..interfaces import IListeningStore
from .base import REPEATABLE, UNSAFE
from .hotpath import Statement, from_micros, refused
from .jobqueries import _end_params, _max_running, _rate
from .pglisten import CHANNEL, ENDS_CHANNEL, Listening, Notices
from .schema import UTCDateTime, claim_order, job_values, jobs, raw_job_row
from .sql import SQLStore
from .statements import hot_statements

log = logging.getLogger("cronkit.stores.postgres")

T = TypeVar("T")

# pg_advisory_xact_lock key held while the schema is created or migrated ("cronkit").
SCHEMA_LOCK = int.from_bytes(b"cronkit", "big")
# pg_advisory_xact_lock key held by a claim that takes jobs of limited types ("ckLimit").
LIMITS_LOCK = int.from_bytes(b"ckLimit", "big")
# The operations whose commit wakes the listeners of every process.
NOTIFYING = frozenset({"add_jobs", "add_unique_job", "requeue_job", "save_crontab",
                       "resume"})
# The operations that end a RUNNING job (or put it back to PENDING): with
# ``notify_ends`` their commit wakes the listeners of ENDS_CHANNEL, with the payload
# "id:attempt,..." of the jobs the call ends ("id:" where no attempt was given).
ENDING = frozenset({"finish_job", "finish_jobs", "requeue_job"})
# A payload longer than this is sent empty (PostgreSQL's limit is 8000 bytes).
MAX_PAYLOAD = 7000
# Store methods that are no database operation: neither retried nor refused.
LOCAL = frozenset({"close", "after_fork"})
# The operations of every job, run on the driver's connection in two round trips
# (``PostgresStore._pipelined``) when they can be; their general form (SQLAlchemy,
# with its marking's retries) is kept as ``_through_<name>`` for the other cases.
PIPELINED = frozenset({"claim", "add_jobs", "finish_job", "finish_jobs", "next_due",
                       "adopt_job"})
# How long (seconds) the next due time read by a claim stands for ``next_due()``.
NEXT_DUE_FRESH = 0.05
_INSERT_COLUMNS = tuple(c.name for c in jobs.columns if c.name != "id")
# adopt_job: a Celery worker takes the job its dispatcher claimed (the same claim only).
_ADOPT = jobs.update().where(
    jobs.c.id == sa.bindparam("job_id"), jobs.c.status == "running",
    jobs.c.attempts == sa.bindparam("attempt"), jobs.c.worker == sa.bindparam("owner"),
).values(worker=sa.bindparam("worker"), pid=sa.bindparam("pid"),
         heartbeat=sa.bindparam("now", type_=UTCDateTime())).returning(*jobs.c)

# "cannot execute ... in a read-only transaction" (a read-only store, a standby).
READ_ONLY_SQL_TRANSACTION = "25006"

# A pooled connection idle longer than this (seconds) is pinged before it is used; one
# in use is not: if it died, its operation fails before COMMIT and is retried.
PING_AFTER = 1.0
_XACT_STATUS = sa.text("SELECT pg_xact_status(CAST(:xid AS xid8))")
# backend_xid is the 32-bit xid: the low half of the xid8.
_END_XACT = sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE backend_xid::text = :xid32")


class _ConnectionLost(StoreError):
    """A call failed on a lost or refused connection: worth another try. Never leaves
    this module (after ``retry_for`` seconds it becomes a plain StoreError)."""


class _Try:
    """One try of an unsafe operation: its answer, its transaction id (read with its
    BEGIN), and whether its COMMIT was about to be sent."""

    __slots__ = ("committing", "result", "xid")

    def __init__(self) -> None:
        self.result: Any = None
        self.xid: str | None = None
        self.committing = False


def _begin_sql(xid: bool, notices: Notices) -> str:
    """The one round trip that opens a transaction: BEGIN, and in the same simple query
    the NOTIFYs it sends at COMMIT and its transaction id."""
    columns = [f"pg_notify('{channel}', '{payload}')" for channel, payload in notices]
    if xid:
        columns.append("pg_current_xact_id()::text")
    return f"BEGIN; SELECT {', '.join(columns)}" if columns else "BEGIN"


def engine_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` mean psycopg 3 (``postgresql+psycopg://``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        raise StoreError(f"not a PostgreSQL URL: {url!r}")
    if scheme in ("postgresql", "postgres"):
        scheme = "postgresql+psycopg"
    return f"{scheme}://{rest}"


def _transient(exc: DBAPIError) -> bool:
    # OperationalError: refused, lost, admin shutdown, serialization failure, deadlock.
    # InterfaceError: a connection psycopg already knows is closed.
    return bool(exc.connection_invalidated
                or isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)))


def _materialize_locking_in(element: Any) -> Any:
    """``id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`` becomes ``id IN (SELECT id
    FROM due)`` with ``due`` a MATERIALIZED CTE. PostgreSQL may run an IN subquery again
    for every candidate row of the UPDATE; with SKIP LOCKED each run picks other rows,
    and the claim takes more than its LIMIT (seen: three jobs for ``limit=1``). A
    materialized CTE runs once."""
    if (getattr(element, "operator", None) is operators.in_op
            and isinstance(element.right, ScalarSelect)
            and getattr(element.right.element, "_for_update_arg", None) is not None):
        due = element.right.element.cte("cronkit_due").prefix_with("MATERIALIZED")
        return element.left.in_(sa.select(due.c.id))
    return None


def hide_password(text: str, url: str) -> str:
    """``text`` with the store URL ``url`` in it shown without its password."""
    try:
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return text
    return text.replace(url, shown)


@implementer(IListeningStore)
class PostgresStore(Listening, SQLStore):
    """The store for ``postgresql://`` and ``postgresql+psycopg://`` URLs (psycopg 3).

    ``retry_for``: how long (seconds) a call keeps retrying through a lost connection
    before it raises StoreError. ``read_only`` (or ``mode=ro`` in the URL, taken out of
    what psycopg gets): writes are refused with ReadOnlyStore, and the sessions are
    read-only too (``default_transaction_read_only``); a write the server refuses as
    read-only (a standby) is a ReadOnlyStore as well.
    """

    notify_channel = CHANNEL
    ends_channel = ENDS_CHANNEL
    #: Whether the job ends this store writes notify ENDS_CHANNEL (a Celery worker's
    #: store does: its dispatchers listen there, see ``start_listener``).
    notify_ends = False

    def __init__(self, url: str, retry_for: float = 60.0, read_only: bool = False):
        self.retry_for = float(retry_for)
        self._local = threading.local()
        self._init_listener_state()
        try:
            super().__init__(url, read_only=read_only)
        except StoreError as exc:
            if str(exc).startswith("cannot open store"):
                raise StoreError(hide_password(str(exc), url)) from None
            raise StoreError(hide_password(f"cannot open store {url!r}: {exc}", url)) from None

    def _migrate(self) -> None:
        self._retry("opening the store", lambda attempt: SQLStore._migrate(self))

    def _lock_unique(self, conn: sa.Connection, key: str) -> None:
        # Two submissions of one unique job at once: the second waits for the first's
        # commit, then (READ COMMITTED: a new snapshot per statement) finds its job.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})

    def _lock_limits(self, conn: sa.Connection) -> None:
        # Claims run at once (SKIP LOCKED): two that counted a type's running jobs or
        # starts at once would both spend its room. The lock is held to COMMIT, and each
        # count after it (READ COMMITTED) sees what the previous holder claimed.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LIMITS_LOCK})

    def _lock_schema(self, conn: sa.Connection) -> None:
        # Two processes creating the schema of a fresh database at once would clash on
        # PostgreSQL's catalog (pg_type); the second waits here and finds it made.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})

    # -- engine and transactions ----------------------------------------------------

    def _make_engine(self, url: str) -> sa.Engine:
        try:
            self._sa_url = sa.engine.make_url(engine_url(url))
            # Dead peers are noticed by the kernel, not after a two-hour TCP timeout.
            # A connect takes at most what the calls may spend retrying (a one-shot
            # command's few seconds), and 10 s.
            connect_args: dict[str, Any] = {
                "connect_timeout": max(1, min(10, round(self.retry_for))), "keepalives": 1,
                "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
                "application_name": "cronkit"}
            if self.read_only:
                connect_args["options"] = "-c default_transaction_read_only=on"
            # Autocommit at the driver: a read is its one statement (READ COMMITTED gives
            # each statement its own snapshot, in a transaction or not), and a write's
            # transaction opens with our own BEGIN, which brings its transaction id and
            # NOTIFYs in the same round trip (_transaction).
            engine = sa.create_engine(self._sa_url, isolation_level="AUTOCOMMIT",
                                      pool_size=10, max_overflow=20, pool_timeout=60,
                                      connect_args=connect_args)
        except (ImportError, sa.exc.ArgumentError) as exc:
            raise StoreError(f"cannot open store {url!r}: {exc}") from None
        self._ping_when_idle(engine)
        return engine

    @staticmethod
    def _ping_when_idle(engine: sa.Engine) -> None:
        """Ping a pooled connection before use only when it sat idle for PING_AFTER s (a
        server restart, a cut): a ping per transaction would be one more round trip for
        each, on connections used a millisecond ago."""
        @sa.event.listens_for(engine, "checkin")
        def _checkin(_dbapi_conn: Any, record: Any) -> None:
            record.info["idle_since"] = time.monotonic()

        @sa.event.listens_for(engine, "checkout")
        def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
            since = record.info.get("idle_since")
            if since is None or time.monotonic() - since < PING_AFTER:
                return
            try:
                dbapi_conn.execute("SELECT 1")
            except Exception:   # the pool replaces it (up to three times), then raises
                raise sa.exc.DisconnectionError() from None

    def _prepare_statements(self) -> None:
        super()._prepare_statements()
        opts: dict[str, Any] = {}
        self._stmts.claim = visitors.replacement_traverse(
            self._stmts.claim, opts, _materialize_locking_in)  # type: ignore[call-overload]
        self._fast: Any = None
        if not self.read_only:   # compiled once, with positional parameters (%s)
            dialect_class: Any = type(self.engine.dialect)
            dialect = dialect_class(paramstyle="format")
            self._fast = hot_statements(self._stmts, dialect)
            self._fast_insert = {
                False: self._fast.insert,
                True: Statement(self._stmts.insert_ignore, dialect,
                                column_keys=list(_INSERT_COLUMNS))}
            self._fast_adopt = Statement(_ADOPT, dialect)

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[sa.Connection]:
        if write and self.read_only:
            raise self._refusal()
        joined = getattr(self._local, "conn", None)
        if joined is not None:   # inside an exactly-once operation: its one transaction
            yield joined
            return
        with self._transaction(write=write) as conn:
            yield conn

    @contextmanager
    def _transaction(self, attempt: _Try | None = None,
                     write: bool = True) -> Iterator[sa.Connection]:
        """One transaction (a read: no BEGIN, its statements autocommit); with
        ``attempt``, its transaction id is noted in it, read with its BEGIN. The NOTIFYs
        of the operation (``_notifying``) go out at COMMIT, never before."""
        notices = getattr(self._local, "notices", ())
        try:
            with self.engine.connect() as conn:
                with conn.begin():
                    if write or attempt is not None or notices:
                        self._begin(conn, attempt, notices)
                    yield conn
                    if attempt is not None:
                        attempt.committing = True
        except IntegrityError as exc:
            raise refused(self.url, exc.orig) from None
        except DBAPIError as exc:
            raise self._failure(exc.orig, _transient(exc)) from None
        except StatementError as exc:
            if isinstance(exc.orig, CronkitError):  # raised by a type, e.g. a naive datetime
                raise exc.orig from None
            raise

    def _failure(self, orig: BaseException | None, transient: bool) -> StoreError:
        """The store's error for an error of the server or the driver."""
        if getattr(orig, "sqlstate", None) == READ_ONLY_SQL_TRANSACTION:
            return ReadOnlyStore(f"store {self.url!r} is read-only: {orig}")
        if transient:
            return _ConnectionLost(f"store {self.url!r}: {orig}")
        return StoreError(f"store {self.url!r}: {orig}")

    def _begin(self, conn: sa.Connection, attempt: _Try | None,
               notices: Notices) -> None:
        """Open the transaction on the driver's connection in one round trip (a simple
        query: BEGIN, then the NOTIFYs and the transaction id); SQLAlchemy's COMMIT or
        ROLLBACK closes it."""
        import psycopg

        raw = conn.connection.driver_connection
        assert raw is not None, "a connection from the pool has its driver connection"
        try:
            with raw.cursor() as cursor:
                cursor.execute(_begin_sql(attempt is not None, notices))
                if attempt is not None:
                    cursor.nextset()
                    row = cursor.fetchone()
                    assert row is not None, "SELECT answers one row"
                    attempt.xid = row[-1]
        except psycopg.Error as exc:
            lost = isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
            if lost or raw.broken:
                conn.invalidate(exc)
            raise self._failure(exc, lost or raw.broken) from None

    def _retry(self, what: str, call: Callable[[int], T]) -> T:
        """Run ``call(attempt)`` until it does not fail on the connection, with
        exponential backoff (50 ms doubling to 2 s, jittered) for ``retry_for`` s."""
        deadline = time.monotonic() + self.retry_for
        delay, attempt = 0.05, 0
        while True:
            try:
                return call(attempt)
            except _ConnectionLost as exc:
                attempt += 1
                if time.monotonic() + delay > deadline:
                    raise StoreError(hide_password(f"{exc} (gave up {what} after {attempt} "
                                                   f"attempts in {self.retry_for:g} s)",
                                                   self.url)) from None
                if attempt == 1:
                    log.warning("%s: connection lost (%s); retrying", what,
                                hide_password(str(exc), self.url))
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)

    def _notices(self, name: str, ends: str = "") -> Notices:
        """What the operation ``name`` notifies at its COMMIT; ``ends``: the payload of
        the jobs it ends."""
        notices: list[tuple[str, str]] = []
        if name in NOTIFYING:
            notices.append((CHANNEL, ""))
        if self.notify_ends and name in ENDING:
            notices.append((ENDS_CHANNEL, ends))
        return tuple(notices)

    def _repeated(self, what: str, call: Callable[[], T], notices: Notices = ()) -> T:
        """A repeatable operation: retried as it is."""
        if getattr(self._local, "conn", None) is not None:
            return call()   # part of an enclosing operation's transaction
        if notices:
            return self._retry(what, lambda attempt: self._notifying(notices, call))
        return self._retry(what, lambda attempt: call())

    def _once(self, what: str, call: Callable[[], T], notices: Notices = ()) -> T:
        """An unsafe operation, made exactly-once: one transaction whose outcome is
        asked of the server when the answer to its COMMIT is lost."""
        if getattr(self._local, "conn", None) is not None:
            return call()   # part of an enclosing operation's transaction

        def run(this: _Try) -> None:
            self._local.notices = notices
            try:
                with self._transaction(this) as conn:
                    self._local.conn = conn
                    try:
                        this.result = call()
                    finally:
                        self._local.conn = None
            finally:
                self._local.notices = ()

        return self._exactly(what, run)

    def _exactly(self, what: str, run: Callable[[_Try], None]) -> Any:
        """``run(attempt)`` under the retry rules, exactly once: it computes
        ``attempt.result`` before its COMMIT and knows its transaction id by then. When
        the answer to the COMMIT is lost, the next attempt first asks the server whether
        it committed: if it did, that result is the answer and nothing is done again. A
        transaction without an id wrote nothing: it is simply run again."""
        lost: _Try | None = None

        def attempt(n: int) -> Any:
            nonlocal lost
            if lost is not None and lost.xid is not None:
                if self._committed(lost.xid):
                    log.warning("%s: its COMMIT went through before the connection was "
                                "lost: not done again", what)
                    return lost.result
                lost = None
            this = _Try()
            try:
                run(this)
            except _ConnectionLost:
                if this.committing:   # COMMIT was sent: it may have gone through
                    lost = this
                raise
            return this.result

        return self._retry(what, attempt)

    def _committed(self, xid: str) -> bool:
        """Whether the transaction ``xid``, whose COMMIT's answer was lost, committed.
        Raise _ConnectionLost while the server cannot tell yet."""
        try:
            with self.engine.connect() as conn:
                status = conn.execute(_XACT_STATUS, {"xid": xid}).scalar()
                if status == "in progress":
                    # Its session outlived our end of the connection and may still be
                    # waiting for the COMMIT: end it, then the answer is final.
                    log.warning("transaction %s still in progress after its connection "
                                "was lost: ending its session", xid)
                    conn.execute(_END_XACT, {"xid32": str(int(xid) % 2 ** 32)})
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == "22023":
                return False   # "in the future": a server that lost it (crash, failover)
            if _transient(exc):
                raise _ConnectionLost(f"store {self.url!r}: {exc.orig}") from None
            raise StoreError(f"store {self.url!r}: cannot tell whether transaction {xid} "
                             f"committed: {exc.orig}") from None
        if status == "in progress":
            raise _ConnectionLost(f"store {self.url!r}: transaction {xid} still in progress")
        if status is None:
            raise StoreError(f"store {self.url!r}: too late to tell whether transaction "
                             f"{xid} committed")
        return bool(status == "committed")

    def _notifying(self, notices: Notices, call: Callable[[], T]) -> T:
        """``call()``, whose transactions send ``notices`` at their COMMIT."""
        self._local.notices = notices
        try:
            return call()
        finally:
            self._local.notices = ()

    # -- the job operations in two round trips ---------------------------------------

    # Their general forms, set by _wrap_operations.
    _through_claim: Callable[..., list[dict]]
    _through_add_jobs: Callable[..., list[int]]
    _through_finish_job: Callable[..., str | None]
    _through_finish_jobs: Callable[..., list[str | None]]
    _through_next_due: Callable[[], Any]
    _through_adopt_job: Callable[..., dict | None]

    def _can_pipeline(self) -> bool:
        return self._fast is not None and getattr(self._local, "conn", None) is None

    def _pipelined(self, what: str, statements: list[tuple[str, list]],
                   tail: tuple[str, list], make: Callable[[list[list[tuple]], tuple], T],
                   notices: Notices = ()) -> T:
        """An unsafe operation of a few statements, made exactly-once in two round trips:
        BEGIN, the NOTIFYs, ``statements`` and ``tail`` (a SELECT whose columns follow
        the transaction id) in one pipeline, then COMMIT. ``make(rows of each statement,
        the tail's row without the id)`` is the answer, computed before the COMMIT.

        The id is read after the statements, with ``pg_current_xact_id_if_assigned()``,
        and is known before the COMMIT is sent, as with ``_once``: a lost answer to the
        COMMIT is asked of the server. A transaction without one wrote nothing (a claim
        that found no job, an end of a job no longer running): it is simply run again."""
        return self._exactly(
            what, lambda this: self._pipeline(this, statements, tail, make, notices))

    def _pipeline(self, this: _Try, statements: list[tuple[str, list]],
                  tail: tuple[str, list], make: Callable[[list[list[tuple]], tuple], Any],
                  notices: Notices) -> None:
        import psycopg

        try:
            with self.engine.connect() as conn:
                raw = conn.connection.driver_connection
                assert raw is not None, "a connection from the pool has its driver connection"
                try:
                    with raw.pipeline():
                        raw.execute("BEGIN")
                        for channel, payload in notices:
                            raw.execute("SELECT pg_notify(%s, %s)", (channel, payload))
                        cursors = [raw.execute(sql, args) for sql, args in statements]
                        last = raw.execute(
                            "SELECT pg_current_xact_id_if_assigned()::text" + tail[0], tail[1])
                    found = [c.fetchall() if c.description is not None else []
                             for c in cursors]
                    row = last.fetchone()
                    assert row is not None, "SELECT answers one row"
                    this.xid = row[0]
                    this.result = make(found, tuple(row[1:]))
                    this.committing = True
                    raw.commit()
                except psycopg.Error as exc:
                    lost = isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
                    if lost or raw.broken:
                        conn.invalidate(exc)
                    else:
                        try:
                            raw.rollback()
                        except psycopg.Error:
                            conn.invalidate(exc)
                    if isinstance(exc, psycopg.IntegrityError):
                        raise refused(self.url, exc) from None
                    raise self._failure(exc, lost or raw.broken) from None
        except DBAPIError as exc:   # checkout: connecting, or the ping of an idle one
            raise self._failure(exc.orig, _transient(exc)) from None

    def claim(self, now: Any, limit: int, worker: str, pid: int | None = None,
              limits: Any = None) -> list[dict]:
        """As the contract says. A claim of no limited type is one pipeline that also
        reads the next due time: ``next_due()`` answers with it right after."""
        if limits and any(_max_running(v) is not None or _rate(v) is not None
                          for v in limits.values()) or not self._can_pipeline():
            return self._through_claim(now, limit, worker, pid, limits=limits)
        if limit <= 0:
            return []
        fast = self._fast
        claim = fast.claim.args({"now": now, "lim": limit, "worker": worker, "pid": pid})

        def make(found: list[list[tuple]], tail: tuple) -> list[dict]:
            self._local.next_due = (time.monotonic(), from_micros(tail[0]))
            return claim_order([raw_job_row(r) for r in found[0]])

        return self._pipelined("claim", [(fast.claim.sql, claim)],
                               (f", ({fast.next_due.sql})", fast.next_due.args({})), make)

    def next_due(self) -> Any:
        """As the contract says; right after a claim, the time that claim read."""
        read = getattr(self._local, "next_due", None)
        if read is not None:
            self._local.next_due = None
            if time.monotonic() - read[0] < NEXT_DUE_FRESH:
                return read[1]
        return self._through_next_due()

    def add_jobs(self, rows: Any, ignore_duplicates: bool = False) -> list[int]:
        if not isinstance(rows, list) or len(rows) != 1 or "id" in rows[0] \
                or not self._can_pipeline():
            return self._through_add_jobs(rows, ignore_duplicates)
        values = job_values(rows[0])
        if not set(values) <= set(_INSERT_COLUMNS):
            return self._through_add_jobs(rows, ignore_duplicates)
        stmt = self._fast_insert[bool(ignore_duplicates)]
        return self._pipelined(
            "add_jobs", [(stmt.sql, stmt.args(values))], ("", []),
            lambda found, _: [found[0][0][0]] if found[0] else [],
            self._notices("add_jobs"))

    def finish_job(self, job_id: int, status: str, now: Any, message: str | None = None,
                   progress: int | None = None, only_running: bool = True,
                   attempt: int | None = None, result: Any = None) -> str | None:
        if not self._can_pipeline():
            return self._through_finish_job(job_id, status, now, message, progress,
                                            only_running, attempt, result)
        params, variant = _end_params(job_id, status, now, message, progress, only_running,
                                      attempt, result)
        stmt = self._fast.finish[variant]
        return self._pipelined(
            "finish_job", [(stmt.sql, stmt.args(params))], ("", []),
            lambda found, _: found[0][0][0] if found[0] else None,
            self._notices("finish_job", _payload([(job_id, attempt)])))

    def finish_jobs(self, ends: Any) -> list[str | None]:
        items = list(ends)
        if not items:
            return []
        if not self._can_pipeline():
            return self._through_finish_jobs(items)
        statements = []
        for end in items:
            params, variant = _end_params(**end)
            stmt = self._fast.finish[variant]
            statements.append((stmt.sql, stmt.args(params)))
        payload = _payload([(end["job_id"], end.get("attempt")) for end in items])
        return self._pipelined(
            "finish_jobs", statements, ("", []),
            lambda found, _: [rows[0][0] if rows else None for rows in found],
            self._notices("finish_jobs", payload))

    def adopt_job(self, job_id: int, attempt: int, owner: str, worker: str, pid: int | None,
                  now: Any) -> dict | None:
        if not self._can_pipeline():
            return self._through_adopt_job(job_id, attempt, owner, worker, pid, now)
        stmt = self._fast_adopt
        args = stmt.args({"job_id": job_id, "attempt": attempt, "owner": owner,
                          "worker": worker, "pid": pid, "now": now})
        return self._pipelined("adopt_job", [(stmt.sql, args)], ("", []),
                               lambda found, _: raw_job_row(found[0][0]) if found[0] else None)

    # -- processes ------------------------------------------------------------------

    def after_fork(self) -> None:
        """A forked child has no listener thread and must not share connections."""
        super().after_fork()
        self._local = threading.local()
        self._init_listener_state()

    def close(self) -> None:
        self.stop_listener()
        super().close()


def _ends_payload(name: str, base: Callable[..., Any], self: Any, args: tuple,
                  kwargs: dict) -> tuple[tuple, dict, str]:
    """The call's arguments (its iterable of ends made a list: it is read twice) and
    the payload naming the jobs it ends: "id:attempt" each, comma-separated."""
    bound = inspect.signature(base).bind(self, *args, **kwargs)
    if name == "finish_jobs":
        ends = bound.arguments["ends"] = list(bound.arguments["ends"])
        pairs = [(end["job_id"], end.get("attempt")) for end in ends]
    else:
        pairs = [(bound.arguments["job_id"], bound.arguments.get("attempt"))]
    return bound.args[1:], bound.kwargs, _payload(pairs)


def _payload(pairs: list[tuple[int, int | None]]) -> str:
    """The ENDS_CHANNEL payload naming the jobs ``pairs`` (job id, attempt) end."""
    payload = ",".join(f"{int(job_id)}:{'' if attempt is None else int(attempt)}"
                       for job_id, attempt in pairs)
    return payload if len(payload) <= MAX_PAYLOAD else ""


def _repeatable(name: str) -> Callable[..., Any]:
    base = getattr(SQLStore, name)

    @functools.wraps(base)
    def method(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
        ends = ""
        if self.notify_ends and name in ENDING:
            args, kwargs, ends = _ends_payload(name, base, self, args, kwargs)
        return self._repeated(name, lambda: base(self, *args, **kwargs),
                              self._notices(name, ends))

    return method


def _exactly_once(name: str) -> Callable[..., Any]:
    base = getattr(SQLStore, name)

    @functools.wraps(base)
    def method(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
        ends = ""
        if self.notify_ends and name in ENDING:
            args, kwargs, ends = _ends_payload(name, base, self, args, kwargs)
        return self._once(name, lambda: base(self, *args, **kwargs), self._notices(name, ends))

    return method


def _never_retried(name: str) -> Callable[..., Any]:
    base = getattr(SQLStore, name)

    @functools.wraps(base)
    def method(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return base(self, *args, **kwargs)
        except _ConnectionLost as exc:
            raise StoreError(f"{exc} ({name} is not marked safe to repeat: not retried)") from None

    return method


def _wrap_operations() -> None:
    """Give every store operation of SQLStore its behaviour through connection loss."""
    for name in dir(SQLStore):
        if name.startswith("_") or name in LOCAL or not callable(getattr(SQLStore, name)):
            continue
        wrap = _repeatable if name in REPEATABLE else _exactly_once if name in UNSAFE \
            else _never_retried
        if name in PIPELINED:
            setattr(PostgresStore, f"_through_{name}", wrap(name))
        elif name not in vars(PostgresStore):
            setattr(PostgresStore, name, wrap(name))


_wrap_operations()
