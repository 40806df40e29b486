"""The PostgreSQL store: the SQL store's schema and queries, plus what a shared server
needs when many workers on many hosts use it at once.

- **Wake-ups.** A job insert, a retry (requeue) and a crontab save send ``NOTIFY
  cronkit`` in their own transaction, so the notification leaves exactly when the
  change becomes visible. ``start_listener(callback)`` runs one thread per store
  that ``LISTEN``\\ s on a dedicated psycopg connection and calls the callbacks (a
  worker passes ``kit.wake``); ``wait_for_notify(timeout)`` is the same wait as a
  blocking call. Polling stays the fallback: a lost notification costs one poll.
- **Connection loss.** Pooled connections are pinged before use; a call that fails on
  a lost or refused connection (server restart, failover, network cut) is retried with
  backoff for ``retry_for`` seconds before it raises StoreError. A claim whose commit
  may have gone through is recovered rather than repeated (its rows carry this
  worker and this ``now``), so no claimed job is left without its worker. The
  listener reconnects on its own and wakes its callbacks once it has (notifications
  sent meanwhile are gone).
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.selectable import ScalarSelect

from ..exceptions import StoreError
from .hotpath import refused
from .sql import SQLStore, _job_row, jobs

log = logging.getLogger("cronkit.stores.postgres")

CHANNEL = "cronkit"
# pg_advisory_xact_lock key held while the schema is created or migrated ("cronkit").
SCHEMA_LOCK = int.from_bytes(b"cronkit", "big")
_NOTIFY = sa.text(f"SELECT pg_notify('{CHANNEL}', '')")


class _ConnectionLost(StoreError):
    """A call failed on a lost or refused connection: worth another try. Never leaves
    this module (after ``retry_for`` seconds it becomes a plain StoreError)."""


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
            and element.right.element._for_update_arg is not None):
        due = element.right.element.cte("cronkit_due").prefix_with("MATERIALIZED")
        return element.left.in_(sa.select(due.c.id))
    return None


class PostgresStore(SQLStore):
    """The store for ``postgresql://`` and ``postgresql+psycopg://`` URLs (psycopg 3).

    ``retry_for``: how long (seconds) a call keeps retrying through a lost connection
    before it raises StoreError.
    """

    notify_channel = CHANNEL

    def __init__(self, url: str, retry_for: float = 60.0):
        self.retry_for = float(retry_for)
        self._local = threading.local()
        self._init_listener_state()
        try:
            super().__init__(url)
        except StoreError as exc:
            if str(exc).startswith("cannot open store"):
                raise
            raise StoreError(f"cannot open store {url!r}: {exc}") from None

    def _migrate(self) -> None:
        self._retry("opening the store", lambda attempt: SQLStore._migrate(self))

    def _lock_unique(self, conn, key: str) -> None:
        # Two submissions of one unique job at once: the second waits for the first's
        # commit, then (READ COMMITTED: a new snapshot per statement) finds its job.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})

    def _lock_schema(self, conn) -> None:
        # Two processes creating the schema of a fresh database at once would clash on
        # PostgreSQL's catalog (pg_type); the second waits here and finds it made.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})

    # -- engine and transactions ----------------------------------------------------

    def _make_engine(self, url: str) -> sa.Engine:
        try:
            self._sa_url = sa.engine.make_url(engine_url(url))
            return sa.create_engine(
                self._sa_url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                pool_timeout=60,
                # Dead peers are noticed by the kernel, not after a two-hour TCP timeout.
                connect_args={"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 10,
                              "keepalives_interval": 5, "keepalives_count": 3,
                              "application_name": "cronkit"})
        except (ImportError, sa.exc.ArgumentError) as exc:
            raise StoreError(f"cannot open store {url!r}: {exc}") from None

    def _prepare_statements(self) -> None:
        super()._prepare_statements()
        self._stmts.claim = visitors.replacement_traverse(self._stmts.claim, {}, _materialize_locking_in)

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect() as conn:
                with conn.begin():
                    yield conn
                    if getattr(self._local, "notify", False):
                        conn.execute(_NOTIFY)  # delivered at COMMIT, never before
        except IntegrityError as exc:
            raise refused(self.url, exc.orig) from None
        except DBAPIError as exc:
            if _transient(exc):
                raise _ConnectionLost(f"store {self.url!r}: {exc.orig}") from None
            raise StoreError(f"store {self.url!r}: {exc.orig}") from None

    def _retry(self, what: str, call: Callable[[int], Any]) -> Any:
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
                    raise StoreError(f"{exc} (gave up {what} after {attempt} attempts "
                                     f"in {self.retry_for:g} s)") from None
                if attempt == 1:
                    log.warning("%s: connection lost (%s); retrying", what, exc)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)

    @contextmanager
    def _notifying(self) -> Iterator[None]:
        """Transactions opened inside send NOTIFY cronkit before they commit."""
        previous = getattr(self._local, "notify", False)
        self._local.notify = True
        try:
            yield
        finally:
            self._local.notify = previous

    # -- writes that wake idle workers ------------------------------------------------

    def add_jobs(self, rows: list[dict], ignore_duplicates: bool = False) -> list[int]:
        def call(attempt: int) -> list[int]:
            with self._notifying():
                # A retry after a commit whose answer was lost must not insert twice:
                # firings are unique in the store, so skip them quietly instead.
                return SQLStore.add_jobs(self, rows, ignore_duplicates or attempt > 0
                                         and all(r.get("fire_at") for r in rows))
        return self._retry("add_jobs", call)

    def add_unique_job(self, row: dict) -> tuple[int, bool]:
        def call(attempt: int) -> tuple[int, bool]:
            with self._notifying():
                return SQLStore.add_unique_job(self, row)
        return self._retry("add_unique_job", call)

    def requeue_job(self, job_id: int, run_after: datetime, message: str,
                    attempt: int | None = None) -> bool:
        def call(_try: int) -> bool:
            with self._notifying():
                return SQLStore.requeue_job(self, job_id, run_after, message, attempt)
        return self._retry("requeue_job", call)

    def save_crontab(self, *args: Any, **kwargs: Any) -> tuple[int, list[int]]:
        def call(attempt: int) -> tuple[int, list[int]]:
            with self._notifying():
                return SQLStore.save_crontab(self, *args, **kwargs)
        return self._retry("save_crontab", call)

    # -- claim: recovered, never repeated ------------------------------------------

    def claim(self, now: datetime, limit: int, worker: str, pid: int | None = None) -> list[dict]:
        """SQLStore.claim (FOR UPDATE SKIP LOCKED) through connection loss. When a try
        fails, the next one first looks for the rows it may have claimed after all:
        RUNNING, this ``worker``, started at this ``now``."""
        def call(attempt: int) -> list[dict]:
            if attempt:
                with self._tx(write=False) as conn:
                    rows = [_job_row(r) for r in conn.execute(sa.select(jobs).where(
                        jobs.c.status == "running", jobs.c.worker == worker,
                        jobs.c.started_at == now))]
                if rows:
                    log.warning("claim: recovered %d job(s) claimed before the connection "
                                "was lost", len(rows))
                    rows.sort(key=lambda r: (-r["priority"], r["run_after"], r["id"]))
                    return rows
            return SQLStore.claim(self, now, limit, worker, pid)
        return self._retry("claim", call)

    # -- listening ------------------------------------------------------------------

    def _init_listener_state(self) -> None:
        self._listen_lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self._listener: threading.Thread | None = None
        self._listen_stop = threading.Event()
        self._listening = threading.Event()   # LISTEN is in place
        self._notified = threading.Event()    # something arrived since the last wait

    def _conninfo(self) -> str:
        return self._sa_url.set(drivername="postgresql").render_as_string(hide_password=False)

    def start_listener(self, callback: Callable[[], None] | None = None,
                       timeout: float = 10.0) -> bool:
        """Call ``callback()`` whenever a job is queued or requeued, or a crontab saved,
        in any process using this database. Starts the listener thread on first use and
        waits up to ``timeout`` seconds for its LISTEN; True if it is listening."""
        with self._listen_lock:
            if callback is not None and callback not in self._callbacks:
                self._callbacks.append(callback)
            if self._listener is None or not self._listener.is_alive():
                self._listen_stop.clear()
                self._listener = threading.Thread(target=self._listen_loop, daemon=True,
                                                  name="cronkit-pg-listener")
                self._listener.start()
        return self._listening.wait(timeout)

    def stop_listener(self, callback: Callable[[], None] | None = None) -> None:
        """Forget ``callback``; with none given, or none left, stop the listener."""
        with self._listen_lock:
            if callback is not None and callback in self._callbacks:
                self._callbacks.remove(callback)
            if callback is not None and self._callbacks:
                return
            self._callbacks.clear()
            thread, self._listener = self._listener, None
            self._listen_stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def wait_for_notify(self, timeout: float) -> bool:
        """Sleep until a notification arrives or ``timeout`` seconds pass; True if one
        did (one that arrived since the previous wait counts). A worker's sleep."""
        if self._listener is None or not self._listener.is_alive():
            self.start_listener()
        got = self._notified.wait(timeout)
        self._notified.clear()
        return got

    def _wake_all(self) -> None:
        self._notified.set()
        for fn in list(self._callbacks):
            try:
                fn()
            except Exception:  # a callback must not stop the listener
                log.exception("listener callback %r failed", fn)

    def _listen_loop(self) -> None:
        import psycopg

        delay = 0.1
        while not self._listen_stop.is_set():
            try:
                with psycopg.connect(self._conninfo(), autocommit=True, connect_timeout=10,
                                     keepalives=1, keepalives_idle=10, keepalives_interval=5,
                                     keepalives_count=3,
                                     application_name="cronkit-listener") as conn:
                    conn.execute(f"LISTEN {self.notify_channel}")
                    if self._listening.is_set():
                        log.info("listener reconnected")
                    self._listening.set()
                    delay = 0.1
                    self._wake_all()   # whatever was sent while we were away is lost
                    while not self._listen_stop.is_set():
                        if any(True for _ in conn.notifies(timeout=0.5, stop_after=1)):
                            self._wake_all()
            except psycopg.Error as exc:
                if self._listen_stop.is_set():
                    break
                log.warning("listener lost its connection (%s); reconnecting in %.1f s",
                            exc, delay)
                self._listen_stop.wait(delay)
                delay = min(delay * 2, 5.0)

    # -- processes ------------------------------------------------------------------

    def after_fork(self) -> None:
        """A forked child has no listener thread and must not share connections."""
        super().after_fork()
        self._local = threading.local()
        self._init_listener_state()

    def close(self) -> None:
        self.stop_listener()
        super().close()


def _retrying(name: str) -> Callable:
    base = getattr(SQLStore, name)

    @functools.wraps(base)
    def method(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
        return self._retry(name, lambda attempt: base(self, *args, **kwargs))

    return method


# Every other store call is one transaction: retried whole through a lost connection.
for _name, _value in list(vars(SQLStore).items()):
    if (callable(_value) and not _name.startswith("_") and _name not in vars(PostgresStore)
            and _name not in ("close", "after_fork")):
        setattr(PostgresStore, _name, _retrying(_name))
del _name, _value
