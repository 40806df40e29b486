"""The ``scale`` workload (issue 16, item 5): does a job's claim + finish cost grow
with the backlog, and does the dashboard's jobs page stay fast on a big store?

One point, in a fresh process (``bench/measure.py``): a SQLite store is made by
cronkit (its schema), then filled with ``pending`` due no-op jobs and ``finished``
SUCCESS ones by plain ``sqlite3`` ``executemany`` (the columns of
``cronkit/stores/schema.py``; datetimes as integer microseconds since the epoch, UTC).
The file is flushed to disk (fsync) before anything is measured. Then, through the
store API the worker uses:

- ``one``: ``jobs`` times ``store.claim(now, 1, worker, pid)`` + ``store.finish_job``:
  µs per job, one transaction for each claim and each end;
- ``batch``: claims of ``BATCH`` jobs, ended by one ``store.finish_jobs`` (group
  commit), when the store has it: µs per job;

and, with ``web``, the dashboard on that store (``cronkit.web.create_app`` through
Starlette's TestClient: the whole ASGI app in process, no socket): the median of
``REQUESTS`` GETs (after one warm-up) of the jobs page, its first page of one site,
of one status, and the REST job listing.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
import warnings
from datetime import UTC, datetime
from typing import Any

BATCH = 50
REQUESTS = 5
SITE = "bench"
WORKER = "bench-scale"

PAGES = {
    "jobs_page_ms": "/jobs",
    "jobs_page_site_ms": f"/jobs?site={SITE}",
    "jobs_page_pending_ms": "/jobs?status=pending",
    "api_jobs_ms": f"/api/v1/sites/{SITE}/jobs",
    "site_page_ms": f"/sites/{SITE}",
}


def micros(dt: datetime) -> int:
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def fill(path: str, pending: int, finished: int, chunk: int = 50_000) -> float:
    """Insert the rows; return the seconds it took (not part of any figure)."""
    columns = ("site", "type", "name", "status", "priority", "payload", "run_after",
               "progress", "status_text", "created_at", "started_at", "finished_at",
               "attempts", "canceled", "worker", "pid", "heartbeat")
    sql = (f"INSERT INTO cronkit_jobs ({', '.join(columns)}) "
           f"VALUES ({', '.join('?' for _ in columns)})")
    now = micros(datetime.now(UTC))
    t0 = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    try:
        def rows(count: int, done: bool, start: int):
            # Finished jobs are older than the backlog (a store that has run for long).
            for i in range(start, min(count, start + chunk)):
                at = now - (count - i) * 1000 - (10 ** 12 if done else 0)
                if done:
                    yield (SITE, "noop", "noop", "success", 0, "{}", at, 100, "", at, at,
                           at + 100, 1, 0, WORKER, 1, at + 100)
                else:
                    yield (SITE, "noop", "noop", "pending", 0, "{}", at, 0, "", at, None,
                           None, 0, 0, None, None, None)
        for count, done in ((finished, True), (pending, False)):
            for start in range(0, count, chunk):
                with conn:
                    conn.executemany(sql, rows(count, done, start))
        conn.execute("ANALYZE")
    finally:
        conn.close()
    # Filled with synchronous=OFF, the file's pages are still dirty in the OS's cache:
    # flushed here, they are the fill's cost, not that of the first checkpoint's fsync
    # inside the figure (~0.1 s at 10^6 jobs, paid by whichever claim or end met it).
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - t0


def claim_finish(store: Any, jobs: int, batch: bool) -> float:
    """µs per job of claiming and ending ``jobs`` jobs, one at a time or in batches."""
    pid = os.getpid()
    done = 0
    t0 = time.perf_counter()
    while done < jobs:
        now = datetime.now(UTC)
        if batch:
            rows = store.claim(now, min(BATCH, jobs - done), WORKER, pid)
            if not rows:
                raise RuntimeError(f"the claim found no job after {done}")
            store.finish_jobs([{"job_id": r["id"], "status": "success", "now": now}
                               for r in rows])
            done += len(rows)
        else:
            rows = store.claim(now, 1, WORKER, pid)
            if not rows:
                raise RuntimeError(f"the claim found no job after {done}")
            store.finish_job(rows[0]["id"], "success", now)
            done += 1
    return (time.perf_counter() - t0) / jobs * 1e6


def web_timings(kit: Any) -> dict:
    from cronkit.web import create_app
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    out: dict[str, Any] = {}
    with TestClient(create_app(kit)) as client:
        for key, url in PAGES.items():
            response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"GET {url}: {response.status_code}")
            times = []
            for _ in range(REQUESTS):
                t0 = time.perf_counter()
                client.get(url)
                times.append((time.perf_counter() - t0) * 1000)
            out[key] = statistics.median(times)
    return out


def measure(folder: str, pending: int, finished: int, jobs: int, web: bool) -> dict:
    import bench.runners  # noqa: F401  (registers "noop")
    import cronkit

    path = f"{folder}/scale.db"
    cronkit.Cronkit(store=f"sqlite:///{path}").close()     # the schema, made by cronkit
    fill_s = fill(path, pending, finished)
    kit = cronkit.Cronkit(store=f"sqlite:///{path}")
    kit.site(SITE)
    store = kit.store
    out: dict[str, Any] = {"pending": pending, "finished": finished, "jobs": jobs,
                           "fill_s": fill_s}
    try:
        claim_finish(store, 50, batch=False)                  # warm: statements, caches
        # The web figures first: on the store as filled (the claims below end some jobs).
        if web:
            out.update(web_timings(kit))
        out["one_us"] = claim_finish(store, jobs, batch=False)
        if hasattr(store, "finish_jobs"):
            out["batch_us"] = claim_finish(store, jobs, batch=True)
        else:
            out["batch_note"] = "the store has no finish_jobs"
        left = store.count_jobs(status="pending")
        expected = pending - 50 - jobs * (2 if "batch_us" in out else 1)
        if left != expected:
            raise RuntimeError(f"{left} pending jobs left, {expected} expected")
    finally:
        kit.close()
    return out
