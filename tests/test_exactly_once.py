"""DESIGN rule 4: two workers on one SQLite file run each of 200 cron firings exactly
once, and none is missed.

The runner appends one line per run to the file named by ``CRONKIT_TEST_RUNS``; the
workers import this module (``--import test_exactly_once``), which registers it only
when that variable is set, so the test process's registry stays clean.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

import cronkit
from cronkit import Cron, Status
from tests.children import child_env

UTC = UTC
HERE = Path(__file__).resolve().parent
RUNS_VAR = "CRONKIT_TEST_RUNS"


class Counted(cronkit.Runner):
    """Appends "<cron uid> <scheduled time> <pid>" to the runs file."""

    def run(self):
        line = f"{self.cron.uid} {self.job.fire_at.isoformat()} {os.getpid()}\n"
        with open(os.environ[RUNS_VAR], "a") as out:
            out.write(line)


if os.environ.get(RUNS_VAR):  # inside a worker started by these tests
    cronkit.register_runner(Counted, name="counted")


def read_runs(path: Path) -> list[tuple[str, str, str]]:
    if not path.exists():
        return []
    return [tuple(line.split()) for line in path.read_text().splitlines()]


def add_crons(site, n, **kw):
    crontab = site.crontab
    crons = [crontab.add_cron(Cron(name="counted", **kw)) for _ in range(n)]
    crontab.save()
    return crons


def assert_exactly_once(runs, expected):
    counts = Counter((uid, fire_at) for uid, fire_at, _ in runs)
    twice = [k for k, n in counts.items() if n > 1]
    assert twice == [], f"run more than once: {twice[:5]}"
    missed = sorted(set(expected) - set(counts))
    assert missed == [], f"never run: {missed[:5]}"
    assert set(counts) == set(expected)


# -- two `cronkit worker` processes --------------------------------------------------


def wait_for(predicate, timeout):
    """Poll other processes' progress (not a schedule: the workers run on real time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_two_cronkit_workers_run_200_firings_exactly_once(kit, site, db_url, tmp_path):
    crons = add_crons(site, 200, periodicity="0 0 1 1 *")   # next: 2009-01-01, long past
    fire_at = datetime(2009, 1, 1, tzinfo=UTC).isoformat()
    runs = tmp_path / "runs.txt"
    env = child_env(HERE, **{RUNS_VAR: str(runs)})
    command = [sys.executable, "-m", "cronkit", "worker", "--store", db_url, "--site", "plone",
               "--import", "test_exactly_once", "--concurrency", "4", "--poll", "0.2",
               # a line per job event at info would fill the stderr pipe read only at the end
               "--log-level", "warning"]
    workers = [subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        done = wait_for(lambda: kit.store.count_jobs(site="plone", status=Status.SUCCESS) >= 200
                        and kit.store.count_jobs(site="plone", status=Status.RUNNING) == 0, 120)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [worker.communicate(timeout=60) for worker in workers]
    assert done, f"workers did not finish: {outputs}"
    assert_exactly_once(read_runs(runs), [(c.uid, fire_at) for c in crons])
    assert kit.store.count_jobs(site="plone", status=Status.SUCCESS) == 200
    assert kit.store.count_jobs(site="plone", status=[Status.FAILED, Status.CANCELED]) == 0
    for cron in site.crontab.crons.values():
        assert [entry.status for entry in cron.logs] == ["OK"]
    # each cron has its next firing queued, once
    assert kit.store.count_jobs(site="plone", status=Status.PENDING) == 200


# -- two processes claiming from one file ------------------------------------------------


def claim_loop(db_url, now, runs, barrier, name):
    os.environ[RUNS_VAR] = runs
    cronkit.register_runner(Counted, name="counted")
    kit = cronkit.Cronkit(store=db_url, clock=cronkit.FakeClock(now))
    barrier.wait()
    while True:
        rows = kit.store.claim(kit.clock.now(), 1, name, os.getpid())
        if rows:
            kit.execute(rows[0])
            continue
        due = kit.store.next_due()
        if due is None or due > kit.clock.now():
            break        # nothing left due; a due job whose cron runs elsewhere: look again
    kit.close()


def test_two_processes_claiming_run_200_missed_firings_exactly_once(site, db_url, tmp_path):
    crons = add_crons(site, 10, periodicity="*/1 * * * *", misfire="all")
    now = datetime(2008, 1, 1, 1, 23, 30, tzinfo=UTC)   # 20 missed firings each: 01:04..01:23
    runs = tmp_path / "runs.txt"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=claim_loop, args=(db_url, now, str(runs), barrier, f"p{i}"))
             for i in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0]
    got = read_runs(runs)
    expected = [(c.uid, datetime(2008, 1, 1, 1, m, tzinfo=UTC).isoformat())
                for c in crons for m in range(4, 24)]
    assert len(expected) == 200
    assert_exactly_once(got, expected)
    for cron in crons:   # oldest first, one at a time
        fired = [fire_at for uid, fire_at, _ in got if uid == cron.uid]
        assert fired == sorted(fired)
    pending = site.jobs.list(status=Status.PENDING)
    assert sorted(j.run_after.minute for j in pending) == [24] * 10


@pytest.mark.parametrize("n", [2])
def test_a_firing_claimed_by_one_worker_is_not_claimed_by_another(kit, site, clock, n):
    add_crons(site, n, periodicity="*/1 * * * *")
    clock.advance(minutes=1)
    first = kit.store.claim(clock.now(), 10, "one")
    second = kit.store.claim(clock.now(), 10, "two")
    assert len(first) == n and second == []
