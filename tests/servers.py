"""Real PostgreSQL and Redis servers for the tests and the benchmarks.

Each server is Debian's own binary, started in a temporary folder, listening on
127.0.0.1 only, on a free port, and stopped (its folder removed) at the end.
``make test`` installs the binaries (``scripts/install-system-deps``); when they
are missing the fixtures fail, they never skip.

Outside pytest::

    url, stop = start_postgres(tmpdir)   # postgresql+psycopg://postgres@127.0.0.1:PORT/cronkit_test
    url, stop = start_redis(tmpdir)      # redis://127.0.0.1:PORT/0

For a test that needs to restart or kill a server, use the classes:
``PostgresServer(tmpdir).start()`` and ``RedisServer(tmpdir).start()``.

In pytest, load this module as a plugin (``pytest_plugins = ["tests.servers"]``)
to get the session fixtures ``postgres_server``, ``postgres_url``,
``redis_server``, ``redis_url``, and the function fixture ``pg_db``.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

INSTALL_HINT = "run `make test`, which installs it, or `scripts/install-system-deps`"
T = TypeVar("T")

POSTGRES_DB = "cronkit_test"
POSTGRES_USER = "postgres"
START_TIMEOUT = 60.0


class ServerUnavailable(RuntimeError):
    """A test server could not be found or started; the message says why."""


# -- helpers ------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _run(cmd: list[str], what: str, *, cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ServerUnavailable(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"{proc.stdout}{proc.stderr}".rstrip()
        )


def _version_key(path: str) -> tuple[int, ...]:
    match = re.search(r"/postgresql/([\d.]+)/bin", path)
    return tuple(int(p) for p in match.group(1).split(".")) if match else (0,)


def postgres_bindir() -> Path:
    """The newest Debian PostgreSQL bin folder; ServerUnavailable if there is none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if not found:
        raise ServerUnavailable(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            + INSTALL_HINT
        )
    return Path(found[-1]).parent


def redis_binary() -> Path:
    """Debian's redis-server; ServerUnavailable if it is missing."""
    path = shutil.which("redis-server") or next(
        (
            p
            for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server")
            if os.access(p, os.X_OK)
        ),
        None,
    )
    if not path:
        raise ServerUnavailable("redis-server is not installed: " + INSTALL_HINT)
    return Path(path)


# -- PostgreSQL ---------------------------------------------------------------------------


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1.

    PostgreSQL refuses to run as root: as root, the cluster lives in a folder of the
    system temp dir owned by the ``postgres`` user (``tmpdir`` may sit in a folder that
    user cannot enter), and every server command runs through ``runuser -u postgres``.
    """

    def __init__(self, tmpdir: str | os.PathLike[str]) -> None:
        self.bindir = postgres_bindir()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            try:
                owner = pwd.getpwnam(POSTGRES_USER)
            except KeyError:
                raise ServerUnavailable(
                    f"running as root, but there is no {POSTGRES_USER!r} system user "
                    "to run PostgreSQL as: " + INSTALL_HINT
                ) from None
            self.base = Path(tempfile.mkdtemp(prefix="cronkit-pg-"))
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
        else:
            self.base = Path(tempfile.mkdtemp(prefix="pg-", dir=tmpdir))
        self.datadir = self.base / "data"
        self.sockdir = self.base / "sock"
        self.logfile = self.base / "postgres.log"
        self.port = 0
        self.running = False
        self._initialised = False

    # commands run as the cluster's owner
    def _cmd(self, tool: str, *args: str) -> list[str]:
        cmd = [str(self.bindir / tool), *args]
        return ["runuser", "-u", POSTGRES_USER, "--", *cmd] if self._as_root else cmd

    def _pg(self, tool: str, *args: str, what: str) -> None:
        _run(self._cmd(tool, *args), what, cwd=self.base)

    @property
    def url(self) -> str:
        return self.url_for(POSTGRES_DB)

    def url_for(self, database: str) -> str:
        """The SQLAlchemy URL of a database on this server."""
        return f"postgresql+psycopg://{POSTGRES_USER}@127.0.0.1:{self.port}/{database}"

    def _initdb(self) -> None:
        self._pg(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            POSTGRES_USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            what="initdb",
        )
        self.sockdir.mkdir()
        if self._as_root:
            owner = pwd.getpwnam(POSTGRES_USER)
            os.chown(self.sockdir, owner.pw_uid, owner.pw_gid)
        (self.datadir / "pg_hba.conf").write_text(
            "local all all trust\nhost  all all 127.0.0.1/32 trust\n"
        )
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# cronkit test cluster: local only, durability traded for speed\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.sockdir}'\n"
                "max_connections = 200\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
            )
        self._initialised = True

    def start(self) -> PostgresServer:
        """Start the server; the first time, create the cluster and ``cronkit_test``.

        A restart keeps its port, so that clients can reconnect.
        """
        if self.running:
            return self
        first = not self._initialised
        if first:
            self._initdb()
        keep_port = bool(self.port)
        failure: ServerUnavailable | None = None
        for _attempt in range(
            1 if keep_port else 3
        ):  # someone may take the free port first
            if not keep_port:
                self.port = free_port()
            try:
                self._pg(
                    "pg_ctl",
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.logfile),
                    "-w",
                    "-t",
                    str(int(START_TIMEOUT)),
                    "-o",
                    f"-p {self.port}",
                    "start",
                    what="pg_ctl start",
                )
            except ServerUnavailable as exc:
                failure = exc
                continue
            break
        else:
            raise ServerUnavailable(
                f"{failure}\n--- {self.logfile}:\n{_tail(self.logfile)}"
            )
        self.running = True
        _live.add(self)
        if first:
            self.sql(f'CREATE DATABASE "{POSTGRES_DB}"')
        return self

    def sql(self, statement: str, database: str = "postgres") -> None:
        """Run one SQL statement (outside a transaction) as the superuser."""
        _run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                POSTGRES_USER,
                "-d",
                database,
                "-c",
                statement,
            ],
            f"psql {statement!r}",
        )

    def create_database(self, prefix: str = "cronkit_t") -> str:
        """Create a fresh, uniquely named database; return its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.sql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data (``mode``: smart, fast or immediate)."""
        if not self.running:
            return
        self._pg(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-m",
            mode,
            "-w",
            "stop",
            what="pg_ctl stop",
        )
        self.running = False

    def restart(self) -> None:
        """Stop and start again on the same port, data kept."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its folder. Safe to call twice."""
        try:
            if self.running:
                self.stop(mode="immediate")
        finally:
            self.running = False
            _live.discard(self)
            shutil.rmtree(self.base, ignore_errors=True)


def start_postgres(tmpdir: str | os.PathLike[str]) -> tuple[str, Callable[[], None]]:
    """Start a throwaway PostgreSQL; return (URL of ``cronkit_test``, stop function)."""
    server = PostgresServer(tmpdir)
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server.url, server.close


# -- Redis --------------------------------------------------------------------------------


class RedisServer:
    """A Redis server on 127.0.0.1 with no persistence, its files in ``tmpdir``."""

    def __init__(self, tmpdir: str | os.PathLike[str]) -> None:
        self.binary = redis_binary()
        self.base = Path(tempfile.mkdtemp(prefix="redis-", dir=tmpdir))
        self.logfile = self.base / "redis.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> RedisServer:
        """Start the server (on the same port when restarted)."""
        if self.running:
            return self
        keep_port = bool(self.port)
        for _attempt in range(1 if keep_port else 3):
            if not keep_port:
                self.port = free_port()
            self.process = subprocess.Popen(
                [
                    str(self.binary),
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.base),
                    "--daemonize",
                    "no",
                    "--logfile",
                    str(self.logfile),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.base,
            )
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self.process.poll() is None:
                if self._ping():
                    _live.add(self)
                    return self
                time.sleep(0.02)
            self._terminate()
        raise ServerUnavailable(
            f"redis-server did not start on 127.0.0.1:{self.port}\n"
            f"--- {self.logfile}:\n{_tail(self.logfile)}"
        )

    def _terminate(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def stop(self) -> None:
        """Stop the server; ``start()`` brings it back on the same port."""
        self._terminate()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        self._terminate(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its folder. Safe to call twice."""
        try:
            self._terminate()
        finally:
            _live.discard(self)
            shutil.rmtree(self.base, ignore_errors=True)


def start_redis(tmpdir: str | os.PathLike[str]) -> tuple[str, Callable[[], None]]:
    """Start a throwaway Redis; return (``redis://127.0.0.1:PORT/0``, stop function)."""
    server = RedisServer(tmpdir)
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server.url, server.close


# Servers still up when the interpreter exits (a benchmark that forgot, a crash) go down.
_live: set[PostgresServer | RedisServer] = set()


@atexit.register
def _close_leftovers() -> None:
    for server in list(_live):
        with contextlib.suppress(
            Exception
        ):  # best effort: nothing is left to report to
            server.close()


# -- pytest fixtures ----------------------------------------------------------------------


def _or_fail(start: Callable[[], T]) -> T:
    """Call ``start``; a ServerUnavailable becomes a test failure with just its message.

    Never a skip: a suite that silently skips its PostgreSQL half proves nothing.
    """
    try:
        return start()
    except ServerUnavailable as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)  # outside `except`: no chained traceback


@pytest.fixture(scope="session")
def postgres_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session, with an empty ``cronkit_test`` database."""
    server = _or_fail(lambda: PostgresServer(tmp_path_factory.mktemp("postgres")))
    try:
        yield _or_fail(server.start)
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of the session's ``cronkit_test`` database."""
    return postgres_server.url


@pytest.fixture
def pg_db(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh database for this test only, dropped afterwards."""
    _or_fail(postgres_server.start)  # a no-op unless an earlier test stopped it
    name = _or_fail(postgres_server.create_database)
    try:
        yield postgres_server.url_for(name)
    finally:
        if postgres_server.running:
            postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis server for the session, without persistence."""
    server = _or_fail(lambda: RedisServer(tmp_path_factory.mktemp("redis")))
    try:
        yield _or_fail(server.start)
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """``redis://127.0.0.1:PORT/0`` of the session's Redis server."""
    return redis_server.url
