"""One measurement, in a fresh process: ``python -m bench.measure SPEC_JSON``.

Prints ``BENCH_RESULT {json}`` as its last line. The harness (``bench/__main__.py``)
runs one of these per workload, system and run, so that no run inherits another's
memory, threads or registrations.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import sqlite3
import sys
import tempfile
import time

from bench import record as rec
from bench.systems import SYSTEMS, NotAvailable, RQScheduled

POLL = 0.002


def _sigterm(*_):
    raise SystemExit("terminated by the harness")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def wait_count(system, path: str, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    checked = time.monotonic()
    while rec.count(path) < n:
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"{rec.count(path)} of {n} jobs ran in {timeout:g} s")
        if now - checked > 1.0:
            system.check()
            checked = now
        time.sleep(POLL)


def wait_drained(system, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not system.drained():
        if time.monotonic() > deadline:
            raise TimeoutError("the queue did not drain")
        time.sleep(POLL)


def warm_up(system, path: str, workers: int, timeout: float) -> None:
    """Run a few jobs first: workers are up, connected and imported before timing."""
    system.submit(workers * 2)
    wait_count(system, path, workers * 2, timeout)
    wait_drained(system)
    time.sleep(0.2)
    rec.reset(path)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# -- the workloads --------------------------------------------------------------


def throughput(system, path: str, n: int, workers: int) -> dict:
    system.setup()
    system.start(workers)
    warm_up(system, path, workers, timeout=120)
    t0 = time.perf_counter()
    system.submit(n)
    t1 = time.perf_counter()
    wait_count(system, path, n, timeout=max(120, n / 20))
    wait_drained(system)
    t2 = time.perf_counter()
    return {"jobs_per_s": n / (t2 - t0), "seconds": t2 - t0, "submit_per_s": n / (t1 - t0)}


def overhead(system, path: str, n: int) -> dict:
    """Queue ``n`` jobs, then one worker (concurrency 1) drains them; the cost per job
    is the time between the first and the last job's start over n - 1: worker start-up
    and submission are not counted, everything a worker does per job is."""
    system.setup()
    system.submit(n)
    system.start(1)
    wait_count(system, path, n, timeout=max(120, n / 10))
    wait_drained(system)
    starts = rec.starts(path)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    return {"ms_per_job": (starts[-1] - starts[0]) / (n - 1) * 1000,
            "median_gap_ms": percentile(gaps, 0.5) * 1000}


def lateness(system, path: str, n: int, workers: int, ahead: float = 2.0) -> dict:
    system.setup()
    system.start(workers)
    warm_up(system, path, workers, timeout=120)
    # The due instant is a whole second, 2 to 3 s ahead: RQ keeps scheduled times in
    # whole seconds (it would start a fractional-second job early).
    asked = time.time()
    due = float(math.ceil(asked + ahead))
    system.submit_at(n, due)
    submitted = time.time()
    if submitted > due:
        raise RuntimeError(f"submitting {n} jobs took {submitted - asked:.2f} s, past the due time")
    wait_count(system, path, n, timeout=120)
    late = [(s - due) * 1000 for s in rec.starts(path)]
    return {"p50_ms": percentile(late, 0.5), "p99_ms": percentile(late, 0.99),
            "max_ms": max(late), "min_ms": min(late),
            "submit_s": submitted - asked}


SUBMIT_LABELS = {
    "cronkit-sqlite": "cronkit, SQLite (WAL), `site.submit()` per job",
    "huey-sqlite": "Huey 3, SqliteHuey (WAL, synchronous=NORMAL), `task()` per job (enqueue)",
}


def submit(system, n: int) -> dict:
    """Submit ``n`` no-op jobs with no worker running: jobs/s of the submitting call(s)."""
    system.label = SUBMIT_LABELS.get(system.name, system.label)
    system.setup()
    t0 = time.perf_counter()
    system.submit(n)
    t1 = time.perf_counter()
    queued = system.queued()
    if queued != n:
        raise RuntimeError(f"{queued} jobs queued after submitting {n}")
    return {"per_s": n / (t1 - t0), "seconds": t1 - t0}


def periodicity(i: int) -> str:
    return f"{i % 60} {(i // 60) % 24} * * *"


def crontab_cronkit_save(folder: str, n: int) -> dict:
    import bench.runners  # noqa: F401
    import cronkit
    kit = cronkit.Cronkit(store=f"sqlite:///{folder}/cronkit.db")
    crontab = kit.site("bench").crontab
    t0 = time.perf_counter()
    for i in range(n):
        crontab.add_cron(cronkit.Cron(name="noop", periodicity=periodicity(i)))
    t1 = time.perf_counter()
    crontab.save()
    t2 = time.perf_counter()
    crontab.save()
    t3 = time.perf_counter()
    pending = kit.store.count_jobs(status="pending")
    if pending != n:
        raise RuntimeError(f"{pending} pending jobs after saving {n} crons")
    return {"build_s": t1 - t0, "save_s": t2 - t1, "build_save_s": t2 - t0,
            "resave_s": t3 - t2, "rss_save_mb": rss_mb()}


def crontab_cronkit_restore(folder: str, n: int) -> dict:
    db = f"{folder}/cronkit.db"
    with sqlite3.connect(db) as conn:   # the restart wiped the queue's cron jobs
        conn.execute("DELETE FROM cronkit_jobs WHERE status = 'pending' AND cron_uid IS NOT NULL")
    import bench.runners  # noqa: F401
    import cronkit
    t0 = time.perf_counter()
    kit = cronkit.Cronkit(store=f"sqlite:///{db}")
    kit.restore()
    t1 = time.perf_counter()
    pending = kit.store.count_jobs(status="pending")
    if pending != n:
        raise RuntimeError(f"{pending} pending jobs after restoring {n} crons")
    return {"restore_s": t1 - t0, "rss_restore_mb": rss_mb()}


def crontab_apscheduler(folder: str, n: int, store: str) -> dict:
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger
    jobstores = {}
    if store == "sqlite":
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        jobstores["default"] = SQLAlchemyJobStore(url=f"sqlite:///{folder}/aps.db")
    scheduler = BackgroundScheduler(jobstores=jobstores, timezone="UTC")
    scheduler.start(paused=True)
    t0 = time.perf_counter()
    for i in range(n):
        scheduler.add_job("bench.record:record",
                          CronTrigger.from_crontab(periodicity(i), timezone="UTC"), id=f"c{i}")
    t1 = time.perf_counter()
    scheduler.shutdown(wait=False)
    return {"build_save_s": t1 - t0, "rss_save_mb": rss_mb()}


def main() -> None:
    signal.signal(signal.SIGTERM, _sigterm)
    spec = json.loads(sys.argv[1])
    workload, name = spec["workload"], spec["system"]
    if workload == "crontab":
        folder, n = spec["dir"], spec["n"]
        if name == "cronkit":
            phase = crontab_cronkit_save if spec["phase"] == "save" else crontab_cronkit_restore
            out = phase(folder, n)
        else:
            out = crontab_apscheduler(folder, n, name.rsplit("-", 1)[1])
        print("BENCH_RESULT " + json.dumps(out), flush=True)
        return
    if workload == "scale":
        from bench import scale
        with tempfile.TemporaryDirectory(prefix="cronkit-bench-scale-") as folder:
            out = scale.measure(folder, spec["pending"], spec["finished"], spec["jobs"],
                                spec.get("web", True))
        print("BENCH_RESULT " + json.dumps(out), flush=True)
        return
    cls = RQScheduled if (workload == "lateness" and name == "rq-redis") else SYSTEMS[name]
    with tempfile.TemporaryDirectory(prefix="cronkit-bench-") as tmp:
        path = os.path.join(tmp, "record")
        rec.reset(path)
        os.environ["BENCH_RECORD"] = path
        system = cls(tmp, spec.get("redis_url"))
        try:
            if workload == "throughput":
                out = throughput(system, path, spec["n"], spec["workers"])
            elif workload == "overhead":
                out = overhead(system, path, spec["n"])
            elif workload == "lateness":
                out = lateness(system, path, spec["n"], spec["workers"])
            elif workload == "submit":
                out = submit(system, spec["n"])
            else:
                raise SystemExit(f"unknown workload {workload!r}")
        except NotAvailable as exc:
            out = {"unavailable": str(exc)}
        finally:
            system.stop()
        out["label"] = system.label
    print("BENCH_RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
