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

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"

SIZES = {
    "full": {"throughput": 10_000, "overhead": 2_000, "lateness": 200, "crontab": [10_000, 100_000],
             "runs": 3},
    "quick": {"throughput": 2_000, "overhead": 500, "lateness": 200, "crontab": [10_000],
              "runs": 1},
}

# system name -> role; the first cronkit system of a workload is its reference.
WORKLOADS = {
    "throughput": ["cronkit-sqlite", "cronkit-sqlite-procs", "huey-sqlite", "huey-redis",
                   "celery-redis", "rq-redis"],
    "overhead": ["cronkit-sqlite", "cronkit-sqlite-procs", "cronkit-run-pending", "huey-sqlite",
                 "huey-redis", "celery-redis", "rq-redis"],
    "lateness": ["cronkit-sqlite", "apscheduler-memory", "apscheduler-sqlite", "celery-redis",
                 "huey-redis", "huey-sqlite", "rq-redis"],
    "crontab": ["cronkit", "apscheduler-memory", "apscheduler-sqlite"],
}
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


def measure(spec: dict, timeout: float) -> dict:
    """Run bench.measure in a fresh process; its result dict, or {"error": ...}."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "bench.measure", json.dumps(spec)], cwd=ROOT,
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
    workers = 1 if workload == "overhead" else 2
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


def summarise(data: dict) -> None:
    for workload, section in data["workloads"].items():
        if workload == "crontab":
            for entry in section["results"].values():
                entry["summary"] = {m: summary(entry["runs"], m) for m in
                                    ("build_s", "save_s", "build_save_s", "resave_s", "restore_s",
                                     "rss_mb")}
            continue
        metrics = {"throughput": ("jobs_per_s", "submit_per_s", "seconds"),
                   "overhead": ("ms_per_job", "median_gap_ms"),
                   "lateness": ("p50_ms", "p99_ms", "max_ms", "submit_s")}[workload]
        for entry in section["systems"].values():
            entry["summary"] = {m: summary(entry["runs"], m) for m in metrics}
        metric = HEADLINE[workload][0]
        ref = section["systems"].get("cronkit-sqlite", {}).get("summary", {}).get(metric)
        for name, entry in section["systems"].items():
            entry["ratio_cronkit_over_this"] = (None if name.startswith("cronkit")
                                                else ratio(ref, entry["summary"][metric]))


def targets(data: dict) -> list[dict]:
    w = data["workloads"]
    out = []

    def q(workload, system, metric):
        try:
            return w[workload]["systems"][system]["summary"][metric]
        except KeyError:
            return None

    def c(system, n, metric):
        try:
            return w["crontab"]["results"][f"{system}@{n}"]["summary"][metric]
        except KeyError:
            return None

    def add(source, text, value, goal, met, unit=""):
        out.append({"source": source, "target": text, "figure": value, "goal": goal,
                    "met": met, "unit": unit})

    def ratio_target(source, text, a, b, goal, higher):
        r = ratio(a, b)
        add(source, text, r, goal, None if r is None else (r >= goal if higher else r <= goal), "×")

    if "throughput" in w:
        a = q("throughput", "cronkit-sqlite", "jobs_per_s")
        n = w["throughput"]["n"]
        ratio_target("issue 5", "throughput cronkit-SQLite / Huey-SQLite ≥ 3", a,
                     q("throughput", "huey-sqlite", "jobs_per_s"), 3, True)
        ratio_target("issue 5", "throughput cronkit-SQLite / Huey-Redis ≥ 1", a,
                     q("throughput", "huey-redis", "jobs_per_s"), 1, True)
        add("issue 3", f"{n:,} jobs, 1 worker × concurrency 2: ≥ 1,500 jobs/s end to end",
            a and a["median"], 1500, None if a is None else a["median"] >= 1500, "jobs/s")
    if "overhead" in w:
        a = q("overhead", "cronkit-sqlite", "ms_per_job")
        ratio_target("issue 5", "per-job overhead cronkit / Huey-SQLite ≤ 0.5", a,
                     q("overhead", "huey-sqlite", "ms_per_job"), 0.5, False)
        ratio_target("issue 5", "per-job overhead cronkit / Huey-Redis ≤ 0.5", a,
                     q("overhead", "huey-redis", "ms_per_job"), 0.5, False)
        add("issue 3", "per-job overhead, threads executor, sequential, SQLite < 2 ms",
            a and a["median"], 2, None if a is None else a["median"] < 2, "ms")
    if "lateness" in w:
        a = q("lateness", "cronkit-sqlite", "p99_ms")
        ratio_target("issue 5", "lateness p99 cronkit / APScheduler-memory ≤ 1", a,
                     q("lateness", "apscheduler-memory", "p99_ms"), 1, False)
        ratio_target("issue 5", "lateness p99 cronkit / APScheduler-SQLite ≤ 0.1", a,
                     q("lateness", "apscheduler-sqlite", "p99_ms"), 0.1, False)
    if "crontab" in w:
        sizes = w["crontab"]["sizes"]
        if 10_000 in sizes:
            ratio_target("issue 5",
                         "10,000 crons added + saved + synced: cronkit / APScheduler-SQLite ≤ 0.1",
                         c("cronkit", 10_000, "build_save_s"),
                         c("apscheduler-sqlite", 10_000, "build_save_s"), 0.1, False)
            figures = (("save_s", "10,000 crons save + sync into an empty store < 1 s", 1),
                       ("resave_s", "10,000 crons re-saved unchanged < 0.3 s", 0.3),
                       ("restore_s", "10,000 crons restored after restart < 1 s", 1))
            for metric, text, goal in figures:
                s = c("cronkit", 10_000, metric)
                add("issue 2", text, s and s["median"], goal,
                    None if s is None else s["median"] < goal, "s")
        if 100_000 in sizes:
            s = c("cronkit", 100_000, "rss_mb")
            add("issue 2/5", "100,000 crons: peak RSS < 300 MB", s and s["median"], 300,
                None if s is None else s["median"] < 300, "MB")
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
            lines += ["| system | jobs/s | submit jobs/s | cronkit / peer |", "|---|---|---|---|"]
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
    if data.get("targets"):
        lines += ["**Targets**", "", "| from | target | figure | met |", "|---|---|---|---|"]
        for t in data["targets"]:
            fig = "—" if t["figure"] is None else f"{fmt(t['figure'])} {t['unit']}".strip()
            met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
            lines.append(f"| {t['source']} | {t['target']} | {fig} | {met} |")
        lines.append("")
    return "\n".join(lines)


def versions() -> dict:
    out = {}
    for dist in ("cronkit", "huey", "rq", "celery", "redis", "APScheduler", "SQLAlchemy"):
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
    args = parser.parse_args(argv)
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
    return 0


def write(data: dict, output: str) -> None:
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    path.with_suffix(".md").write_text(markdown(data) + "\n")


if __name__ == "__main__":
    sys.exit(main())
