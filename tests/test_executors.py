"""Executors with real processes: pids, hard timeouts, crashes, force cancel, a worker
killed with SIGKILL, two workers never running one job. These use the real clock
because they watch real processes; they poll for outcomes, never sleep for schedules."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cronkit
from cronkit import Status
from tests import jobrunners
from tests.children import child_env
from tests.helpers import finished, wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def real_kit(db_url):
    jobrunners.register()
    kit = cronkit.Cronkit(store=db_url, error_timeout=2)
    yield kit
    kit.close()


@pytest.fixture
def proc_worker(real_kit):
    worker = real_kit.worker(concurrency=2, executor="processes", poll_interval=0.05).start()
    yield worker
    worker.stop(wait=False)


def test_each_job_runs_in_its_own_process(real_kit, proc_worker):
    site = real_kit.site("s")
    job = site.submit("whoami")
    done = wait_for(lambda: finished(site, job.id), what="job end")
    assert done.status == Status.SUCCESS
    assert int(done.message) != os.getpid()
    assert done.pid == int(done.message)


def test_a_function_task_runs_on_the_processes_executor(real_kit, proc_worker):
    site = real_kit.site("s")
    assert jobrunners.greet_fn.runner.__qualname__ == "greet_fn.runner"
    job = jobrunners.greet_fn.submit(site, {"who": "ann"}, name="hi")
    assert (job.type, job.name) == ("greet_fn", "hi")
    done = wait_for(lambda: finished(site, job.id), what="job end")
    assert done.status == Status.SUCCESS, done.message
    assert done.message.startswith("hello ann from ")
    assert int(done.message.rsplit(" ", 1)[1]) != os.getpid()
    # the function stays a function
    assert jobrunners.greet_fn(type("J", (), {"payload": {"who": "bo"}})()).startswith("hello bo")


def test_an_async_function_task_runs_on_the_processes_executor(real_kit, proc_worker):
    site = real_kit.site("s")
    assert jobrunners.agreet_fn.runner.__qualname__ == "agreet_fn.runner"
    job = jobrunners.agreet_fn.submit(site, {"who": "ann"})
    done = wait_for(lambda: finished(site, job.id), what="job end")
    assert done.status == Status.SUCCESS, done.message
    assert done.message.startswith("hello ann from ")
    assert int(done.message.rsplit(" ", 1)[1]) == done.pid != os.getpid()


def test_a_childs_start_up_does_not_count_against_the_timeout(real_kit, proc_worker):
    from tests import slowstart  # three seconds to import, in the child too
    cronkit.register_runner(slowstart.Quick, name="slow_to_start")
    try:
        site = real_kit.site("s")
        job = site.submit("slow_to_start", timeout=2)
        done = wait_for(lambda: finished(site, job.id), timeout=60, what="job end")
        assert (done.status, done.message) == (Status.SUCCESS, "quick")
    finally:
        cronkit.unregister_runner("slow_to_start")


def test_hard_timeout_kills_the_process_and_the_worker_goes_on(real_kit, proc_worker):
    site = real_kit.site("s")
    job = site.submit("hang", payload={"seconds": 60}, timeout=1)
    done = wait_for(lambda: finished(site, job.id), what="timeout")
    assert done.status == Status.FAILED and done.message == "timed out after 1 s"
    wait_for(lambda: not _alive(done.pid), what="child killed")
    after = site.submit("whoami")
    assert wait_for(lambda: finished(site, after.id)).status == Status.SUCCESS


@pytest.mark.parametrize("kind, message", [("exit", "process exited with code 1"),
                                           ("segfault", "process killed by SIGSEGV")])
def test_a_crashing_child_fails_its_job_and_the_worker_goes_on(real_kit, proc_worker, kind, message):
    site = real_kit.site("s")
    job = site.submit(kind)
    done = wait_for(lambda: finished(site, job.id), what="crash noticed")
    assert done.status == Status.FAILED and done.message == message
    after = site.submit("whoami")
    assert wait_for(lambda: finished(site, after.id)).status == Status.SUCCESS


def test_force_cancel_terminates_the_process(real_kit, proc_worker):
    site = real_kit.site("s")
    job = site.submit("hang", payload={"seconds": 60})
    running = wait_for(lambda: (j := site.jobs.get(job.id)).status == "running" and j.pid
                       and j.pid != os.getpid() and j, what="job running in a child")
    pid = running.pid
    assert site.jobs.cancel(job.id, force=True).status == Status.CANCELED
    wait_for(lambda: not _alive(pid), what="child killed")
    assert site.jobs.get(job.id).status == Status.CANCELED


def test_a_child_killed_after_a_cancel_ends_canceled_whoever_notices_first(real_kit, proc_worker):
    """cancel(force=True) sets the flag, kills, then ends the job; the worker's watcher
    may see the death in between: it too must end the job CANCELED, not FAILED."""
    site = real_kit.site("s")
    job = site.submit("hang", payload={"seconds": 60})
    running = wait_for(lambda: (j := site.jobs.get(job.id)).status == "running" and j.pid
                       and j.pid != os.getpid() and j, what="job running in a child")
    assert real_kit.store.cancel_job(job.id, real_kit.clock.now()) == "running"
    os.kill(running.pid, signal.SIGKILL)     # the kill alone; nothing else ends the job
    ended = wait_for(lambda: finished(site, job.id), what="job end")
    assert (ended.status, ended.message) == (Status.CANCELED, "canceled (killed)")


def test_threads_executor_cancel_is_cooperative(real_kit):
    site = real_kit.site("s")
    worker = real_kit.worker(concurrency=1, poll_interval=0.05).start()
    try:
        job = site.submit("sleepy", payload={"seconds": 30})
        wait_for(lambda: site.jobs.get(job.id).status == "running")
        site.jobs.cancel(job.id, force=True)   # a thread cannot be killed: it is asked
        assert wait_for(lambda: finished(site, job.id)).status == Status.CANCELED
    finally:
        worker.stop()


def test_processes_executor_refuses_the_memory_store():
    kit = cronkit.Cronkit(store="memory://")
    with pytest.raises(cronkit.CronkitError, match="memory"):
        kit.worker(executor="processes").start().stop()


def test_unknown_executor_and_bad_concurrency_are_refused(real_kit):
    with pytest.raises(cronkit.CronkitError, match="unknown executor 'gpu'"):
        real_kit.worker(executor="gpu")
    with pytest.raises(cronkit.CronkitError, match="concurrency"):
        real_kit.worker(concurrency=0)


def _spawn_worker(db_url, executor="threads", concurrency=2):
    env = child_env()
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from tests.jobrunners import serve; serve({db_url!r}, "
                               f"{executor!r}, {concurrency})"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def test_after_kill_9_of_a_worker_mid_job_nothing_stays_running(real_kit, db_url):
    site = real_kit.site("s")
    first = _spawn_worker(db_url)
    try:
        job = site.submit("hang", payload={"seconds": 60})
        wait_for(lambda: site.jobs.get(job.id).status == "running", what="job started")
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        first.kill()
    second = _spawn_worker(db_url)
    try:
        done = wait_for(lambda: finished(site, job.id), what="lost job failed")
        assert done.status == Status.FAILED and done.message == "worker lost"
        assert real_kit.store.count_jobs(status="running") == 0
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0


def test_two_workers_never_run_one_job(real_kit, db_url, tmp_path):
    site = real_kit.site("s")
    runs_db = str(tmp_path / "runs.db")
    n = 300
    # Four rendezvous jobs first: each waits until both workers have run a job, and one
    # worker (two slots) can hold at most two of them, so the other must take part.
    meets = 4
    for i in range(meets):
        site.submit("count", payload={"db": runs_db, "key": f"job-{i}", "meet": 2},
                    priority=10)
    for i in range(meets, n):
        site.submit("count", payload={"db": runs_db, "key": f"job-{i}"})
    workers = [_spawn_worker(db_url), _spawn_worker(db_url)]
    try:
        wait_for(lambda: real_kit.store.count_jobs(status=["pending", "running"]) == 0,
                 timeout=120, what="queue drained")
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=30)
    conn = sqlite3.connect(runs_db)
    keys = [k for (k,) in conn.execute("SELECT key FROM runs")]
    pids = {p for (p,) in conn.execute("SELECT DISTINCT pid FROM runs")}
    conn.close()
    assert sorted(keys) == sorted(f"job-{i}" for i in range(n))   # each exactly once
    assert len(pids) == 2                                           # both workers worked
    assert real_kit.store.count_jobs(status="success") == n


def test_kill_9_of_processes_workers_never_runs_a_job_twice(real_kit, db_url, tmp_path):
    """50 times: a processes worker is killed with SIGKILL mid-work and another starts
    (about 70 s on a quiet 2-core machine; no assertion on the time it takes).
    The children die with their worker, a job is reaped only once its process is gone,
    and a retried attempt never overlaps the one before; no finished work is recorded
    lost, nothing stays running."""
    site = real_kit.site("s")
    runs_db = str(tmp_path / "stamps.db")
    jobs = [site.submit("stamp", payload={"db": runs_db, "key": f"job-{i}", "seconds": 0.3})
            for i in range(40)]
    rng = random.Random(13)
    for _cycle in range(50):
        worker = _spawn_worker(db_url, "processes", 4)
        try:
            time.sleep(rng.uniform(0.1, 0.8))    # fault injection: kill at a random moment
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
    last = _spawn_worker(db_url, "processes", 4)
    try:
        wait_for(lambda: real_kit.store.count_jobs(status=["pending", "running"]) == 0,
                 timeout=240, what="every job ended")
    finally:
        last.send_signal(signal.SIGTERM)
        last.wait(timeout=60)
    conn = sqlite3.connect(runs_db)
    rows = conn.execute("SELECT key, what FROM stamps").fetchall()
    conn.close()
    overlaps = [k for k, what in rows if what == "overlap"]
    done = [k for k, what in rows if what == "done"]
    assert overlaps == []                                          # never two runs at once
    assert sorted(done) == sorted(f"job-{i}" for i in range(40))   # each work done once
    ended = [site.jobs.get(j.id) for j in jobs]
    assert [j.id for j in ended if j.status != Status.SUCCESS] == []
