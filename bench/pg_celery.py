"""End-to-end throughput of no-op jobs on PostgreSQL, with and without Celery, beside
Celery alone on the same Redis, in one run.

    python -m bench.pg_celery [--jobs N]

Starts a throwaway PostgreSQL and Redis (``tests/servers.py``), then measures, from
the first submission to the last job finished, N no-op jobs through:

1. 4 ``cronkit worker`` processes (threads executor, concurrency 4) on PostgreSQL;
2. 2 dispatching ``cronkit worker --executor celery`` + 1 Celery worker (prefork, 4
   processes) on PostgreSQL and Redis;
2b. Procrastinate on the same PostgreSQL server: 4 ``procrastinate worker`` processes,
   the same N jobs deferred with ``batch_defer`` (``bench/pg_peers.py``);
3. Celery alone: the same Celery worker set-up running a no-op task that counts itself
   in Redis, N tasks sent with ``delay()``;

and prints jobs/s of each and the ratios cronkit / Celery alone (and cronkit /
Procrastinate); its last line, ``BENCH_RESULT {json}``, is what ``python -m bench``
reads for its ``postgres`` workload.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from celery import Celery

ROOT = Path(__file__).resolve().parent.parent

# -- Celery alone: the same broker, JSON, a no-op task that counts itself ----------------

plain = Celery("plain", broker=os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/0"),
               set_as_current=False)
plain.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True,
                  worker_prefetch_multiplier=1, task_default_queue="plain",
                  worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)


@plain.task(name="bench.noop", ignore_result=True)
def noop() -> None:
    _redis().incr("bench:done")


_client = None


def _redis():
    global _client
    if _client is None:
        import redis
        _client = redis.Redis.from_url(plain.conf.broker_url)
    return _client


# -- helpers ------------------------------------------------------------------------------


def _env(store: str, broker: str) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), CRONKIT_STORE=store, CRONKIT_BROKER=broker,
                BENCH_BROKER=broker, CRONKIT_IMPORTS="tests.contracts.runners")


def _spawn(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cronkit_workers(store: str, broker: str, n: int, *extra: str, concurrency: int = 4):
    return [_spawn(["-m", "cronkit", "--store", store, "worker", "--import",
                    "tests.contracts.runners", "--concurrency", str(concurrency),
                    "--log-level", "warning", *extra], _env(store, broker)) for _ in range(n)]


def _celery_worker(app: str, store: str, broker: str, queue: str | None = None):
    args = ["-m", "celery", "-A", app, "worker", "-P", "prefork", "-c", "4",
            "--loglevel", "warning", "--without-gossip", "--without-mingle",
            "--without-heartbeat"]
    if queue:
        args += ["-Q", queue]
    return _spawn(args, _env(store, broker))


def _fresh_db(server) -> str:
    return server.url_for(server.create_database("bench"))


def _drain_cronkit(store_url: str, n: int, procs: list) -> float:
    import cronkit
    import tests.contracts.runners  # noqa: F401  (registers "noop")

    kit = cronkit.Cronkit(store=store_url)
    site = kit.site("bench")
    time.sleep(3)   # workers up and idle
    start = time.perf_counter()
    for _ in range(n):
        site.submit("noop")
    while site.jobs.count(status=["pending", "running"]):
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    assert site.jobs.count(status="success") == n, "not every job succeeded"
    _stop(procs)
    kit.close()
    return n / elapsed


def _drain_plain(n: int, procs: list) -> float:
    client = _redis()
    client.delete("bench:done")
    time.sleep(3)
    start = time.perf_counter()
    for _ in range(n):
        noop.delay()
    while int(client.get("bench:done") or 0) < n:
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    _stop(procs)
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from tests.servers import PostgresServer, RedisServer

    tmp = tempfile.mkdtemp(prefix="cronkit-bench-")
    pg, rd = PostgresServer(tmp).start(), RedisServer(tmp).start()
    try:
        plain.conf.broker_url = rd.url
        n = args.jobs

        url = _fresh_db(pg)
        pg_rate = _drain_cronkit(url, n, _cronkit_workers(url, rd.url, 4))
        plain_rate_1 = _drain_plain(n, [_celery_worker("bench.pg_celery:plain", url, rd.url,
                                                       "plain")])
        procrastinate = _drain_procrastinate(pg, n)

        url = _fresh_db(pg)
        procs = [_celery_worker("cronkit.executors.celery", url, rd.url)]
        procs += _cronkit_workers(url, rd.url, 2, "--executor", "celery", concurrency=16)
        celery_rate = _drain_cronkit(url, n, procs)
        plain_rate_2 = _drain_plain(n, [_celery_worker("bench.pg_celery:plain", url, rd.url,
                                                       "plain")])
    finally:
        pg.close()
        rd.close()
    print(f"no-op jobs, {n} each, end to end (submit -> finished):")
    print(f"  cronkit, PostgreSQL, 4 workers (threads x4)      {pg_rate:8.0f} jobs/s")
    print(f"  Celery alone, same Redis, prefork x4              {plain_rate_1:8.0f} tasks/s"
          f"   ratio cronkit/Celery {pg_rate / plain_rate_1:.2f}")
    _print_procrastinate(pg_rate, procrastinate)
    print(f"  cronkit via Celery (2 dispatchers, prefork x4)    {celery_rate:8.0f} jobs/s")
    print(f"  Celery alone, same Redis, prefork x4              {plain_rate_2:8.0f} tasks/s"
          f"   ratio cronkit/Celery {celery_rate / plain_rate_2:.2f}")
    # One line for the harness (``python -m bench --only postgres``).
    print("BENCH_RESULT " + json.dumps({
        "n": n, "cronkit_pg": pg_rate, "celery_alone_1": plain_rate_1,
        "cronkit_celery": celery_rate, "celery_alone_2": plain_rate_2,
        "procrastinate": procrastinate}), flush=True)
    return 0


# -- Procrastinate, the PostgreSQL peer (bench/pg_peers.py) --------------------------------


def _drain_procrastinate(pg, n: int) -> dict:
    """Procrastinate on the same server, same job count, 4 worker processes; a dict with
    ``jobs_per_s`` and ``label``, or ``error``: a failing peer does not lose the run."""
    from bench.pg_peers import drain_procrastinate
    try:
        return drain_procrastinate(pg, n, processes=4)
    except Exception as exc:  # noqa: BLE001  (reported in the table, not raised)
        return {"error": f"{type(exc).__name__}: {exc}"}


def _print_procrastinate(pg_rate: float, result: dict) -> None:
    if "error" in result:
        print(f"  Procrastinate, same PostgreSQL: FAILED ({result['error'][:200]})")
        return
    rate = result["jobs_per_s"]
    print(f"  Procrastinate, same PostgreSQL, 4 workers         {rate:8.0f} jobs/s"
          f"   ratio cronkit/Procrastinate {pg_rate / rate:.2f}")


if __name__ == "__main__":
    sys.exit(main())
