"""Async runners: ``async def run(self)`` runs on an event loop on every executor; the
job API works from the coroutine without waiting for the store; a cancel or a timeout
cancels its task; a runner returning an awaitable never ends SUCCESS silently."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import warnings

import pytest

import cronkit
from cronkit import LogStatus, Status
from tests import jobrunners
from tests.helpers import finished, wait_for


def _register(site, name, run, **attrs):
    site.register_runner(type(name, (cronkit.Runner,), {"run": run, **attrs}), name=name)


@pytest.fixture
def worker(kit):
    worker = kit.worker(concurrency=20, poll_interval=0.05).start()
    yield worker
    worker.stop()


# -- in the calling thread: kit.run_pending() -------------------------------------------


def test_an_async_runner_is_awaited_and_ends_with_what_it_returns(kit, site):
    async def run(self):
        await asyncio.sleep(0)
        self.job.update(progress=40, text="halfway")
        self.job.note("noted")
        print("printed")
        return "done"

    _register(site, "work", run)
    job = site.submit("work")
    kit.run_pending()
    job.refresh()
    assert (job.status, job.message) == (Status.SUCCESS, "done")
    assert job.status_text == "halfway\nprinted\n"
    assert [h["comment"] for h in job.history] == ["noted"]


def test_an_async_cron_returning_messages_logs_warn(kit, site, clock):
    async def run(self):
        await asyncio.sleep(0)
        return ["careful", "very careful"]

    _register(site, "warner", run)
    cron = site.crontab.add_cron(cronkit.Cron(name="warner", periodicity="*/1 * * * *"))
    site.crontab.save()
    clock.advance(minutes=1)
    assert [j.status for j in kit.run_pending()] == [Status.SUCCESS]
    assert (cron.last.status, cron.last.messages) == (LogStatus.WARN, ["careful", "very careful"])


def test_a_sync_run_returning_a_coroutine_is_awaited_never_a_silent_success(kit, site):
    async def main(job):
        await asyncio.sleep(0)
        return f"awaited {job.id}"

    def run(self):                      # the mistake: main() is not awaited here
        return main(self.job)

    _register(site, "mistake", run)
    job = site.submit("mistake")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kit.run_pending()
        gc.collect()
    job.refresh()
    assert (job.status, job.message) == (Status.SUCCESS, f"awaited {job.id}")
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_a_coroutine_returning_a_coroutine_is_awaited_too(kit, site):
    async def inner():
        return "inner result"

    async def run(self):
        return inner()

    _register(site, "nested", run)
    job = site.submit("nested")
    kit.run_pending()
    assert site.jobs.get(job.id).message == "inner result"


def test_an_async_runner_that_raises_ends_failed_with_the_error(kit, site):
    async def run(self):
        await asyncio.sleep(0)
        raise ValueError("disk on fire")

    _register(site, "broken", run)
    job = site.submit("broken")
    kit.run_pending()
    job.refresh()
    assert job.status == Status.FAILED
    assert job.message.startswith("ValueError: disk on fire\n")


def test_run_pending_works_from_inside_a_running_event_loop(kit, site):
    async def run(self):
        await asyncio.sleep(0)
        return "ok"

    _register(site, "inner", run)
    job = site.submit("inner")

    async def caller():
        return kit.run_pending()

    assert [j.status for j in asyncio.run(caller())] == [Status.SUCCESS]
    assert site.jobs.get(job.id).message == "ok"


def test_the_job_api_does_not_wait_for_the_store_and_all_writes_precede_the_end(
        kit, site, monkeypatch):
    gate = threading.Event()
    add_history = kit.store.add_history

    def gated(*args):
        assert gate.wait(10), "the coroutine waited for this write"
        return add_history(*args)

    monkeypatch.setattr(kit.store, "add_history", gated)

    async def run(self):
        for n in range(20):
            self.job.note(f"note {n}")          # returns at once: the write waits for the gate
            self.job.update(text=f"step {n}")
        gate.set()
        await asyncio.sleep(0)
        return "written"

    _register(site, "writer", run)
    job = site.submit("writer")
    kit.run_pending()
    job.refresh()
    assert (job.status, job.message) == (Status.SUCCESS, "written")
    assert [h["comment"] for h in job.history] == [f"note {n}" for n in range(20)]
    assert job.status_text == "step 19"


def test_a_write_that_fails_fails_the_job(kit, site, monkeypatch):
    def broken(*args):
        raise cronkit.CronkitError("store away")

    monkeypatch.setattr(kit.store, "add_history", broken)

    async def run(self):
        self.job.note("lost")
        return "looked fine"

    _register(site, "lossy", run)
    job = site.submit("lossy")
    kit.run_pending()
    job.refresh()
    assert job.status == Status.FAILED and "store away" in job.message


# -- the threads executor: one event loop for all ----------------------------------------


def test_twenty_async_jobs_share_one_loop_thread(kit, site, worker):
    seen: set[tuple[int, str]] = set()

    async def run(self):
        seen.add((threading.get_ident(), threading.current_thread().name))
        await asyncio.sleep(1)
        return "slept"

    _register(site, "nap", run)
    jobs = [site.submit("nap") for _ in range(20)]
    for job in jobs:
        assert wait_for(lambda job=job: finished(site, job.id), 60).message == "slept"
    assert len(seen) == 1 and next(iter(seen))[1] == "cronkit-async"
    assert [t.name for t in threading.enumerate()].count("cronkit-async") == 1


def test_an_awaiting_async_job_holds_no_worker_thread(kit, site, worker):
    """Twenty async jobs await at once; not one of the executor's job threads waits for
    them (those run sync jobs only)."""
    started, release = threading.Event(), None
    count = {"in": 0}

    async def run(self):
        nonlocal release
        if release is None:
            release = asyncio.Event()
        count["in"] += 1
        if count["in"] == 20:
            started.set()
        await release.wait()
        return "released"

    _register(site, "hold", run)
    jobs = [site.submit("hold") for _ in range(20)]
    assert started.wait(60)
    assert len(worker.executor._pool._threads) == 0    # no job thread was even started
    loop = worker.executor._loop.running_loop()
    loop.call_soon_threadsafe(release.set)
    for job in jobs:
        assert wait_for(lambda job=job: finished(site, job.id), 60).message == "released"


def test_concurrent_async_jobs_print_into_their_own_job(kit, site, worker):
    async def run(self):
        for n in range(3):
            print(f"job {self.job.id} line {n}")
            await asyncio.sleep(0.01)

    _register(site, "talker", run)
    jobs = [site.submit("talker") for _ in range(5)]
    for job in jobs:
        done = wait_for(lambda job=job: finished(site, job.id))
        assert done.status_text == "".join(f"job {job.id} line {n}\n" for n in range(3))


def test_a_cancel_raises_cancelled_error_in_the_coroutine_and_ends_canceled(kit, site, worker):
    started, cancelled = threading.Event(), threading.Event()

    async def run(self):
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            self.job.note("cleaned up")
            raise
        return "not canceled"

    _register(site, "waiter", run)
    job = site.submit("waiter")
    assert started.wait(10)
    site.jobs.cancel(job.id)
    done = wait_for(lambda: finished(site, job.id))
    assert cancelled.is_set()
    assert done.status == Status.CANCELED
    assert [h["comment"] for h in done.history][-1:] == ["cleaned up"]


def test_job_canceled_is_seen_from_a_coroutine_that_catches_the_cancel(kit, site, worker):
    started = threading.Event()

    async def run(self):
        started.set()
        while not self.job.canceled:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                pass
        return "stopped"

    _register(site, "polite", run)
    job = site.submit("polite")
    assert started.wait(10)
    site.jobs.cancel(job.id)
    assert wait_for(lambda: finished(site, job.id)).status == Status.CANCELED


def test_a_hard_timeout_cancels_the_task_and_fails_the_job(kit, site, clock):
    started, cancelled = threading.Event(), threading.Event()

    async def run(self):
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    _register(site, "slow", run, timeout=30)
    worker = kit.worker(concurrency=1)
    worker.executor.start(kit)
    job = site.submit("slow")
    worker.tick()
    assert started.wait(10)
    clock.advance(seconds=31)
    worker.tick()
    assert cancelled.wait(10)
    worker.executor.shutdown()
    job.refresh()
    assert (job.status, job.message) == (Status.FAILED, "timed out after 30 s")


def test_an_async_function_runner_submits_and_runs_on_threads(kit, site, worker):
    jobrunners.register()
    job = jobrunners.agreet_fn.submit(site, {"who": "ann"})
    done = wait_for(lambda: finished(site, job.id))
    assert (done.status, done.message) == (Status.SUCCESS, f"hello ann from {os.getpid()}")


# -- the processes executor: asyncio.run in the child ------------------------------------


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


def test_an_async_runner_runs_in_its_child_process(real_kit, proc_worker):
    site = real_kit.site("s")
    job = site.submit("awhoami")
    done = wait_for(lambda: finished(site, job.id), what="job end")
    assert done.status == Status.SUCCESS, done.message
    assert done.pid == int(done.message) != os.getpid()


def test_a_cancel_reaches_the_coroutine_in_its_child_process(real_kit, proc_worker):
    site = real_kit.site("s")
    job = site.submit("awhoami", payload={"seconds": 60})
    wait_for(lambda: [h["comment"] for h in site.jobs.get(job.id).history] == ["started"])
    site.jobs.cancel(job.id)
    done = wait_for(lambda: finished(site, job.id), what="job end")
    assert done.status == Status.CANCELED
    assert [h["comment"] for h in done.history][:2] == ["started", "cancelled"]
