"""The worker loop as Celery beat's tick(): claims due jobs, returns the seconds until
the next one, never spins; the kit's helpers around it. FakeClock, real SQLite."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

import cronkit
from cronkit import Status


def _register(site, name, run, **attrs):
    site.register_runner(type(name, (cronkit.Runner,), {"run": run, **attrs}), name=name)


def _drain(worker, site, timeout=20.0):
    deadline = time.monotonic() + timeout
    while site.jobs.count(status=["pending", "running"]) and time.monotonic() < deadline:
        worker.tick()
        time.sleep(0.01)


def test_tick_returns_the_seconds_until_the_next_due_job(kit, site, clock):
    _register(site, "noop", lambda self: None)
    worker = kit.worker(concurrency=2, poll_interval=5)
    worker.executor.start(kit)
    assert worker.tick() == 5                      # empty queue: the poll interval
    site.submit("noop", delay=120)
    assert worker.tick() == 120
    clock.advance(seconds=100)
    assert worker.tick() == 20
    worker.executor.shutdown()


def test_tick_never_spins_on_a_due_job_it_cannot_claim(kit, site, clock):
    release = threading.Event()
    _register(site, "block", lambda self: release.wait(10))
    worker = kit.worker(concurrency=1, poll_interval=3)
    worker.executor.start(kit)
    site.submit("block")
    site.submit("block")
    assert worker.tick() == 3                      # one claimed, every slot busy
    assert worker.tick() == 3                      # the other is due but waits: no 0
    release.set()
    _drain(worker, site)
    worker.executor.shutdown()
    assert site.jobs.count(status="success") == 2


def test_a_started_worker_runs_due_jobs_and_wakes_on_submit_and_clock_jumps(kit, site, clock):
    done = threading.Event()
    _register(site, "ping", lambda self: done.set())
    worker = kit.worker(concurrency=2, poll_interval=30).start()
    try:
        site.submit("ping")                         # woken by the submission, not the poll
        assert done.wait(10)
        done.clear()
        site.submit("ping", delay=3600)
        time.sleep(0.05)
        assert not done.is_set()
        clock.advance(hours=1)                      # woken by the clock jump
        assert done.wait(10)
    finally:
        worker.stop()


def test_worker_start_restores_cron_jobs(kit, site, clock):
    _register(site, "tick", lambda self: None)
    cron = cronkit.Cron(name="tick", periodicity="*/5 * * * *")
    site.crontab.add_cron(cron)
    site.crontab.save()
    kit.store.delete_pending_cron_jobs(site.name, [cron.uid])
    worker = kit.worker().start()
    worker.stop()
    assert site.jobs.is_job_pending(cron)


def test_threads_timeout_fails_the_job_and_asks_it_to_stop(kit, site, clock):
    stopped = threading.Event()

    def run(self):
        while not self.job.canceled:
            time.sleep(0.01)
        stopped.set()

    _register(site, "slow", run, timeout=30)
    worker = kit.worker(concurrency=1)
    worker.executor.start(kit)
    job = site.submit("slow")
    worker.tick()
    clock.advance(seconds=31)
    worker.tick()
    assert stopped.wait(10)
    worker.executor.shutdown()
    job.refresh()
    assert job.status == Status.FAILED and job.message == "timed out after 30 s"


def test_an_internal_error_never_leaves_a_job_running(kit, site, monkeypatch):
    _register(site, "noop", lambda self: None)
    job = site.submit("noop")
    worker = kit.worker(concurrency=1)
    worker.executor.start(kit)

    def broken(row, debug=False):
        raise RuntimeError("store vanished")

    monkeypatch.setattr(kit, "execute", broken)
    worker.tick()
    worker.executor.shutdown()
    job.refresh()
    assert job.status == Status.FAILED and "internal error" in job.message


def test_worker_heartbeats_its_running_jobs(kit, site, clock):
    release = threading.Event()
    _register(site, "block", lambda self: release.wait(10))
    worker = kit.worker(concurrency=1, heartbeat_interval=10)
    worker.executor.start(kit)
    job = site.submit("block")
    worker.tick()
    clock.advance(seconds=11)
    worker.tick()
    assert job.refresh().heartbeat == clock.now()
    release.set()
    worker.executor.shutdown()


def test_worker_cleans_up_finished_jobs_on_its_own(kit, site, clock):
    _register(site, "noop", lambda self: None)
    site.submit("noop")
    kit.run_pending()
    clock.advance(days=31)
    worker = kit.worker(concurrency=1, cleanup_interval=60)
    worker.executor.start(kit)
    worker.tick()
    worker.executor.shutdown()
    assert site.jobs.count() == 0


def test_run_forever_stops_on_stop(kit):
    worker = kit.worker(poll_interval=0.05)
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    time.sleep(0.1)
    worker.stop()
    thread.join(10)
    assert not thread.is_alive()


def test_a_failing_tick_is_logged_and_retried(kit, monkeypatch, caplog):
    worker = kit.worker(poll_interval=0.01)
    calls = []

    def bad_tick(now=None):
        calls.append(1)
        if len(calls) == 3:
            worker.stop(wait=False)
        raise RuntimeError("database is locked")

    monkeypatch.setattr(worker, "tick", bad_tick)
    worker.run_forever(install_signals=False)
    assert len(calls) == 3
    assert "tick failed" in caplog.text and "3 failed in a row" in caplog.text


# -- the kit ----------------------------------------------------------------------


def test_site_names_must_be_non_empty(kit):
    with pytest.raises(cronkit.CronkitError, match="site"):
        kit.site("")


def test_a_site_time_zone_is_the_default_of_its_crons(kit, clock):
    site = kit.site("paris", timezone="Europe/Paris")
    cron = cronkit.Cron(name="x", periodicity="0 9 * * *")
    site.crontab.add_cron(cron)
    assert cron.next.utcoffset() == timedelta(hours=1)
    assert cron.next.hour == 9
    assert kit.site("paris").timezone == "Europe/Paris"
    with pytest.raises(cronkit.InvalidCron, match="Mars/Olympus"):
        kit.site("mars", timezone="Mars/Olympus")


def test_sites_lists_the_sites_of_the_store(kit, db_url, clock):
    kit.site("a").crontab.save()
    other = cronkit.Cronkit(store=db_url, clock=clock)
    assert [s.name for s in other.sites()] == ["a"]
    other.close()


@pytest.mark.parametrize("url, match", [
    ("nonsense", "invalid store URL"), ("ftp://x", "unknown store scheme 'ftp'"),
    ("sqlite:////no/such/folder/x.db", "does not exist"),
])
def test_bad_store_urls_raise_store_error(url, match):
    with pytest.raises(cronkit.StoreError, match=match):
        cronkit.Cronkit(store=url)


def test_force_cancel_never_kills_a_thread_worker(kit, site, clock):
    import os
    _register(site, "noop", lambda self: None)
    job = site.submit("noop")
    kit.store.update_job(job.id, status="running", pid=os.getpid(), worker=kit.worker_id)
    assert kit.force_cancel(site.jobs.get(job.id)) is False


def test_with_a_burst_prefetch_a_worker_claims_again_once_half_of_it_is_used(kit, site):
    release = threading.Event()
    _register(site, "held", lambda self: release.wait(30))
    worker = kit.worker(concurrency=1, poll_interval=5)
    worker.executor.start(kit)
    try:
        worker.executor._mean_run = 0.001       # short jobs seen: a prefetch of 8
        assert worker.executor.prefetch == 8 and worker._refill_below(9) == 5
        for _ in range(12):
            site.submit("held")
        worker.tick()
        assert site.jobs.count(status="pending") == 3     # 1 running, 8 queued
        worker.tick()                                     # 9 busy: no claim of 1 or 2
        assert site.jobs.count(status="pending") == 3
        worker._finished(0)                               # an end with 9 busy: no wake
        assert not worker._wake.is_set()
        release.set()
        _drain(worker, site)
        assert site.jobs.count(status="success") == 12
    finally:
        release.set()
        worker.executor.shutdown()


def test_once_its_queue_is_empty_an_end_wakes_the_worker_only_if_something_is_due(
        kit, site, clock):
    """The last jobs of a burst end with nothing left to claim: their ends do not wake
    the service (a tick would take the GIL from the jobs still starting, to claim
    nothing). A submission wakes it again, and while a job is due (one a limit holds
    back: the end of the running one lets it be claimed) each end wakes it."""
    release = threading.Event()
    _register(site, "held", lambda self: release.wait(30))
    _register(site, "one", lambda self: release.wait(30), max_running=1)
    worker = kit.worker(concurrency=2, poll_interval=5)
    worker.executor.start(kit)
    kit._wakers.append(worker.wake)                   # as start() does, with no service
    try:
        site.submit("held")
        worker.tick()                                 # claims it; nothing else is due
        assert site.jobs.count(status="running") == 1
        worker._wake.clear()
        worker._finished(0)
        assert not worker._wake.is_set()              # an end, nothing to claim: no wake
        site.submit("one")                            # a submission wakes it
        assert worker._wake.is_set()
        worker._wake.clear()
        worker._finished(0)
        assert worker._wake.is_set()                  # not yet ticked: it may claim
        worker.tick()                                 # claims "one"
        site.submit("one")                            # held back by its limit
        worker._wake.clear()
        worker.tick()
        assert site.jobs.count(status="pending") == 1
        worker._finished(0)
        assert worker._wake.is_set()                  # a job is due: the end wakes it
        release.set()
        _drain(worker, site)
        assert site.jobs.count(status="success") == 3
    finally:
        kit._wakers.remove(worker.wake)
        release.set()
        worker.executor.shutdown()


def test_the_service_sleeps_what_is_left_after_its_tick(kit, site, clock):
    _register(site, "noop", lambda self: None)
    worker = kit.worker(concurrency=1, poll_interval=60, claim_ahead=0)
    worker.executor.start(kit)
    try:
        site.submit("noop", delay=30)
        real_tick = worker.tick

        def slow_tick(now=None):
            delay = real_tick(now)
            clock.advance(seconds=10)     # the tick took 10 s of the clock
            return delay

        worker.tick = slow_tick
        assert worker.step() == pytest.approx(20)
        assert worker.step(clock.now()) == pytest.approx(20)   # a given now: as ticked
    finally:
        worker.executor.shutdown()
