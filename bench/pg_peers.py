"""Procrastinate, the PostgreSQL peer (issue 16, item 6), on the server that
``bench/pg_celery.py`` started, in the same run, with the same job count and worker
count as cronkit's 4 ``cronkit worker`` processes.

Procrastinate runs as its users run it: ``procrastinate --app=... worker`` processes
(its CLI), with its schema applied first (``app.schema_manager.apply_schema()``, what
``procrastinate schema --apply`` does). Jobs are deferred by its fastest documented way,
``Task.batch_defer`` (one INSERT for many), in batches of ``BATCH``; completions are
counted from its jobs table (``status = 'succeeded'``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.pg_celery import _stop

ROOT = Path(__file__).resolve().parent.parent
BATCH = 1000


def conninfo(sqlalchemy_url: str) -> str:
    """A libpq URL from the SQLAlchemy one of ``tests/servers.py``."""
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def _spawn_workers(dsn: str, processes: int, concurrency: int) -> list[subprocess.Popen]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), BENCH_PROCRASTINATE_DSN=dsn)
    cmd = [sys.executable, "-m", "procrastinate", "--app=bench.peers.procrastinate_app.app",
           "--log-level", "warning", "worker", "--concurrency", str(concurrency)]
    return [subprocess.Popen(cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True) for _ in range(processes)]


def _count(conn: Any, statuses: tuple[str, ...]) -> int:
    row = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = ANY(%s)",
                       (list(statuses),)).fetchone()
    return int(row[0])


def drain_procrastinate(server: Any, n: int, processes: int = 4, concurrency: int = 4,
                        timeout: float = 600) -> dict:
    """Defer ``n`` no-op jobs (``batch_defer``) to ``processes`` Procrastinate workers
    on a fresh database of ``server`` (a ``tests.servers.PostgresServer``); return
    ``{"jobs_per_s", "defer_per_s", "seconds", "label"}``, from the first deferral to
    the last job succeeded."""
    import psycopg

    dsn = conninfo(server.url_for(server.create_database("bench_procrastinate")))
    os.environ["BENCH_PROCRASTINATE_DSN"] = dsn
    import importlib

    from bench.peers import procrastinate_app

    procrastinate_app = importlib.reload(procrastinate_app)   # its App reads the DSN once
    app = procrastinate_app.app
    with app.open():
        app.schema_manager.apply_schema()
    procs = _spawn_workers(dsn, processes, concurrency)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn, app.open():
            time.sleep(3)   # workers up, connected and listening
            for proc in procs:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise RuntimeError(f"procrastinate worker exited {proc.returncode}: "
                                       f"{err[-800:]}")
            start = time.perf_counter()
            left = n
            while left:
                size = min(BATCH, left)
                procrastinate_app.noop.batch_defer(*({} for _ in range(size)))
                left -= size
            deferred = time.perf_counter()
            deadline = start + timeout
            while _count(conn, ("todo", "doing")):
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"procrastinate: jobs left after {timeout:g} s")
                time.sleep(0.01)
            elapsed = time.perf_counter() - start
            done = _count(conn, ("succeeded",))
            if done != n:
                raise RuntimeError(f"procrastinate: {done} of {n} jobs succeeded")
    finally:
        _stop(procs)
    version = _version()
    return {"jobs_per_s": n / elapsed, "defer_per_s": n / (deferred - start),
            "seconds": elapsed,
            "label": (f"Procrastinate {version}, {processes} `procrastinate worker` processes "
                      f"(--concurrency {concurrency}, async no-op task, LISTEN/NOTIFY), "
                      f"jobs deferred with batch_defer in batches of {BATCH}")}


def _version() -> str:
    from importlib import metadata
    try:
        return metadata.version("procrastinate")
    except metadata.PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    import argparse
    import json
    import tempfile

    parser = argparse.ArgumentParser(description="Procrastinate alone on a throwaway "
                                     "PostgreSQL: no-op jobs/s")
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.servers import PostgresServer

    pg = PostgresServer(tempfile.mkdtemp(prefix="cronkit-bench-")).start()
    try:
        print(json.dumps(drain_procrastinate(pg, args.jobs, concurrency=args.concurrency)))
    finally:
        pg.close()
