"""A worker's shutdown (SIGTERM, SIGINT): it drains, and no job is left RUNNING.

Real ``cronkit worker`` processes on a SQLite file, with the runners of
``tests/drainrunners.py``: a job that ends within the drain timeout ends as it would;
one that does not is asked to stop (its canceled flag), killed after the grace
(processes executor), and goes back to PENDING with a history record, to run again.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

import cronkit
from tests import drainrunners
from tests.children import child_env
from tests.helpers import ROOT, wait_for

INTERRUPTED = "interrupted by the worker's shutdown"


@pytest.fixture(autouse=True)
def runners():
    """The runners of tests/drainrunners.py, here too (the worker processes import it)."""
    drainrunners.register()
    yield
    for name in drainrunners.RUNNERS:
        cronkit.unregister_runner(name)


@pytest.fixture
def store_url(tmp_path):
    return f"sqlite:///{tmp_path / 'drain.db'}"


@pytest.fixture
def kit(store_url):
    kit = cronkit.Cronkit(store=store_url)
    yield kit
    kit.close()


def start_worker(store_url, *options):
    """``cronkit worker`` in a process of its own, stderr captured."""
    argv = [sys.executable, "-m", "cronkit", "worker", "--store", store_url,
            "--import", "tests.drainrunners", "--poll", "0.1", "--concurrency", "4",
            "--claim-ahead", "0", *options]
    return subprocess.Popen(argv, env=child_env(), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def running(kit, *ids):
    return all(kit.store.get_job(i)["status"] == "running" for i in ids)


def stop(proc, *signals, timeout=60):
    for sig in signals:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return err


def assert_interrupted(kit, job_id):
    job = kit.store.get_job(job_id)
    assert job["status"] == "pending" and job["message"] == INTERRUPTED
    assert job["canceled"] is False and job["worker"] is None and job["attempts"] == 1
    assert any(INTERRUPTED in h["comment"] for h in kit.store.history(job_id))


def assert_none_running(kit):
    assert kit.store.count_jobs(status="running") == 0


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_sigterm_lets_jobs_end_within_the_drain_timeout_and_requeues_the_others(
        kit, store_url, executor):
    site = kit.site("default")
    quick = site.submit("drain-quick", payload={"seconds": 1}).id
    polite = site.submit("drain-polite", payload={"seconds": 120}).id
    # The quick job's second must fit in the drain timeout on a busy machine too.
    proc = start_worker(store_url, "--executor", executor, "--drain-timeout", "10")
    wait_for(lambda: running(kit, quick, polite), what="both jobs running")
    err = stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, err
    assert "draining: 2 job(s) running; waiting up to 10 s" in err
    assert kit.store.get_job(quick)["status"] == "success"
    assert_interrupted(kit, polite)
    assert_none_running(kit)
    [row] = kit.store.list_workers()
    assert row["state"] == "stopped" and row["executor"] == executor


def test_a_process_that_ignores_the_stop_is_killed_after_the_grace(kit, store_url):
    site = kit.site("default")
    stubborn = site.submit("drain-stubborn", payload={"seconds": 120}).id
    proc = start_worker(store_url, "--executor", "processes", "--drain-timeout", "0.5")
    wait_for(lambda: running(kit, stubborn), what="the job running")
    pid = wait_for(lambda: kit.store.get_job(stubborn)["pid"], what="its child's pid")
    err = stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, err
    assert "asked to stop" in err
    assert_interrupted(kit, stubborn)
    assert_none_running(kit)
    with pytest.raises(ProcessLookupError):
        import os
        os.kill(pid, 0)


def test_a_second_signal_skips_the_wait_and_a_stuck_thread_is_left_behind(kit, store_url):
    site = kit.site("default")
    stubborn = site.submit("drain-stubborn", payload={"seconds": 120}).id
    proc = start_worker(store_url, "--drain-timeout", "300")
    wait_for(lambda: running(kit, stubborn), what="the job running")
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: kit.store.list_workers()[0]["state"] == "draining", what="draining")
    err = stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, err
    assert "SIGTERM again: not waiting any longer" in err
    assert "did not stop; their threads are left behind" in err
    assert_interrupted(kit, stubborn)
    assert_none_running(kit)


def test_an_interrupted_job_runs_again_in_another_worker(kit, store_url):
    site = kit.site("default")
    polite = site.submit("drain-polite", payload={"seconds": 120}).id
    proc = start_worker(store_url, "--drain-timeout", "0")
    wait_for(lambda: running(kit, polite), what="the job running")
    stop(proc, signal.SIGTERM)
    assert_interrupted(kit, polite)
    kit.store.update_job(polite, payload={"seconds": 0})
    again = start_worker(store_url)
    try:
        wait_for(lambda: kit.store.get_job(polite)["status"] == "success", what="its second run")
    finally:
        stop(again, signal.SIGTERM)
    assert kit.store.get_job(polite)["attempts"] == 2


# -- in this process: the end of an interrupted run ---------------------------------------


@pytest.fixture
def fake_kit(clock):
    kit = cronkit.Cronkit(store="memory://", clock=clock)
    yield kit
    kit.close()


def test_a_late_end_of_the_interrupted_attempt_never_closes_the_next_one(fake_kit, clock):
    kit = fake_kit
    job_id = kit.site("plone").submit("drain-quick").id
    [first] = kit.lifecycle.claim(clock.now(), 1)
    assert kit.lifecycle.interrupt([job_id]) == [job_id]
    assert kit.store.is_canceled(job_id)        # what the runner's cancel check reads
    assert kit.lifecycle.finish(first, cronkit.Status.CANCELED) == "pending"
    assert_interrupted(kit, job_id)
    [second] = kit.lifecycle.claim(clock.now(), 1)
    assert second["attempts"] == 2
    assert kit.lifecycle.finish(first, cronkit.Status.SUCCESS) is None
    again = kit.store.get_job(job_id)
    assert again["status"] == "running" and again["attempts"] == 2 and not again["canceled"]
    # The next attempt, even run by this same kit, ends as any run does.
    assert kit.lifecycle.finish(second, cronkit.Status.SUCCESS) == "success"


def test_a_job_canceled_by_a_user_is_not_interrupted_but_ends_canceled(fake_kit, clock):
    kit = fake_kit
    site = kit.site("plone")
    job_id = site.submit("drain-quick").id
    [row] = kit.lifecycle.claim(clock.now(), 1)
    site.jobs.cancel(job_id)
    assert kit.lifecycle.interrupt([job_id]) == []
    assert kit.lifecycle.finish(row, cronkit.Status.SUCCESS) == "canceled"


def test_an_interrupted_cron_firing_stays_one_firing(fake_kit, clock):
    kit = fake_kit
    site = kit.site("plone")
    site.crontab.add_cron(cronkit.Cron(name="drain-polite", uid="c1", periodicity="* * * * *",
                                       environ={"seconds": 120}))
    site.crontab.save()
    [firing] = kit.store.list_jobs(cron_uid="c1")
    clock.advance(minutes=1)
    worker = kit.worker(concurrency=1, claim_ahead=0, drain_timeout=0, drain_grace=30)
    worker.start()
    wait_for(lambda: kit.store.get_job(firing["id"])["status"] == "running", what="running")
    worker.stop()
    assert_interrupted(kit, firing["id"])
    [again] = kit.store.list_jobs(cron_uid="c1")     # the same firing, and only it
    assert again["id"] == firing["id"] and again["fire_at"] == firing["fire_at"]
    assert site.crontab.by_uid("c1").logs == []      # not logged: it has not run yet


class Blocked(cronkit.Runner):
    """Waits on an event of the test, never looking at canceled."""

    release = threading.Event()

    def run(self):
        Blocked.release.wait(60)


def test_in_process_a_thread_that_ignores_the_stop_is_left_behind_and_its_job_requeued(
        fake_kit):
    kit = fake_kit
    site = kit.site("plone")
    site.register_runner(Blocked, name="blocked")
    Blocked.release.clear()
    job_id = site.submit("blocked").id
    worker = kit.worker(concurrency=1, claim_ahead=0, drain_timeout=0, drain_grace=0.2)
    worker.start()
    try:
        wait_for(lambda: kit.store.get_job(job_id)["status"] == "running", what="running")
        worker.stop()
        assert worker.abandoned == 1
        assert_interrupted(kit, job_id)
        assert kit.store.list_workers()[0]["state"] == "stopped"
    finally:
        Blocked.release.set()
    wait_for(lambda: not worker.executor._pool._threads or
             not any(t.is_alive() for t in worker.executor._pool._threads), what="thread end")
    assert_interrupted(kit, job_id)     # its late end changed nothing


def test_in_process_a_second_signal_skips_the_drain_timeout(fake_kit):
    kit = fake_kit
    site = kit.site("plone")
    job_id = site.submit("drain-polite", payload={"seconds": 120}).id
    worker = kit.worker(concurrency=1, claim_ahead=0, drain_timeout=300)
    worker.start()
    wait_for(lambda: kit.store.get_job(job_id)["status"] == "running", what="running")
    worker._signaled(signal.SIGTERM, None)
    wait_for(lambda: kit.store.list_workers()[0]["state"] == "draining", what="draining")
    worker._signaled(signal.SIGINT, None)
    worker.stop()
    assert_interrupted(kit, job_id)
    assert worker.abandoned == 0


def test_in_process_a_forked_job_that_ignores_the_stop_is_killed(tmp_path, clock):
    kit = cronkit.Cronkit(store=f"sqlite:///{tmp_path / 'fork.db'}", clock=clock)
    try:
        site = kit.site("plone")
        polite = site.submit("drain-polite", payload={"seconds": 120}).id
        stubborn = site.submit("drain-stubborn", payload={"seconds": 120}).id
        worker = kit.worker(concurrency=2, executor="processes", claim_ahead=0,
                            drain_timeout=0, drain_grace=0.5)
        worker.start()
        wait_for(lambda: running(kit, polite, stubborn), what="both running")
        worker.stop()
        assert worker.abandoned == 0
        assert_interrupted(kit, polite)      # it stopped by itself: its child requeued it
        assert_interrupted(kit, stubborn)    # killed, then requeued here
        assert_none_running(kit)
    finally:
        kit.close()


def test_in_process_a_draining_worker_heartbeats_its_jobs_and_its_row(fake_kit, clock):
    kit = fake_kit
    job_id = kit.site("plone").submit("drain-polite", payload={"seconds": 120}).id
    worker = kit.worker(concurrency=1, claim_ahead=0, drain_timeout=300,
                        heartbeat_interval=0.1)
    worker.start()
    wait_for(lambda: running(kit, job_id), what="running")
    clock.advance(seconds=30)
    worker.stop(wait=False)
    wait_for(lambda: kit.store.get_job(job_id)["heartbeat"] == clock.now(),
             what="the job's heartbeat while draining")
    [row] = kit.store.list_workers()
    assert row["state"] == "draining" and row["heartbeat"] == clock.now()
    worker._signaled(signal.SIGTERM, None)
    worker.stop()
    assert_interrupted(kit, job_id)


def test_in_process_a_store_failing_during_the_drain_is_said_and_the_worker_stops(
        fake_kit, monkeypatch, caplog):
    kit = fake_kit
    job_id = kit.site("plone").submit("drain-quick", payload={"seconds": 1.5}).id
    worker = kit.worker(concurrency=1, claim_ahead=0, drain_timeout=0.3,
                        heartbeat_interval=0.1)
    worker.start()
    wait_for(lambda: running(kit, job_id), what="running")

    def fails(*args, **kwargs):
        raise cronkit.StoreError("the store is away")

    for name in ("heartbeat", "worker_heartbeat", "stop_worker"):
        monkeypatch.setattr(kit.store, name, fails)
    monkeypatch.setattr(kit.lifecycle, "interrupt", fails)
    worker.stop()
    said = caplog.text
    assert "heartbeat failed while draining" in said and "cannot write its state" in said
    assert "cannot interrupt its jobs" in said and "cannot mark itself stopped" in said
    assert kit.store.get_job(job_id)["status"] == "success"   # it ran to its end
