"""Group commit: a worker's plain jobs' ends are written in batches by the lifecycle's
writer, and no promise is weaker for it: an end is reported (events, the executor's
count) only once it is in the store, a worker killed before a batch commits leaves its
jobs to the reaper, a store that refuses a batch loses nothing. Real SQLite, real
processes for the kill."""

from __future__ import annotations

import signal
import threading
import time

import cronkit
from cronkit import Status
from cronkit.events import JobFinishedEvent
from cronkit.exceptions import StoreError
from tests import jobrunners
from tests.helpers import finished, spawn, wait_for


def _register(site, name, run, **attrs):
    site.register_runner(type(name, (cronkit.Runner,), {"run": run, **attrs}), name=name)


def test_many_short_jobs_end_in_fewer_transactions_than_jobs(kit, site):
    _register(site, "noop", lambda self: None)
    worker = kit.worker(concurrency=2, poll_interval=0.05).start()
    try:
        jobs = [site.submit("noop") for _ in range(300)]
        wait_for(lambda: site.jobs.count(status="success") == 300, what="300 jobs ran")
    finally:
        worker.stop()
    writer = kit.lifecycle.writer
    assert writer.written == 300 and 0 < writer.batches <= 300
    assert {site.jobs.get(j.id).status for j in jobs} == {Status.SUCCESS}
    assert not writer.running                       # stopped with its worker


def test_the_end_is_in_the_store_when_its_event_is_sent(kit, site):
    _register(site, "noop", lambda self: 42)
    seen: list[tuple[int, str, object]] = []

    def on_end(event):
        stored = kit.store.get_job(event.job.id)
        seen.append((event.job.id, stored["status"], stored["result"]))

    JobFinishedEvent.signal.connect(on_end)
    worker = kit.worker(concurrency=3, poll_interval=0.05).start()
    try:
        jobs = [site.submit("noop") for _ in range(50)]
        wait_for(lambda: len(seen) == 50, what="50 JobFinishedEvents")
    finally:
        worker.stop()
        JobFinishedEvent.signal.disconnect(on_end)
    assert sorted(seen) == [(j.id, "success", 42) for j in jobs]   # once each, written


def test_a_job_counts_as_running_until_its_end_is_written(kit, site):
    """The executor frees the job's slot, and drops it from its heartbeats, only after
    the write: a job whose end waits is still heartbeated (no reaper takes it)."""
    _register(site, "noop", lambda self: None)
    gate = threading.Event()
    store_finish = kit.store.finish_jobs

    def held_back(ends):
        gate.wait(30)
        return store_finish(ends)

    kit.store.finish_jobs = held_back
    worker = kit.worker(concurrency=1, poll_interval=0.05).start()
    try:
        job = site.submit("noop")
        wait_for(lambda: job.id in kit.lifecycle.writer.unwritten(), what="end handed in")
        assert site.jobs.get(job.id).status == Status.RUNNING
        assert job.id in worker.executor.running()
        gate.set()
        wait_for(lambda: finished(site, job.id), what="end written")
        wait_for(lambda: not worker.executor.running(), what="slot freed")
    finally:
        gate.set()
        worker.stop()
    assert site.jobs.get(job.id).status == Status.SUCCESS


def test_a_refused_batch_is_kept_and_written_when_the_store_answers_again(kit, site, caplog):
    _register(site, "noop", lambda self: None)
    store_finish = kit.store.finish_jobs
    refusals = []

    def full_disk_twice(ends):
        if len(refusals) < 2:
            refusals.append(len(ends))
            raise StoreError("database or disk is full")
        return store_finish(ends)

    kit.store.finish_jobs = full_disk_twice
    worker = kit.worker(concurrency=2, poll_interval=0.05).start()
    try:
        jobs = [site.submit("noop") for _ in range(5)]
        wait_for(lambda: all(finished(site, j.id) for j in jobs), what="every end written")
    finally:
        worker.stop()
    assert len(refusals) == 2
    assert {site.jobs.get(j.id).status for j in jobs} == {Status.SUCCESS}
    assert "trying again" in caplog.text


def test_an_end_given_to_a_stopped_writer_is_written_by_its_caller(kit, site):
    _register(site, "noop", lambda self: None)
    job = site.submit("noop")
    [row] = kit.lifecycle.claim(kit.clock.now(), 1)
    called = []
    done = kit.execute(row, written=lambda: called.append(1))   # no worker: no writer
    assert not done._end_queued and called == []
    assert site.jobs.get(job.id).status == Status.SUCCESS


def test_kill_9_before_the_batch_commits_leaves_the_jobs_to_the_reaper(db_url, tmp_path):
    """A worker whose writer never commits (its store hangs in finish_jobs) is killed
    with SIGKILL after its jobs ran: they are RUNNING with a dead worker, and the next
    worker fails them "worker lost" or, for a runner with retries, runs them again.
    None is lost, none stays RUNNING, none ends twice."""
    jobrunners.register()
    kit = cronkit.Cronkit(store=db_url, error_timeout=2)
    site = kit.site("s")
    runs = str(tmp_path / "runs.db")
    plain = [site.submit("count", payload={"db": runs, "key": f"p{i}"}) for i in range(3)]
    first = spawn(
        "import threading, cronkit\n"
        "from tests.jobrunners import register\n"
        "register()\n"
        f"kit = cronkit.Cronkit(store={db_url!r}, error_timeout=2)\n"
        "kit.store.finish_jobs = lambda ends: threading.Event().wait()\n"
        "print('ready', flush=True)\n"
        "kit.worker(concurrency=2, poll_interval=0.05).run_forever()\n")
    try:
        wait_for(lambda: _ran(runs) == 3, what="3 runs")
        assert all(site.jobs.get(j.id).status == Status.RUNNING for j in plain)
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        first.kill()
    second = spawn(f"from tests.jobrunners import serve; serve({db_url!r})")
    try:
        ended = [wait_for(lambda j=j: finished(site, j.id), what="reaped") for j in plain]
        assert {(j.status, j.message) for j in ended} == {(Status.FAILED, "worker lost")}
        assert kit.store.count_jobs(status="running") == 0
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
        kit.close()


def _ran(runs_db: str) -> int:
    import sqlite3
    try:
        with sqlite3.connect(runs_db, timeout=30) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:     # not made yet
        return 0


def _deferring(kit, site, monkeypatch, n):
    """``n`` no-op jobs claimed, the writer's deferral lasting until ``waiting`` is
    cleared (DEFER_MAX made long): (rows, writer, waiting), the writer not started."""
    from cronkit.components import endwriter
    monkeypatch.setattr(endwriter, "DEFER_MAX", 600.0)     # only ``defer`` ends the wait
    _register(site, "noop", lambda self: None)
    for _ in range(n):
        site.submit("noop")
    rows = kit.lifecycle.claim(kit.clock.now(), n)
    waiting = threading.Event()
    waiting.set()
    return rows, kit.lifecycle.writer, waiting


def test_ends_handed_in_while_jobs_wait_for_a_thread_do_not_wake_the_writer(
        kit, site, monkeypatch):
    """During a deferral an end does not wake the writer thread (each wake takes the
    GIL from the threads starting jobs): it asks ``defer`` once as the wait begins,
    not once per end; the end that finds no job waiting wakes it, and all are written."""
    rows, writer, waiting = _deferring(kit, site, monkeypatch, 41)
    asked: list[str] = []

    def defer() -> bool:
        asked.append(threading.current_thread().name)
        return waiting.is_set()

    writer.defer = defer
    writer.start()
    try:
        for row in rows[:40]:
            assert kit.execute(row, written=lambda: None)._end_queued
            time.sleep(0.002)   # room for the writer to run, had the end woken it
        assert wait_for(lambda: "cronkit-ends" in asked, what="the writer deferring")
        assert asked.count("cronkit-ends") <= 2 and writer.batches == 0
        waiting.clear()
        assert kit.execute(rows[40], written=lambda: None)._end_queued
        assert writer.flush(30)
        assert writer.batches == 1 and writer.written == 41
        assert site.jobs.count(status="running") == 0
    finally:
        writer.stop()
        writer.defer = None


def test_while_jobs_wait_for_a_thread_the_writer_waits_and_writes_them_in_one_batch(
        kit, site, monkeypatch):
    """``writer.defer`` (the worker's executor: jobs wait for a thread) holds a batch
    until it says no more; a defer that never says so holds it DEFER_MAX at most."""
    from cronkit.components import endwriter
    rows, writer, waiting = _deferring(kit, site, monkeypatch, 4)
    writer.defer = waiting.is_set
    writer.start()
    try:
        for row in rows:
            assert kit.execute(row, written=lambda: None)._end_queued
        assert writer.batches == 0 and site.jobs.count(status="running") == 4
        waiting.clear()
        site.submit("noop")
        [row] = kit.lifecycle.claim(kit.clock.now(), 1)
        kit.execute(row, written=lambda: None)            # an end wakes it: no more wait
        assert writer.flush(30)
        assert writer.batches == 1 and writer.written == 5
        monkeypatch.setattr(endwriter, "DEFER_MAX", 0.01)
        waiting.set()
        late = site.submit("noop")
        [row] = kit.lifecycle.claim(kit.clock.now(), 1)
        kit.execute(row, written=lambda: None)
        assert writer.flush(30)                              # held DEFER_MAX at most
        assert finished(site, late.id)
    finally:
        writer.stop()
        writer.defer = None
