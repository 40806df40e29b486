"""Claim-ahead with leases: a worker takes the plain jobs due within its horizon ahead
of their time, holds them under a lease it renews, and starts each at its due time
from memory. A job taken ahead can still be canceled (it never starts), is taken by
one worker only, and comes back to the queue when its worker dies or stops. FakeClock
and tick() for the rules, real processes for the kill."""

from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest

import cronkit
from cronkit import Status
from tests import jobrunners
from tests.helpers import finished, spawn, wait_for


@pytest.fixture
def ran(site):
    runs: list[int] = []
    site.register_runner(type("Note", (cronkit.Runner,), {
        "run": lambda self: runs.append(self.job.id)}), name="note")
    return runs


def _drain(worker, site, clock=None):
    deadline = time.monotonic() + 30
    while site.jobs.count(status=["pending", "running"]) and time.monotonic() < deadline:
        worker.tick()
        time.sleep(0.01)


def test_a_job_due_within_the_horizon_is_held_then_started_at_its_due_time(kit, site, clock,
                                                                           ran):
    worker = kit.worker(concurrency=2, poll_interval=5, claim_ahead=1.0)
    worker.executor.start(kit)
    try:
        job = site.submit("note", delay=0.6)
        later = site.submit("note", delay=30)
        assert worker.tick() == pytest.approx(0.6)      # held: woken at its due time
        held = site.jobs.get(job.id)
        assert (held.status, held.worker) == (Status.PENDING, kit.worker_id)
        assert list(worker.held) == [job.id]
        assert site.jobs.get(later.id).worker is None   # beyond the horizon
        clock.advance(seconds=0.6)
        worker.tick()
        wait_for(lambda: finished(site, job.id), what="held job ran")
        done = site.jobs.get(job.id)
        assert done.status == Status.SUCCESS and done.started_at == clock.now()
        assert ran == [job.id] and worker.held == {}
    finally:
        worker.executor.shutdown()


def test_a_job_canceled_while_held_never_starts(kit, site, clock, ran):
    worker = kit.worker(concurrency=2, claim_ahead=1.0)
    worker.executor.start(kit)
    try:
        job = site.submit("note", delay=0.5)
        worker.tick()
        assert job.id in worker.held
        assert site.jobs.cancel(job.id).status == Status.CANCELED
        clock.advance(seconds=1)
        worker.tick()
        worker.executor.shutdown()
        assert ran == [] and site.jobs.get(job.id).status == Status.CANCELED
        assert worker.held == {}
    finally:
        worker.executor.shutdown()


def test_a_held_job_is_taken_by_one_worker_only_and_comes_back_when_its_lease_ends(
        kit, site, clock, ran, db_url):
    other_kit = cronkit.Cronkit(store=db_url, clock=clock)
    other_site = other_kit.site("plone")
    other_runs: list[int] = []
    other_site.register_runner(type("Note", (cronkit.Runner,), {
        "run": lambda self: other_runs.append(self.job.id)}), name="note")
    first = kit.worker(concurrency=2, claim_ahead=1.0, lease=5)
    second = other_kit.worker(concurrency=2, claim_ahead=1.0, lease=5)
    for w in (first, second):
        w.executor.start(w.kit)
    try:
        job = site.submit("note", delay=0.5)
        first.tick()
        second.tick()                                  # held by the first: not leased again
        assert job.id in first.held and second.held == {}
        clock.advance(seconds=0.5)
        second.tick()                                  # due, but held: not claimed either
        assert other_runs == [] and site.jobs.get(job.id).status == Status.PENDING
        clock.advance(seconds=5)                       # the first never came back
        second.tick()
        wait_for(lambda: finished(site, job.id), what="the job ran on the second worker")
        assert other_runs == [job.id] and ran == []
        first.tick()                                   # the first finds it gone
        assert first.held == {}
        first.executor.shutdown()
        assert ran == []
    finally:
        for w in (first, second):
            w.executor.shutdown()
        other_kit.close()


def test_leases_are_renewed_with_the_heartbeat(kit, site, clock, ran):
    worker = kit.worker(concurrency=1, claim_ahead=10, lease=3, heartbeat_interval=1)
    worker.executor.start(kit)
    try:
        job = site.submit("note", delay=9)
        worker.tick()
        for _ in range(8):
            clock.advance(seconds=1)
            worker.tick()
            assert site.jobs.get(job.id).heartbeat > clock.now()      # still its lease
        clock.advance(seconds=1)
        worker.tick()
        wait_for(lambda: finished(site, job.id), what="held job ran")
        assert ran == [job.id]
    finally:
        worker.executor.shutdown()


def test_a_stopping_worker_gives_its_held_jobs_back(kit, site, ran):
    worker = kit.worker(concurrency=1, claim_ahead=60, poll_interval=0.05).start()
    job = site.submit("note", delay=30)
    wait_for(lambda: site.jobs.get(job.id).worker == kit.worker_id, what="held")
    worker.stop()
    back = site.jobs.get(job.id)
    assert (back.status, back.worker, back.heartbeat) == (Status.PENDING, None, None)
    assert ran == []


def test_cron_firings_and_limited_or_paused_jobs_are_not_held(kit, site, clock, ran):
    site.register_runner(type("Slow", (cronkit.Runner,), {
        "max_running": 1, "run": lambda self: None}), name="slow")
    worker = kit.worker(concurrency=2, claim_ahead=5)
    worker.executor.start(kit)
    try:
        site.submit("slow", delay=1)
        site.pause("note")
        paused = site.submit("note", delay=1)
        worker.tick()
        assert worker.held == {}
        site.resume("note")
        worker.tick()
        assert list(worker.held) == [paused.id]
        site.pause()                                   # paused after it was taken ahead
        clock.advance(seconds=1)
        worker.tick()
        assert ran == [] and site.jobs.get(paused.id).status == Status.PENDING
        assert site.jobs.get(paused.id).worker is None  # given back, claimable on resume
        site.resume()
        _drain(worker, site)
        assert ran == [paused.id]
    finally:
        worker.executor.shutdown()


def test_claim_ahead_zero_takes_nothing_ahead(kit, site, ran):
    worker = kit.worker(concurrency=1, claim_ahead=0)
    worker.executor.start(kit)
    try:
        job = site.submit("note", delay=0.5)
        assert worker.tick() == pytest.approx(0.5)
        assert worker.held == {} and site.jobs.get(job.id).worker is None
    finally:
        worker.executor.shutdown()


def test_after_kill_9_a_held_job_runs_once_on_the_next_worker(db_url, tmp_path):
    """A real worker process holds a job due in 4 s under a 2 s lease and is killed
    with SIGKILL: the job stays PENDING under a lease nobody renews, and the next worker
    runs it at its due time, once."""
    jobrunners.register()
    kit = cronkit.Cronkit(store=db_url)
    site = kit.site("s")
    runs = str(tmp_path / "runs.db")
    first = spawn(
        "import cronkit\n"
        "from tests.jobrunners import register\n"
        "register()\n"
        f"kit = cronkit.Cronkit(store={db_url!r})\n"
        "print('ready', flush=True)\n"
        "kit.worker(concurrency=1, poll_interval=0.05, claim_ahead=30, lease=2)"
        ".run_forever()\n")
    try:
        job = site.submit("count", payload={"db": runs, "key": "k"},
                          run_after=kit.clock.now() + timedelta(seconds=4))
        wait_for(lambda: site.jobs.get(job.id).worker, what="held by the first worker")
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        first.kill()
    assert site.jobs.get(job.id).status == Status.PENDING
    second = spawn(f"from tests.jobrunners import serve; serve({db_url!r})")
    try:
        done = wait_for(lambda: finished(site, job.id), what="the held job ran")
        assert done.status == Status.SUCCESS
        import sqlite3
        with sqlite3.connect(runs) as conn:
            assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
        kit.close()


# -- started ahead: the RUNNING written before the due instant -----------------------


def _armed(kit, site, clock, worker, delay=0.5):
    """A job held, then the clock moved to within START_EARLY of its due time and a
    tick: its RUNNING is written, its thread waits for the instant."""
    job = site.submit("note", delay=delay)
    worker.tick()
    assert job.id in worker.held
    clock.advance(seconds=delay - worker.START_EARLY / 2)
    worker.tick()
    return job


def test_a_job_due_within_start_early_is_started_ahead_and_runs_at_its_instant(
        kit, site, clock, ran):
    worker = kit.worker(concurrency=2, claim_ahead=1.0)
    worker.executor.start(kit)
    try:
        job = _armed(kit, site, clock, worker)
        started = site.jobs.get(job.id)
        assert started.status == Status.RUNNING and worker.held == {}
        assert started.started_at == job.run_after      # recorded as its due instant
        assert job.id in worker.executor.running()      # heartbeated as running
        assert ran == []                                # the clock has not reached it
        clock.advance(seconds=worker.START_EARLY / 2)
        worker.tick()
        wait_for(lambda: finished(site, job.id), what="started-ahead job ran")
        assert ran == [job.id] and site.jobs.get(job.id).status == Status.SUCCESS
    finally:
        worker.executor.shutdown()


def test_a_job_canceled_after_its_early_start_ends_canceled_and_never_runs(
        kit, site, clock, ran):
    finished_events = []
    receiver = finished_events.append
    cronkit.events.JobFinishedEvent.signal.connect(receiver, weak=False)
    worker = kit.worker(concurrency=2, claim_ahead=1.0)
    worker.executor.start(kit)
    try:
        kept = site.submit("note", delay=0.5)                 # due with it
        job = _armed(kit, site, clock, worker)
        assert site.jobs.get(kept.id).status == Status.RUNNING
        assert site.jobs.cancel(job.id).status == Status.RUNNING    # its flag: it is started
        clock.advance(seconds=worker.START_EARLY)
        worker.tick()
        done = wait_for(lambda: finished(site, job.id), what="the canceled job ended")
        assert done.status == Status.CANCELED and done.message == "canceled before it started"
        wait_for(lambda: finished(site, kept.id), what="the other job ran")
        worker.executor.shutdown()
        assert ran == [kept.id]
        assert job.id in [e.job.id for e in finished_events]
    finally:
        cronkit.events.JobFinishedEvent.signal.disconnect(receiver)
        worker.executor.shutdown()


def test_jobs_started_ahead_are_released_when_the_worker_stops(kit, site, clock, ran):
    worker = kit.worker(concurrency=1, claim_ahead=1.0, poll_interval=0.05)
    worker.executor.start(kit)
    job = _armed(kit, site, clock, worker)
    worker.stop()
    worker.run_forever(install_signals=False)       # stopped at once: it drains
    assert site.jobs.get(job.id).status == Status.SUCCESS and ran == [job.id]


def test_a_store_that_cannot_say_the_cancels_is_asked_job_by_job(kit, site, clock, ran,
                                                                monkeypatch):
    def away(ids):
        raise cronkit.StoreError("away")

    monkeypatch.setattr(kit.store, "canceled_among", away)
    worker = kit.worker(concurrency=2, claim_ahead=1.0)
    worker.executor.start(kit)
    try:
        job = _armed(kit, site, clock, worker)
        site.jobs.cancel(job.id)
        clock.advance(seconds=worker.START_EARLY)
        worker.tick()
        assert wait_for(lambda: finished(site, job.id)).status == Status.CANCELED
        assert ran == []
    finally:
        worker.executor.shutdown()


def test_a_started_ahead_job_whose_cancel_cannot_be_read_fails_never_left_running(
        kit, site, clock, ran, monkeypatch):
    def away(*args):
        raise cronkit.StoreError("away")

    worker = kit.worker(concurrency=2, claim_ahead=1.0)
    worker.executor.start(kit)
    try:
        job = _armed(kit, site, clock, worker)
        monkeypatch.setattr(kit.store, "canceled_among", away)
        monkeypatch.setattr(kit.store, "is_canceled", away)
        clock.advance(seconds=worker.START_EARLY)
        worker.tick()
        done = wait_for(lambda: finished(site, job.id), what="ended")
        assert done.status == Status.FAILED and "StoreError" in done.message and ran == []
        wait_for(lambda: worker.executor.running() == set(), what="its slot given back")
    finally:
        worker.executor.shutdown()


def test_an_async_job_started_ahead_runs_at_its_instant_or_not_at_all_if_canceled(
        kit, site, clock):
    runs: list[int] = []

    class Later(cronkit.Runner):
        async def run(self):
            runs.append(self.job.id)

    site.register_runner(Later, name="later")
    worker = kit.worker(concurrency=2, claim_ahead=1.0)
    worker.executor.start(kit)
    try:
        first = site.submit("later", delay=0.5)
        second = site.submit("later", delay=0.5)
        worker.tick()
        clock.advance(seconds=0.5 - worker.START_EARLY / 2)
        worker.tick()
        assert site.jobs.get(first.id).status == Status.RUNNING
        site.jobs.cancel(second.id)
        clock.advance(seconds=worker.START_EARLY)
        worker.tick()
        assert wait_for(lambda: finished(site, first.id)).status == Status.SUCCESS
        assert wait_for(lambda: finished(site, second.id)).status == Status.CANCELED
        assert runs == [first.id]
    finally:
        worker.executor.shutdown()


@pytest.mark.parametrize("url", ["memory://", "file"])
def test_canceled_among_names_the_jobs_whose_cancel_was_asked(url, db_url):
    kit = cronkit.Cronkit(store="memory://" if url == "memory://" else db_url)
    try:
        site = kit.site("s")
        site.register_runner(type("Note", (cronkit.Runner,), {"run": lambda self: None}),
                             name="note")
        a, b, c = (site.submit("note", delay=60) for _ in range(3))
        site.jobs.cancel(b.id)
        assert kit.store.canceled_among([a.id, b.id, c.id, 99999]) == {b.id}
        assert kit.store.canceled_among([]) == set()
    finally:
        kit.close()


def test_a_thread_waiting_at_its_gate_sees_the_clock_reach_the_instant_without_a_tick(
        kit, site, clock, ran):
    worker = kit.worker(concurrency=1, claim_ahead=1.0)
    worker.executor.start(kit)
    try:
        job = _armed(kit, site, clock, worker)
        clock.advance(seconds=worker.START_EARLY)      # no tick: the thread reads the clock
        wait_for(lambda: finished(site, job.id), what="started-ahead job ran")
        assert ran == [job.id]
    finally:
        worker.executor.shutdown()


def test_a_held_job_canceled_just_before_its_early_start_is_not_started(kit, site, clock, ran):
    worker = kit.worker(concurrency=1, claim_ahead=1.0)
    worker.executor.start(kit)
    try:
        job = site.submit("note", delay=0.5)
        worker.tick()
        site.jobs.cancel(job.id)
        clock.advance(seconds=0.5 - worker.START_EARLY / 2)
        worker.tick()
        assert worker.held == {} and worker._gates == []
        assert worker.executor.running() == set()
        assert site.jobs.get(job.id).status == Status.CANCELED and ran == []
    finally:
        worker.executor.shutdown()


def test_a_gate_opened_before_its_instant_still_lets_no_job_run_before_it(tmp_path):
    """A stopping worker opens its gates at once: a job whose start was written ahead
    still waits for its instant (at most EARLY_BOUND) on the real clock."""
    from cronkit.executors.base import EARLY_BOUND, StartGate

    real = cronkit.Cronkit(store=f"sqlite:///{tmp_path / 'gate.db'}")
    try:
        at = real.clock.now() + timedelta(seconds=EARLY_BOUND / 2)
        gate = StartGate(real, at, [])
        gate.open()
        assert gate.wait(1) is True
        assert real.clock.now() >= at
    finally:
        real.close()
