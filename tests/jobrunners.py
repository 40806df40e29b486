"""Runners used by tests that start real worker processes (importable by a child)."""

from __future__ import annotations

import asyncio
import ctypes
import os
import sqlite3
import sys
import time

import cronkit


class Sleepy(cronkit.Runner):
    """Sleeps payload["seconds"], checking canceled."""

    def run(self):
        end = time.monotonic() + self.job.payload.get("seconds", 30)
        while time.monotonic() < end:
            if self.job.canceled:
                return
            time.sleep(0.02)


class Hang(cronkit.Runner):
    """Sleeps without ever looking at canceled."""

    def run(self):
        time.sleep(self.job.payload.get("seconds", 60))


class Exit(cronkit.Runner):
    """Dies at once with os._exit(1)."""

    def run(self):
        os._exit(1)


class Segfault(cronkit.Runner):
    """Reads address 0."""

    def run(self):
        ctypes.string_at(0)


class WhoAmI(cronkit.Runner):
    """Reports its pid."""

    def run(self):
        return str(os.getpid())


class Count(cronkit.Runner):
    """Records one row per run in a SQLite table (payload["db"], payload["key"]). With
    payload["meet"] = n, it then waits (at most two minutes) until n processes have
    recorded a run: a rendezvous that makes every worker take part, however busy the
    machine and however late a worker starts."""

    def run(self):
        conn = sqlite3.connect(self.job.payload["db"], timeout=60)
        with conn:
            conn.execute("CREATE TABLE IF NOT EXISTS runs (key TEXT, pid INTEGER)")
            conn.execute("INSERT INTO runs VALUES (?, ?)", (self.job.payload["key"], os.getpid()))
        meet = self.job.payload.get("meet")
        deadline = time.monotonic() + 120
        while meet and conn.execute("SELECT COUNT(DISTINCT pid) FROM runs").fetchone()[0] < meet:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {meet} workers ran a job in two minutes")
            time.sleep(0.05)
        conn.close()


@cronkit.runner("greet_fn")
def greet_fn(job):
    """A function task: greets, from the process that runs it."""
    return f"hello {job.payload['who']} from {os.getpid()}"


class AsyncWhoAmI(cronkit.Runner):
    """An async runner: notes "started", waits payload["seconds"] (default 0), reports
    its pid; notes "cancelled" when a cancel raises CancelledError at its await."""

    async def run(self):
        self.job.note("started")
        try:
            await asyncio.sleep(self.job.payload.get("seconds", 0))
        except asyncio.CancelledError:
            self.job.note("cancelled")
            raise
        self.job.update(progress=50)
        return str(os.getpid())


@cronkit.runner("agreet_fn")
async def agreet_fn(job):
    """An async function task: greets after an await, from the process that runs it."""
    await asyncio.sleep(0)
    return f"hello {job.payload['who']} from {os.getpid()}"


RUNNERS = {"sleepy": Sleepy, "awhoami": AsyncWhoAmI, "hang": Hang, "exit": Exit, "segfault": Segfault,
           "whoami": WhoAmI, "count": Count,
           # the function tasks: registered when this module is imported (a Celery worker
           # importing it finds them), taken out again before each test (tests/conftest.py)
           "greet_fn": greet_fn.runner, "agreet_fn": agreet_fn.runner}
FUNCTION_TASKS = ("greet_fn", "agreet_fn")


def register() -> None:
    for name, cls in RUNNERS.items():
        cronkit.register_runner(cls, name=name)


def serve(store: str, executor: str = "threads", concurrency: int = 2) -> None:
    """A worker process: ``python -c 'from tests.jobrunners import serve; serve(...)'``."""
    register()
    kit = cronkit.Cronkit(store=store, error_timeout=2)
    print("ready", flush=True)
    kit.worker(concurrency=concurrency, executor=executor, poll_interval=0.05).run_forever()


if __name__ == "__main__":  # pragma: no cover - used as a subprocess entry point
    serve(sys.argv[1], *sys.argv[2:3])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


class Stamp(cronkit.Runner):
    """Records in a SQLite table (payload["db"]) its begin and its end for the job
    (payload["key"]), and an "overlap" row when an earlier run of that job still lives;
    sleeps payload["seconds"] in between. Lost runs are retried."""

    retries = 1000
    retry_backoff = 0.0

    def _stamp(self, what: str) -> list[int]:
        conn = sqlite3.connect(self.job.payload["db"], timeout=60)
        try:
            with conn:
                conn.execute("CREATE TABLE IF NOT EXISTS stamps (key TEXT, pid INTEGER, what TEXT)")
                earlier = [p for (p,) in conn.execute(
                    "SELECT pid FROM stamps WHERE key = ? AND what = 'begin'",
                    (self.job.payload["key"],))]
                conn.execute("INSERT INTO stamps VALUES (?, ?, ?)",
                             (self.job.payload["key"], os.getpid(), what))
        finally:
            conn.close()
        return earlier

    def run(self):
        earlier = self._stamp("begin")
        if any(_alive(pid) for pid in earlier):
            self._stamp("overlap")
        time.sleep(self.job.payload.get("seconds", 0.2))
        self._stamp("done")


RUNNERS["stamp"] = Stamp
