"""A runner limited to two at once, for tests that start real worker processes
(importable by a child): ``python -c 'from tests.limitrunners import serve; serve(url)'``."""

from __future__ import annotations

import os
import sqlite3
import sys
import time

import cronkit


class Overlap(cronkit.Runner):
    """At most two run at once across every worker (``max_running``). Each run counts
    itself in and out of a SQLite file (payload["db"]) in write transactions, keeping
    the most ever in at once, and holds payload["seconds"] (default 0.2) in between."""

    max_running = 2

    def _tx(self, sql: str, *args: object) -> None:
        conn = sqlite3.connect(self.job.payload["db"], timeout=60, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE IF NOT EXISTS now (running INTEGER, most INTEGER)")
            conn.execute("CREATE TABLE IF NOT EXISTS runs (key TEXT, pid INTEGER)")
            conn.execute("INSERT INTO now SELECT 0, 0 WHERE NOT EXISTS (SELECT 1 FROM now)")
            conn.execute(sql, args)
            conn.execute("UPDATE now SET most = MAX(most, running)")
            conn.execute("COMMIT")
        finally:
            conn.close()

    def run(self):
        self._tx("UPDATE now SET running = running + 1 WHERE ? IS NOT NULL", 1)
        try:
            self._tx("INSERT INTO runs VALUES (?, ?)", self.job.payload["key"], os.getpid())
            time.sleep(self.job.payload.get("seconds", 0.2))
        finally:
            self._tx("UPDATE now SET running = running - 1 WHERE ? IS NOT NULL", 1)


class Boom(cronkit.Runner):
    """Fails at once: its continuations end CANCELED."""

    def run(self):
        raise RuntimeError("boom")


def register() -> None:
    cronkit.register_runner(Overlap, name="overlap")
    cronkit.register_runner(Boom, name="boom")


def serve(store: str, concurrency: int = 2) -> None:
    """A worker process with ``concurrency`` threads."""
    register()
    kit = cronkit.Cronkit(store=store, error_timeout=5)
    print("ready", flush=True)
    kit.worker(concurrency=concurrency, executor="threads", poll_interval=0.05).run_forever()


if __name__ == "__main__":  # pragma: no cover - used as a subprocess entry point
    serve(sys.argv[1])
