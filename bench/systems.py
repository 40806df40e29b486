"""The queue systems under test, behind one small interface.

A system is set up in a fresh temp folder, starts its workers (real worker processes
for the peers, as their users run them; cronkit's in-process worker or worker
processes), takes no-op jobs to run now (``submit``) or at an instant (``submit_at``),
and is stopped. Every job runs ``bench.record.record``.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def cli_available() -> bool:
    """True when ``python -m cronkit worker`` exists."""
    try:
        return (importlib.util.find_spec("cronkit.cli") is not None
                and importlib.util.find_spec("cronkit.__main__") is not None)
    except ImportError:
        return False


class Procs:
    """Worker processes, each in its own process group (so that Celery's pool children
    and RQ's work horses go with it)."""

    def __init__(self, tmp: str):
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def spawn(self, cmd: list[str], name: str) -> subprocess.Popen:
        log = open(os.path.join(self.tmp, f"{name}-{len(self.procs)}.log"), "wb")
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def check(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                logs = sorted(Path(self.tmp).glob("*.log"))
                tail = "\n".join(f.read_text(errors="replace")[-1500:] for f in logs)
                raise RuntimeError(f"worker {p.args!r} exited with {p.returncode}\n{tail}")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)   # the group: pool children, work horses
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []


class NotAvailable(RuntimeError):
    """What a system cannot do in this checkout (a row then says why, not a failure)."""


class System:
    name = "?"
    label = "?"

    def __init__(self, tmp: str, redis_url: str | None = None):
        self.tmp = tmp
        self.redis_url: str = redis_url or ""   # "" for the systems that use no Redis
        self.procs = Procs(tmp)

    def setup(self) -> None:
        pass

    def start(self, workers: int) -> None:
        raise NotImplementedError

    def submit(self, n: int) -> None:
        raise NotImplementedError

    def submit_at(self, n: int, due: float) -> None:
        raise NotImplementedError

    def drained(self) -> bool:
        return True

    def check(self) -> None:
        self.procs.check()

    def stop(self) -> None:
        self.procs.stop()

    def flush_redis(self) -> None:
        import redis
        redis.Redis.from_url(self.redis_url).flushall()


# -- cronkit -------------------------------------------------------------------


class Cronkit(System):
    name = "cronkit-sqlite"
    label = "cronkit, SQLite (WAL), in-process worker"

    def setup(self) -> None:
        import bench.runners  # noqa: F401
        import cronkit
        self.url = f"sqlite:///{self.tmp}/cronkit.db"
        self.kit = cronkit.Cronkit(store=self.url)
        self.site = self.kit.site("bench")
        self.worker = None

    def start(self, workers: int) -> None:
        self.worker = self.kit.worker(concurrency=workers).start()

    def submit(self, n: int) -> None:
        submit = self.site.submit
        for _ in range(n):
            submit("noop")

    def submit_at(self, n: int, due: float) -> None:
        when = utc(due)
        for _ in range(n):
            self.site.submit("noop", run_after=when)

    def submit_bulk(self, n: int) -> None:
        submit_many = getattr(self.site, "submit_many", None)
        if submit_many is None:
            raise NotAvailable("site.submit_many does not exist yet")
        jobs = submit_many([{"type": "noop"} for _ in range(n)])
        if len(jobs) != n:
            raise RuntimeError(f"submit_many returned {len(jobs)} jobs for {n} specs")

    def queued(self) -> int:
        return self.kit.store.count_jobs(status="pending")

    def drained(self) -> bool:
        return self.kit.store.count_jobs(status=["pending", "running"]) == 0

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        super().stop()
        self.kit.close()


class CronkitProcesses(Cronkit):
    name = "cronkit-sqlite-procs"
    label = "cronkit, SQLite (WAL), worker processes (concurrency 1 each)"

    def start(self, workers: int) -> None:
        if cli_available():
            self.label += ", `cronkit worker` CLI"
            for _ in range(workers):
                self.procs.spawn([sys.executable, "-m", "cronkit", "worker", "--store", self.url,
                                  "--concurrency", "1", "--import", "bench.runners",
                                  "--log-level", "warning"], "cronkit")
        else:
            self.label += " (no CLI yet: bench/cronkit_worker.py, the same Worker)"
            for _ in range(workers):
                self.procs.spawn([sys.executable, "-m", "bench.cronkit_worker", self.url, "1"],
                                 "cronkit")


class CronkitWorkerProcess(Cronkit):
    """One ``cronkit worker`` process with ``workers`` threads: the same shape as
    Huey's consumer (``huey_consumer -w N -k thread``, one process of N threads), the
    submitting loop in the measuring process: the like-for-like figure of the throughput
    rows of issue 16's table against Huey."""

    name = "cronkit-sqlite-proc"
    label = "cronkit, SQLite (WAL), one `cronkit worker` process (threads executor)"

    def start(self, workers: int) -> None:
        if not cli_available():
            raise NotAvailable("no `cronkit worker` CLI in this checkout")
        self.procs.spawn([sys.executable, "-m", "cronkit", "worker", "--store", self.url,
                          "--concurrency", str(workers), "--import", "bench.runners",
                          # Its longest sleep as Huey's (-m 0.1): no wake-up crosses
                          # processes on SQLite.
                          "--poll", "0.1", "--log-level", "warning"], "cronkit")


class CronkitBulk(Cronkit):
    name = "cronkit-sqlite-bulk"
    label = "cronkit, SQLite (WAL), `site.submit_many(specs)`, one call for all"

    def submit(self, n: int) -> None:
        self.submit_bulk(n)


class CronkitRunPending(Cronkit):
    name = "cronkit-run-pending"
    label = "cronkit, SQLite, `kit.run_pending()` in the calling thread (floor)"

    def start(self, workers: int) -> None:
        self.kit.run_pending()


# -- Huey ----------------------------------------------------------------------


class Huey(System):
    kind = "sqlite"
    name = "huey-sqlite"
    label = "Huey 3, SqliteHuey (WAL, synchronous=NORMAL), consumer with thread workers"

    def setup(self) -> None:
        os.environ["BENCH_HUEY"] = self.kind
        os.environ["BENCH_HUEY_DB"] = f"{self.tmp}/huey.db"
        if self.redis_url:
            os.environ["BENCH_REDIS_URL"] = self.redis_url
            if self.kind == "redis":
                self.flush_redis()
        from bench.peers import huey_app
        self.app = huey_app
        self.app.huey.flush()

    def start(self, workers: int) -> None:
        # Polling shortened (-d/-m) so that an idle consumer never backs off for
        # seconds: in Huey's favour. Scheduler at its finest granularity (1 s, default).
        self.procs.spawn([str(BIN / "huey_consumer"), "bench.peers.huey_app.huey", "-w",
                          str(workers), "-k", "thread", "-d", "0.01", "-m", "0.1", "-q"], "huey")

    def submit(self, n: int) -> None:
        noop = self.app.noop
        for _ in range(n):
            noop()

    def submit_at(self, n: int, due: float) -> None:
        when = utc(due)
        for _ in range(n):
            self.app.noop.schedule(eta=when)

    def submit_bulk(self, n: int) -> None:
        # Huey has no bulk enqueue for plain tasks: ``task.map(iterable)`` is its one
        # "enqueue many" API (a loop of enqueue, one commit each); a pipeline is a chain
        # of dependent tasks, not a batch.
        self.app.noop.map([() for _ in range(n)])

    def queued(self) -> int:
        return self.app.huey.pending_count()


class HueyMap(Huey):
    name = "huey-sqlite-map"
    label = ("Huey 3, SqliteHuey (WAL, synchronous=NORMAL), `task.map(iterable)` "
             "(its enqueue-many API)")

    def submit(self, n: int) -> None:
        self.submit_bulk(n)


class HueyRedis(Huey):
    kind = "redis"
    name = "huey-redis"
    label = "Huey 3, RedisHuey, consumer with thread workers"


# -- Celery --------------------------------------------------------------------


class Celery(System):
    name = "celery-redis"
    label = "Celery 5, Redis broker, prefork worker"

    def setup(self) -> None:
        os.environ["BENCH_REDIS_URL"] = self.redis_url
        self.flush_redis()
        from bench.peers import celery_app
        self.app = celery_app

    def start(self, workers: int) -> None:
        self.procs.spawn([str(BIN / "celery"), "-A", "bench.peers.celery_app", "worker",
                          "-c", str(workers), "-P", "prefork", "-l", "WARNING"], "celery")

    def submit(self, n: int) -> None:
        delay = self.app.noop.delay
        for _ in range(n):
            delay()

    def submit_at(self, n: int, due: float) -> None:
        when = utc(due)
        for _ in range(n):
            self.app.noop.apply_async(eta=when)


# -- RQ ------------------------------------------------------------------------


class RQ(System):
    name = "rq-redis"
    label = ("RQ, Redis, `rq worker -w rq.worker.SimpleWorker` processes "
             "(no fork per job: in RQ's favour)")
    scheduler = False

    def setup(self) -> None:
        import redis
        from rq import Queue
        os.environ["BENCH_REDIS_URL"] = self.redis_url
        self.flush_redis()
        self.queue = Queue("bench", connection=redis.Redis.from_url(self.redis_url))
        from bench.peers import rq_tasks
        self.fn = rq_tasks.noop

    def start(self, workers: int) -> None:
        extra = ["--with-scheduler"] if self.scheduler else []
        for _ in range(workers):
            self.procs.spawn([str(BIN / "rq"), "worker", "-u", self.redis_url, "-q", "-w",
                              "rq.worker.SimpleWorker", *extra,
                              "bench"], "rq")

    def submit(self, n: int) -> None:
        enqueue, fn = self.queue.enqueue, self.fn
        for _ in range(n):
            enqueue(fn)

    def submit_at(self, n: int, due: float) -> None:
        when = utc(due)
        for _ in range(n):
            self.queue.enqueue_at(when, self.fn)


class RQScheduled(RQ):
    label = "RQ, Redis, `rq worker --with-scheduler` processes"
    scheduler = True


# -- APScheduler 3 (in-process) --------------------------------------------------


class APScheduler(System):
    name = "apscheduler-memory"
    label = "APScheduler 3, BackgroundScheduler, MemoryJobStore"
    store = "memory"

    def setup(self) -> None:
        self.scheduler: Any = None

    def start(self, workers: int) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler
        jobstores = {}
        if self.store == "sqlite":
            from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
            jobstores["default"] = SQLAlchemyJobStore(url=f"sqlite:///{self.tmp}/aps.db")
        self.scheduler = BackgroundScheduler(
            jobstores=jobstores, executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"misfire_grace_time": None}, timezone="UTC")
        self.scheduler.start()

    def submit(self, n: int) -> None:
        from bench.record import record
        for _ in range(n):
            self.scheduler.add_job(record)

    def submit_at(self, n: int, due: float) -> None:
        from bench.record import record
        when = utc(due)
        for _ in range(n):
            self.scheduler.add_job(record, "date", run_date=when)

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)


class APSchedulerSQLite(APScheduler):
    name = "apscheduler-sqlite"
    label = "APScheduler 3, BackgroundScheduler, SQLAlchemyJobStore on SQLite"
    store = "sqlite"


SYSTEMS = {cls.name: cls for cls in (Cronkit, CronkitProcesses, CronkitWorkerProcess,
                                     CronkitBulk, CronkitRunPending,
                                     Huey, HueyMap, HueyRedis, Celery, RQ, APScheduler,
                                     APSchedulerSQLite)}
