"""``python -m bench``: cronkit against Huey, Celery, RQ and APScheduler 3, in one run.

Workloads (all no-op jobs; every job appends its start time to one file, and that
file is how completions are counted, for cronkit and the peers alike):

- ``throughput``: workers up and warm, then submit N jobs and wait until all ran:
  end-to-end jobs/s, 2 workers.
- ``overhead``: N jobs queued, then 1 worker (concurrency 1) drains them: ms per job
  between the first and the last job's start.
- ``lateness``: 200 jobs due at one instant (a whole second, 2-3 s ahead), workers
  running: p50 / p99 / max of (start - due).
- ``crontab``: save + sync N crons, re-save unchanged, restore after a restart, peak
  RSS; APScheduler 3 adding the same N cron jobs.
- ``submit``: N jobs submitted with no worker running: ``site.submit`` per job and
  ``site.submit_many`` (bulk) against Huey-SQLite's enqueue per call and ``task.map``.
- ``scale``: claim + finish cost per job with 10^4, 10^5, 10^6 pending jobs and with
  10^6 finished jobs kept, and the dashboard's jobs page on those stores
  (``bench/scale.py``).
- ``postgres``: ``bench/pg_celery.py`` in a fresh process: 4 ``cronkit worker``
  processes on a throwaway PostgreSQL, Celery alone on Redis, Procrastinate on the
  same PostgreSQL, cronkit through Celery (``--executor celery``).

The summary table is issue 16's: every row with cronkit's figure, the peer's, the
ratio, the target and whether it is met; a row that this run could not measure says why.

Each measurement runs in a fresh process (``bench/measure.py``); runs alternate
cronkit and the peers; 3 runs each (``--runs``), median [min-max]. Redis is Debian's
``redis-server``, started on 127.0.0.1 for the run and stopped after.
Results: ``bench/results/latest.json`` and ``bench/results/latest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"

SIZES: dict[str, dict[str, Any]] = {
    "full": {"throughput": 10_000, "overhead": 2_000, "lateness": 200, "crontab": [10_000, 100_000],
             "submit": 10_000, "postgres": 3_000,
             "scale": {"pending": [10_000, 100_000, 1_000_000], "finished": 1_000_000,
                       "jobs": 2_000},
             "runs": 3},
    "quick": {"throughput": 2_000, "overhead": 500, "lateness": 200, "crontab": [10_000],
              "submit": 2_000, "postgres": 1_000,
              "scale": {"pending": [10_000, 100_000], "finished": 100_000, "jobs": 1_000},
              "runs": 1},
}

# system name -> role; the first cronkit system of a workload is its reference.
WORKLOADS = {
    "throughput": ["cronkit-sqlite", "cronkit-sqlite-proc", "cronkit-sqlite-procs", "huey-sqlite",
                   "huey-redis", "celery-redis", "rq-redis"],
    "overhead": ["cronkit-sqlite", "cronkit-sqlite-procs", "cronkit-run-pending", "huey-sqlite",
                 "huey-redis", "celery-redis", "rq-redis"],
    "lateness": ["cronkit-sqlite", "apscheduler-memory", "apscheduler-sqlite", "celery-redis",
                 "huey-redis", "huey-sqlite", "rq-redis"],
    "crontab": ["cronkit", "apscheduler-memory", "apscheduler-sqlite"],
    "submit": ["cronkit-sqlite", "cronkit-sqlite-bulk", "huey-sqlite", "huey-sqlite-map"],
    "scale": ["cronkit-sqlite"],
    "postgres": ["cronkit-postgres", "celery-redis", "procrastinate", "cronkit-via-celery"],
}
# The cronkit system the peers' ratios are taken from (else cronkit-sqlite): for the
# throughput, one `cronkit worker` process of 2 threads beside the submitting process,
# the shape of Huey's consumer (cronkit-sqlite has its worker threads in the submitting
# process, sharing its GIL with the submitting loop).
REFERENCE = {"throughput": "cronkit-sqlite-proc"}
NEEDS_REDIS = {"throughput", "overhead", "lateness"}
# APScheduler on SQLite commits every add_job: 100,000 of them take ~10x the 10,000 figure
# (minutes per run), so by default it is measured at 10,000 only.
SKIP = {("crontab", "apscheduler-sqlite", 100_000)}

HEADLINE = {"throughput": ("jobs_per_s", "jobs/s", True),
            "overhead": ("ms_per_job", "ms/job", False),
            "lateness": ("p99_ms", "p99 ms", False),
            "crontab": ("build_save_s", "add + save s", False)}


def log(*args) -> None:
    print(*args, flush=True)


# -- running one measurement ----------------------------------------------------


def measure(spec: dict, timeout: float, command: list[str] | None = None) -> dict:
    """Run bench.measure (or ``command``, a ``python -m`` argument list) in a fresh
    process; its BENCH_RESULT dict, or {"error": ...}."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = command or ["bench.measure", json.dumps(spec)]
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)          # it stops its own workers on the way out
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return {"error": f"timed out after {timeout:g} s"}
    for line in reversed(out.splitlines()):
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):])
    tail = "\n".join((err or out).strip().splitlines()[-8:])
    return {"error": f"exit {proc.returncode}: {tail}"}


def fmt(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "—"
    if digits is None:
        a = abs(value)
        digits = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3
    return f"{value:,.{digits}f}"


def describe(name: str, run: dict, workload: str) -> str:
    if "error" in run:
        return f"FAILED: {run['error'].splitlines()[-1][:200]}"
    if "unavailable" in run:
        return f"not available: {run['unavailable']}"
    if workload == "submit":
        return f"{fmt(run['per_s'])} jobs/s submitted"
    if workload == "scale":
        return (f"claim+finish {fmt(run['one_us'])} µs/job, batched "
                f"{fmt(run.get('batch_us'))} µs/job; jobs page {fmt(run.get('jobs_page_ms'))} ms, "
                f"site {fmt(run.get('jobs_page_site_ms'))} ms, REST {fmt(run.get('api_jobs_ms'))} ms "
                f"(fill {fmt(run['fill_s'])} s)")
    if workload == "postgres":
        return ", ".join(f"{k} {fmt(v)}" for k, v in run.items()
                         if k in PG_METRICS and isinstance(v, (int, float)))
    if workload == "throughput":
        return f"{fmt(run['jobs_per_s'])} jobs/s (submit {fmt(run['submit_per_s'])}/s)"
    if workload == "overhead":
        return f"{fmt(run['ms_per_job'])} ms/job"
    if workload == "lateness":
        return f"p50 {fmt(run['p50_ms'])} p99 {fmt(run['p99_ms'])} max {fmt(run['max_ms'])} ms"
    return ", ".join(f"{k} {fmt(v)}" for k, v in run.items() if isinstance(v, (int, float)))


def run_queue_workload(workload: str, sizes: dict, runs: int, redis_url: str | None,
                       data: dict) -> None:
    n = sizes[workload]
    workers = {"overhead": 1, "submit": 0}.get(workload, 2)
    section = data["workloads"].setdefault(workload, {"n": n, "workers": workers, "systems": {}})
    for r in range(runs):
        for name in WORKLOADS[workload]:
            spec = {"workload": workload, "system": name, "n": n, "workers": workers,
                    "redis_url": redis_url}
            result = measure(spec, timeout=600 if workload == "throughput" else 300)
            entry = section["systems"].setdefault(name, {"runs": []})
            if "label" in result:
                entry["label"] = result.pop("label")
            entry["runs"].append(result)
            log(f"  {workload:<10} run {r + 1}/{runs}  {name:<22} "
                f"{describe(name, result, workload)}")


def scale_points(sizes: dict) -> list[tuple[int, int]]:
    """(pending, finished kept) of each scale point: every backlog size, then the
    smallest backlog with the finished jobs kept."""
    s = sizes["scale"]
    return [(p, 0) for p in s["pending"]] + [(min(s["pending"]), s["finished"])]


def run_scale(sizes: dict, runs: int, data: dict) -> None:
    section = data["workloads"].setdefault("scale", {"jobs": sizes["scale"]["jobs"],
                                                     "points": {}})
    for r in range(runs):
        for pending, finished in scale_points(sizes):
            key = f"{pending}+{finished}"
            entry = section["points"].setdefault(key, {"pending": pending, "finished": finished,
                                                       "runs": []})
            spec = {"workload": "scale", "system": "cronkit-sqlite", "pending": pending,
                    "finished": finished, "jobs": sizes["scale"]["jobs"], "web": True}
            result = measure(spec, timeout=max(300, (pending + finished) / 1000))
            entry["runs"].append(result)
            log(f"  scale      {pending:>9,} pending {finished:>9,} finished run {r + 1}/{runs}  "
                f"{describe('cronkit-sqlite', result, 'scale')}")


PG_METRICS = ("cronkit_pg", "celery_alone_1", "procrastinate", "cronkit_celery",
              "celery_alone_2")


def run_postgres(sizes: dict, runs: int, data: dict) -> None:
    n = sizes["postgres"]
    section = data["workloads"].setdefault("postgres", {"n": n, "runs": []})
    for r in range(runs):
        result = measure({}, timeout=max(900, n), command=["bench.pg_celery", "--jobs", str(n)])
        peer = result.pop("procrastinate", None)
        if isinstance(peer, dict):
            if "error" in peer:
                result["procrastinate_error"] = peer["error"]
            else:
                result["procrastinate"] = peer["jobs_per_s"]
                result["procrastinate_defer_per_s"] = peer.get("defer_per_s")
                section["procrastinate_label"] = peer.get("label")
        section["runs"].append(result)
        log(f"  postgres   {n:>7,} run {r + 1}/{runs}  {describe('', result, 'postgres')}"
            + (f"; procrastinate FAILED: {result['procrastinate_error'][:200]}"
               if "procrastinate_error" in result else ""))


def run_crontab(sizes: dict, runs: int, data: dict) -> None:
    section = data["workloads"].setdefault("crontab", {"sizes": sizes["crontab"], "results": {}})
    for n in sizes["crontab"]:
        for r in range(runs):
            for name in WORKLOADS["crontab"]:
                key = f"{name}@{n}"
                entry = section["results"].setdefault(key, {"system": name, "n": n, "runs": []})
                if ("crontab", name, n) in SKIP:
                    entry["skipped"] = ("APScheduler on SQLite commits each add_job: "
                                        "~10x its 10,000 time")
                    if r == 0:
                        log(f"  crontab    {n:>7,}  {name:<22} skipped ({entry['skipped']})")
                    continue
                with tempfile.TemporaryDirectory(prefix="cronkit-bench-") as folder:
                    spec = {"workload": "crontab", "system": name, "n": n, "dir": folder}
                    timeout = max(300, n / 100)
                    if name == "cronkit":
                        result = measure(dict(spec, phase="save"), timeout)
                        if "error" not in result:
                            result.update(measure(dict(spec, phase="restore"), timeout))
                        if "error" not in result:
                            result["rss_mb"] = max(result["rss_save_mb"], result["rss_restore_mb"])
                    else:
                        result = measure(spec, timeout)
                        if "error" not in result:
                            result["rss_mb"] = result["rss_save_mb"]
                entry["runs"].append(result)
                log(f"  crontab    {n:>7,} run {r + 1}/{runs}  {name:<22} "
                    f"{describe(name, result, 'crontab')}")


# -- summaries --------------------------------------------------------------------


def summary(runs: list[dict], metric: str) -> dict | None:
    values = [r[metric] for r in runs if "error" not in r and r.get(metric) is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def cell(s: dict | None, digits: int | None = None) -> str:
    if s is None:
        return "—"
    if s["n"] == 1:
        return fmt(s["median"], digits)
    return f"{fmt(s['median'], digits)} [{fmt(s['min'], digits)}–{fmt(s['max'], digits)}]"


def ratio(a: dict | None, b: dict | None) -> float | None:
    if not a or not b or not b["median"]:
        return None
    return a["median"] / b["median"]


SCALE_METRICS = ("one_us", "batch_us", "jobs_page_ms", "jobs_page_site_ms",
                 "jobs_page_pending_ms", "api_jobs_ms", "fill_s")


def summarise(data: dict) -> None:
    for workload, section in data["workloads"].items():
        if workload == "scale":
            for entry in section["points"].values():
                entry["summary"] = {m: summary(entry["runs"], m) for m in SCALE_METRICS}
            continue
        if workload == "postgres":
            section["summary"] = {m: summary(section["runs"], m) for m in PG_METRICS}
            continue
        if workload == "crontab":
            for entry in section["results"].values():
                entry["summary"] = {m: summary(entry["runs"], m) for m in
                                    ("build_s", "save_s", "build_save_s", "resave_s", "restore_s",
                                     "rss_mb")}
            continue
        metrics = {"throughput": ("jobs_per_s", "submit_per_s", "seconds"),
                   "overhead": ("ms_per_job", "median_gap_ms"),
                   "lateness": ("p50_ms", "p99_ms", "max_ms", "submit_s"),
                   "submit": ("per_s", "seconds")}[workload]
        for entry in section["systems"].values():
            entry["summary"] = {m: summary(entry["runs"], m) for m in metrics}
        if workload == "submit":
            continue
        metric = HEADLINE[workload][0]
        ref = section["systems"].get(REFERENCE.get(workload, "cronkit-sqlite"), {}
                                     ).get("summary", {}).get(metric)
        for name, entry in section["systems"].items():
            entry["ratio_cronkit_over_this"] = (None if name.startswith("cronkit")
                                                else ratio(ref, entry["summary"][metric]))


def targets(data: dict) -> list[dict]:
    """Issue 16's table, every row: cronkit's figure, the peer's, the ratio now, the target
    and whether it is met; a row this run could not measure says why (``why``)."""
    w = data["workloads"]
    # A results file written before a workload existed lacks its size: the full one.
    sizes = dict(SIZES["full"], **data["meta"].get("sizes", {}))
    out: list[dict] = []

    def entry(workload: str, system: str) -> dict | None:
        return w.get(workload, {}).get("systems", {}).get(system)

    def why(workload: str, *systems: str) -> str:
        if workload not in w:
            return f"the {workload} workload was not run (--only)"
        for system in systems:
            e = entry(workload, system)
            if e is None:
                continue
            runs = e["runs"]
            gone = [r["unavailable"] for r in runs if "unavailable" in r]
            if gone and len(gone) == len(runs):
                return f"not available: {gone[-1]}"
            errors = [r["error"] for r in runs if "error" in r]
            if errors and len(errors) == len(runs):
                return f"{system} failed: {errors[-1].splitlines()[-1][:160]}"
        return "no figure"

    def q(workload: str, system: str, metric: str) -> dict | None:
        e = entry(workload, system)
        return None if e is None else e.get("summary", {}).get(metric)

    def add(workload: str, a: dict | None, peer: str, b: dict | None, unit: str, goal: float,
            higher: bool, reason: str, absolute: bool = False) -> None:
        value = None if a is None else a["median"]
        if absolute:
            r = value
        else:
            r = ratio(a, b)
        met = None if r is None else (r >= goal if higher else r <= goal)
        figure = "—" if a is None else f"{cell(a)} {unit}".strip()
        peer_text = peer if b is None else f"{peer} {cell(b)} {unit}".strip()
        target = f"{'≥' if higher else '≤'} {goal:g}{f' {unit}' if absolute else ''}"
        out.append({"workload": workload, "cronkit": figure, "peer": peer_text,
                    "ratio": None if absolute else r, "value": value, "target": target,
                    "goal": goal, "met": met, "why": None if met is not None else reason})

    n = sizes["throughput"]
    # Like for like: Huey's consumer is one process of 2 worker threads beside the
    # submitting one, and so is one `cronkit worker --concurrency 2` (cronkit-sqlite-proc).
    # cronkit-sqlite runs its 2 worker threads inside the submitting process, sharing its
    # GIL with the submitting loop: shown too, against the same targets.
    for system, how in (("cronkit-sqlite-proc", "one worker process, as Huey's consumer"),
                        ("cronkit-sqlite", "worker threads in the submitting process")):
        a = q("throughput", system, "jobs_per_s")
        add(f"throughput, {n:,} no-op jobs, 2 workers, SQLite: {how}", a, "Huey-SQLite",
            q("throughput", "huey-sqlite", "jobs_per_s"), "jobs/s", 1.0, True,
            why("throughput", system, "huey-sqlite"))
        add("same", a, "Huey-Redis", q("throughput", "huey-redis", "jobs_per_s"), "jobs/s", 1.5,
            True, why("throughput", system, "huey-redis"))
    a = q("overhead", "cronkit-sqlite", "ms_per_job")
    add("per-job overhead, 1 worker, concurrency 1", a, "Huey-Redis",
        q("overhead", "huey-redis", "ms_per_job"), "ms", 1.0, False,
        why("overhead", "cronkit-sqlite", "huey-redis"))
    add("same", a, "Celery-Redis", q("overhead", "celery-redis", "ms_per_job"), "ms", 0.3, False,
        why("overhead", "cronkit-sqlite", "celery-redis"))
    add(f"lateness p99, {sizes['lateness']:,} jobs due at one instant",
        q("lateness", "cronkit-sqlite", "p99_ms"), "APScheduler in memory",
        q("lateness", "apscheduler-memory", "p99_ms"), "ms", 1.5, False,
        why("lateness", "cronkit-sqlite", "apscheduler-memory"))
    huey_one = q("submit", "huey-sqlite", "per_s")
    add(f"submit, one job per call ({sizes['submit']:,} jobs)",
        q("submit", "cronkit-sqlite", "per_s"), "Huey-SQLite enqueue", huey_one, "/s", 0.5, True,
        why("submit", "cronkit-sqlite", "huey-sqlite"))
    # Huey's fastest way to enqueue many: the faster of a loop of calls and task.map.
    huey_map = q("submit", "huey-sqlite-map", "per_s")
    best, best_name = huey_one, "Huey-SQLite enqueue (loop)"
    if huey_map and (best is None or huey_map["median"] > best["median"]):
        best, best_name = huey_map, "Huey-SQLite enqueue (task.map)"
    add("bulk submit (`site.submit_many`)", q("submit", "cronkit-sqlite-bulk", "per_s"),
        best_name, best, "/s", 2.0, True,
        why("submit", "cronkit-sqlite-bulk", "huey-sqlite", "huey-sqlite-map"))

    crontab_sizes = w.get("crontab", {}).get("sizes", [])

    def crontab(metric: str) -> dict | None:
        try:
            return w["crontab"]["results"]["cronkit@100000"]["summary"][metric]
        except KeyError:
            return None

    if "crontab" not in w:
        reason = "the crontab workload was not run (--only)"
    elif 100_000 not in crontab_sizes:
        reason = (f"this run's crontab sizes are {', '.join(f'{x:,}' for x in crontab_sizes)}"
                  " (quick run): 100,000 is measured by the full run")
    else:
        runs = w["crontab"]["results"].get("cronkit@100000", {}).get("runs", [])
        errors = [r["error"] for r in runs if "error" in r]
        reason = f"failed: {errors[-1].splitlines()[-1][:160]}" if errors else "no figure"
    add("100,000 crons: save + sync", crontab("save_s"), "–", None, "s", 2, False, reason, True)
    add("100,000 crons: restore", crontab("restore_s"), "–", None, "s", 2, False, reason, True)
    add("100,000 crons: peak RSS", crontab("rss_mb"), "–", None, "MB", 150, False, reason, True)

    pg = w.get("postgres")
    pgs = (pg or {}).get("summary", {})
    if pg is None:
        pg_reason = "the postgres workload was not run (--only)"
    else:
        errors = [r["error"] for r in pg["runs"] if "error" in r]
        pg_reason = (f"bench.pg_celery failed: {errors[-1].splitlines()[-1][:160]}" if errors
                     else "no figure")
    pn = f" ({pg['n']:,} jobs)" if pg else ""
    add(f"PostgreSQL, 4 `cronkit worker` processes{pn}", pgs.get("cronkit_pg"),
        "Celery-Redis alone", pgs.get("celery_alone_1"), "jobs/s", 1.0, True, pg_reason)
    pr_reason = pg_reason
    if pg is not None and not pgs.get("procrastinate"):
        errors = [r["procrastinate_error"] for r in pg["runs"] if "procrastinate_error" in r]
        if errors:
            pr_reason = f"Procrastinate failed: {errors[-1][:160]}"
    add("same, against Procrastinate on the same PostgreSQL", pgs.get("cronkit_pg"),
        "Procrastinate", pgs.get("procrastinate"), "jobs/s", 3.0, True, pr_reason)
    add(f"through Celery (`--executor celery`){pn}", pgs.get("cronkit_celery"), "Celery alone",
        pgs.get("celery_alone_2"), "jobs/s", 0.8, True, pg_reason)

    # Item 5: cost does not grow with the backlog; the jobs page on the biggest store.
    sc = w.get("scale")
    points = (sc or {}).get("points", {})

    def point(pending: int, finished: int, metric: str) -> dict | None:
        return points.get(f"{pending}+{finished}", {}).get("summary", {}).get(metric)

    if sc is None:
        sc_reason = "the scale workload was not run (--only)"
    else:
        errors = [r["error"] for e in points.values() for r in e["runs"] if "error" in r]
        sc_reason = f"failed: {errors[-1].splitlines()[-1][:160]}" if errors else "no figure"
    pending = sizes["scale"]["pending"]
    low, high, kept = min(pending), max(pending), sizes["scale"]["finished"]
    for metric, what in (("one_us", "claim + finish per job"),
                         ("batch_us", "claim + finish per job, batched (finish_jobs)")):
        add(f"scale: {what}, {high:,} pending / {low:,} pending", point(high, 0, metric),
            f"itself at {low:,}", point(low, 0, metric), "µs", 1.5, False, sc_reason)
        add(f"scale: {what}, {kept:,} finished kept / none", point(low, kept, metric),
            "itself with none kept", point(low, 0, metric), "µs", 1.5, False, sc_reason)
    add(f"scale: dashboard jobs page (`/jobs`), {high:,} jobs", point(high, 0, "jobs_page_ms"),
        "–", None, "ms", 200, False, sc_reason, True)
    add(f"scale: dashboard jobs page of the site, {high:,} jobs",
        point(high, 0, "jobs_page_site_ms"), "–", None, "ms", 200, False, sc_reason, True)
    add(f"scale: dashboard jobs page (`/jobs`), {low:,} pending + {kept:,} finished",
        point(low, kept, "jobs_page_ms"), "–", None, "ms", 200, False, sc_reason, True)
    return out


# -- reports ----------------------------------------------------------------------


def markdown(data: dict) -> str:
    m = data["meta"]
    lines = [f"Run {m['date']} on {m['machine']}, Python {m['python']}, cronkit {m['cronkit']}; "
             f"{m['runs']} run(s) per figure, median [min–max]; ratio = cronkit / peer "
             f"(medians){' — QUICK run, smaller sizes' if m['quick'] else ''}.", ""]
    w = data["workloads"]
    titles = {
        "throughput": "Throughput: {n:,} no-op jobs submitted and drained by {workers} workers, "
                      "end to end (higher is better)",
        "overhead": "Per-job overhead: {n:,} queued jobs drained by 1 worker, concurrency 1 "
                    "(lower is better)",
        "lateness": "Scheduling lateness: {n:,} jobs due at one instant 2–3 s ahead, "
                    "start − due (lower is better)",
    }
    for workload in ("throughput", "overhead", "lateness"):
        if workload not in w:
            continue
        section = w[workload]
        lines += [f"**{titles[workload].format(**section)}**", ""]
        if workload == "throughput":
            lines += ["| system | jobs/s | submit jobs/s | cronkit-sqlite-proc / peer |",
                      "|---|---|---|---|"]
        elif workload == "overhead":
            lines += ["| system | ms per job | cronkit / peer |", "|---|---|---|"]
        else:
            lines += ["| system | p50 ms | p99 ms | max ms | cronkit / peer (p99) |",
                      "|---|---|---|---|---|"]
        for name, entry in section["systems"].items():
            s = entry.get("summary", {})
            errors = [r["error"] for r in entry["runs"] if "error" in r]
            r = entry.get("ratio_cronkit_over_this")
            rtext = "—" if r is None else f"{r:.2f}"
            label = f"{name}" + (f" ({len(errors)} run(s) failed)" if errors else "")
            if workload == "throughput":
                lines.append(f"| {label} | {cell(s.get('jobs_per_s'), 0)} | "
                             f"{cell(s.get('submit_per_s'), 0)} | {rtext} |")
            elif workload == "overhead":
                lines.append(f"| {label} | {cell(s.get('ms_per_job'), 3)} | {rtext} |")
            else:
                lines.append(f"| {label} | {cell(s.get('p50_ms'), 1)} | "
                             f"{cell(s.get('p99_ms'), 1)} | {cell(s.get('max_ms'), 1)} | {rtext} |")
        lines.append("")
    if "crontab" in w:
        lines += ["**Crontab scale: N crons added (`add_cron`) and saved (`save()`, which syncs "
                  "one pending job per cron); unchanged re-save; restore after a restart; peak RSS "
                  "(lower is better)**", "",
                  "| system | crons | add + save s | save + sync s | re-save s | restore s | "
                  "peak RSS MB | cronkit / peer (add + save) |",
                  "|---|---|---|---|---|---|---|---|"]
        results = w["crontab"]["results"]
        for entry in results.values():
            s = entry.get("summary", {})
            if entry.get("skipped") and not entry["runs"]:
                lines.append(f"| {entry['system']} | {entry['n']:,} | skipped | | | | | |")
                continue
            ref = results.get(f"cronkit@{entry['n']}", {}).get("summary", {}).get("build_save_s")
            r = None if entry["system"] == "cronkit" else ratio(ref, s.get("build_save_s"))
            lines.append(f"| {entry['system']} | {entry['n']:,} | "
                         f"{cell(s.get('build_save_s'), 2)} | {cell(s.get('save_s'), 2)} | "
                         f"{cell(s.get('resave_s'), 2)} | "
                         f"{cell(s.get('restore_s'), 2)} | {cell(s.get('rss_mb'), 0)} | "
                         f"{'—' if r is None else f'{r:.3f}'} |")
        lines.append("")
    if "submit" in w:
        section = w["submit"]
        lines += [f"**Submit: {section['n']:,} no-op jobs submitted, no worker running "
                  "(higher is better)**", "",
                  "| system | jobs/s | how |", "|---|---|---|"]
        for name, entry in section["systems"].items():
            gone = [r["unavailable"] for r in entry["runs"] if "unavailable" in r]
            errors = [r["error"] for r in entry["runs"] if "error" in r]
            figure = cell(entry.get("summary", {}).get("per_s"), 0)
            if gone and figure == "—":
                figure = f"not available: {gone[-1]}"
            elif errors:
                figure += f" ({len(errors)} run(s) failed)"
            lines.append(f"| {name} | {figure} | {entry.get('label', '')} |")
        lines.append("")
    if "scale" in w:
        section = w["scale"]
        lines += [f"**Backlog scale: {section['jobs']:,} jobs claimed and finished through the "
                  "store API (one at a time: claim(1) + finish_job; batched: claim(50) + "
                  "finish_jobs), on a SQLite store filled with N pending and M finished jobs; "
                  "the dashboard on that store (median of 5 GETs, in process) "
                  "(lower is better)**", "",
                  "| pending | finished kept | claim + finish µs/job | batched µs/job | "
                  "`/jobs` ms | `/jobs?site=` ms | `/jobs?status=pending` ms | "
                  "REST `/jobs` ms |",
                  "|---|---|---|---|---|---|---|---|"]
        for entry in section["points"].values():
            s = entry.get("summary", {})
            errors = [r["error"] for r in entry["runs"] if "error" in r]
            note = f" ({len(errors)} run(s) failed: {errors[-1].splitlines()[-1][:120]})" \
                if errors else ""
            lines.append(f"| {entry['pending']:,}{note} | {entry['finished']:,} | "
                         f"{cell(s.get('one_us'), 0)} | {cell(s.get('batch_us'), 0)} | "
                         f"{cell(s.get('jobs_page_ms'), 1)} | "
                         f"{cell(s.get('jobs_page_site_ms'), 1)} | "
                         f"{cell(s.get('jobs_page_pending_ms'), 1)} | "
                         f"{cell(s.get('api_jobs_ms'), 1)} |")
        lines.append("")
    if "postgres" in w:
        section = w["postgres"]
        s = section.get("summary", {})
        lines += [f"**PostgreSQL: {section['n']:,} no-op jobs end to end (submit → finished), "
                  "throwaway server (`bench/pg_celery.py`) (higher is better)**", "",
                  "| system | jobs/s |", "|---|---|"]
        rows = (("cronkit_pg", "cronkit, 4 `cronkit worker` processes (threads × 4)"),
                ("celery_alone_1", "Celery alone, Redis, prefork × 4"),
                ("procrastinate", section.get("procrastinate_label") or "Procrastinate"),
                ("cronkit_celery", "cronkit via Celery: 2 `cronkit worker --executor celery` "
                                   "+ 1 Celery worker, prefork × 4"),
                ("celery_alone_2", "Celery alone, Redis, prefork × 4 (second measure)"))
        for key, label in rows:
            lines.append(f"| {label} | {cell(s.get(key), 0)} |")
        errors = [r["error"] for r in section["runs"] if "error" in r]
        if errors:
            lines.append(f"| {len(errors)} run(s) failed: {errors[-1].splitlines()[-1][:160]} | |")
        lines.append("")
    if data.get("targets"):
        lines += ["**Issue 16 targets** (ratio = cronkit / peer; for the scale rows, the "
                  "figure over its own at the smaller size)", "",
                  "| workload | cronkit | peer | ratio now | target | met |",
                  "|---|---|---|---|---|---|"]
        for t in data["targets"]:
            r = "—" if t["ratio"] is None else f"{t['ratio']:.2f}"
            met = {True: "yes", False: "**no**"}.get(t["met"], f"n/a: {t['why']}")
            lines.append(f"| {t['workload']} | {t['cronkit']} | {t['peer']} | {r} | "
                         f"{t['target']} | {met} |")
        lines.append("")
    return "\n".join(lines)


def versions() -> dict:
    out: dict[str, str | None] = {}
    for dist in ("cronkit", "huey", "rq", "celery", "redis", "APScheduler", "SQLAlchemy",
                 "procrastinate"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    try:
        out["redis-server"] = subprocess.run(["redis-server", "--version"], capture_output=True,
                                             text=True).stdout.split()[2].removeprefix("v=")
    except (OSError, IndexError):
        pass
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
        out["cronkit_git"] = rev
    except OSError:
        pass
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 1 run: a smoke run")
    parser.add_argument("--only", action="append", choices=sorted(WORKLOADS),
                        help="run only this workload (repeatable)")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3, quick 1)")
    parser.add_argument("--output", default=str(RESULTS / "latest"),
                        help="results path without extension (default bench/results/latest)")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: write OUTPUT.md again from OUTPUT.json")
    parser.add_argument("--readme", action="store_true",
                        help="also put the results in README.rst (a full run to the default "
                             "output always does)")
    args = parser.parse_args(argv)
    if args.render:
        data = json.loads(Path(args.output).with_suffix(".json").read_text())
        data["targets"] = targets(data)
        write(data, args.output)
        if args.readme:
            readme(markdown(data))
        log(markdown(data))
        return 0
    sizes = dict(SIZES["quick" if args.quick else "full"])
    runs = args.runs or sizes["runs"]
    chosen = args.only or list(WORKLOADS)
    v = versions()
    data = {"meta": {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
                     "python": platform.python_version(),
                     "cronkit": f"{v.get('cronkit')} ({v.get('cronkit_git')})",
                     "versions": v, "quick": args.quick, "runs": runs, "sizes": sizes},
            "workloads": {}}
    log(f"cronkit benchmarks ({'quick' if args.quick else 'full'}, {runs} run(s)): "
        f"{', '.join(chosen)}")
    log("  versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    started = time.monotonic()
    stop_redis = None
    redis_url = None
    tmp = tempfile.mkdtemp(prefix="cronkit-bench-redis-")
    try:
        if NEEDS_REDIS & set(chosen):
            from tests.servers import start_redis
            redis_url, stop_redis = start_redis(tmp)
            log(f"  redis-server on {redis_url}")
        for workload in WORKLOADS:
            if workload not in chosen:
                continue
            log(f"{workload}:")
            if workload == "crontab":
                run_crontab(sizes, runs, data)
            elif workload == "scale":
                run_scale(sizes, runs, data)
            elif workload == "postgres":
                run_postgres(sizes, runs, data)
            else:
                run_queue_workload(workload, sizes, runs, redis_url, data)
            summarise(data)
            data["targets"] = targets(data)
            write(data, args.output)
    finally:
        if stop_redis is not None:
            stop_redis()
        try:
            os.rmdir(tmp)
        except OSError:
            pass
    data["meta"]["seconds"] = round(time.monotonic() - started, 1)
    write(data, args.output)
    log("")
    log(markdown(data))
    log(f"written: {args.output}.json, {args.output}.md ({data['meta']['seconds']:.0f} s)")
    if args.readme or (not args.quick and not args.only
                       and Path(args.output) == RESULTS / "latest"):
        readme(markdown(data))
        log(f"written: {README.name}, its latest results")
    return 0


README = ROOT / "README.rst"
README_START = "Latest results (``bench/results/latest.md``):\n"


def readme(md: str) -> None:
    """Replace the latest results in README.rst's Benchmarks section (the code block
    after ``README_START``, up to the next section title) by ``md``."""
    text = README.read_text()
    start = text.index(README_START) + len(README_START)
    lines = text[start:].split("\n")
    end = next(i for i, line in enumerate(lines)
               if i > 0 and line and not line.startswith(" ") and not line.startswith(".. ")
               and i + 1 < len(lines) and set(lines[i + 1]) <= set("=-~^") and lines[i + 1])
    block = "\n".join(("    " + line).rstrip() for line in md.split("\n"))
    README.write_text(text[:start] + "\n.. code-block:: text\n\n" + block.rstrip() + "\n\n"
                      + "\n".join(lines[end:]))


def write(data: dict, output: str) -> None:
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    path.with_suffix(".md").write_text(markdown(data) + "\n")


if __name__ == "__main__":
    sys.exit(main())
