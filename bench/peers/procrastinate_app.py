"""Procrastinate for the benchmark: an App on ``$BENCH_PROCRASTINATE_DSN`` (libpq
conninfo or a ``postgresql://`` URL) with one no-op task.

Run as its users run it: ``procrastinate --app=bench.peers.procrastinate_app.app worker``.
The task is ``async``: a no-op coroutine runs on the worker's event loop, so the
worker's ``--concurrency`` applies (a sync task would go to a thread per job, and
Procrastinate's docs advise against concurrency for sync tasks)."""

import os

from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ.get("BENCH_PROCRASTINATE_DSN", "")))


@app.task(name="bench.noop")
async def noop() -> None:
    return None
