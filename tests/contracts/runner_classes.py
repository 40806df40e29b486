"""Runner classes for the multi-process tests; ``tests.contracts.runners`` registers
them (``--import tests.contracts.runners``). Tests running in-process import this
module instead, so nothing leaks into the global registry of other tests.

Each run counts itself in the table ``cronkit_ran`` of the job's own PostgreSQL
database (one row per key, ``n`` = how many times it ran), so a test can prove that
every job and every cron firing ran exactly once. The count survives a server restart:
a write that fails on a lost connection is tried again.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

import cronkit

RAN_TABLE = """CREATE TABLE IF NOT EXISTS cronkit_ran (
    key text PRIMARY KEY, n integer NOT NULL, pid integer NOT NULL)"""
_COUNT = sa.text("INSERT INTO cronkit_ran (key, n, pid) VALUES (:key, 1, :pid) "
                 "ON CONFLICT (key) DO UPDATE SET n = cronkit_ran.n + 1")


def count(runner: cronkit.Runner, key: str) -> None:
    import os

    engine = runner.site.kit.store.engine
    deadline = time.monotonic() + 60
    while True:
        try:
            with engine.begin() as conn:
                conn.execute(_COUNT, {"key": key, "pid": os.getpid()})
            return
        except sa.exc.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Count(cronkit.Runner):
    """Counts a submitted job under ``job:<payload n>``."""

    def run(self):
        count(self, f"job:{self.job.payload['n']}")


class Tick(cronkit.Runner):
    """Counts a cron firing under ``<cron uid>@<scheduled time>``."""

    def run(self):
        count(self, f"{self.job.cron_uid}@{self.job.fire_at.isoformat()}")


class Slow(cronkit.Runner):
    """Counts itself, then works for ``payload seconds`` (default 60), stopping early
    when canceled."""

    def run(self):
        count(self, f"slow:{self.job.id}")
        end = time.monotonic() + self.job.payload.get("seconds", 60)
        while time.monotonic() < end and not self.job.canceled:
            time.sleep(0.05)


class Noop(cronkit.Runner):
    """Does nothing (benchmarks)."""

    def run(self):
        return None


RUNNERS = {"count": Count, "tick": Tick, "slow": Slow, "noop": Noop}


def register_globally() -> None:
    for name, factory in RUNNERS.items():
        cronkit.register_runner(factory, name=name)
