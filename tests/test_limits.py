"""Limits and paused queues (issue 15, item 5), on SQLite and PostgreSQL: a paused site
or type is not claimed until resumed, and nothing of it is lost; a runner's
``max_running`` holds across every worker process on one store, its ``rate_limit``
counts starts by the kit's clock. The store's side is in ``tests/contracts``."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cronkit
from cronkit import Status
from tests import limitrunners
from tests.children import child_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, db_url):
    return db_url if request.param == "sqlite" else request.getfixturevalue("pg_db")


@pytest.fixture
def kit(url, clock):
    kit = cronkit.Cronkit(store=url, clock=clock)
    yield kit
    kit.close()


@pytest.fixture
def site(kit):
    return kit.site("plone")


@pytest.fixture
def ran():
    """The payloads run by the runners "mail" and "export", in order."""
    done: list[tuple[str, object]] = []

    class Mail(cronkit.Runner):
        def run(self):
            done.append(("mail", dict(self.job.payload)))

    class Export(cronkit.Runner):
        def run(self):
            done.append(("export", dict(self.job.payload)))

    cronkit.register_runner(Mail, name="mail")
    cronkit.register_runner(Export, name="export")
    return done


# -- paused queues ------------------------------------------------------------------------


def test_a_paused_site_keeps_its_jobs_pending_until_resumed(kit, site, ran):
    site.pause()
    job = site.submit("mail", {"n": 1})
    assert kit.run_pending() == [] and site.jobs.get(job.id).status == Status.PENDING
    assert site.paused() and site.paused("mail") and site.pauses() == [None]
    assert site.resume() is True
    assert [j.id for j in kit.run_pending()] == [job.id] and ran == [("mail", {"n": 1})]
    assert not site.paused() and site.resume() is False


def test_a_paused_type_waits_while_the_other_types_run(kit, site, ran):
    site.pause("mail")
    site.submit("mail", {"n": 1})
    site.submit("export", {"n": 2})
    kit.run_pending()
    assert ran == [("export", {"n": 2})]
    assert site.paused("mail") and not site.paused("export") and not site.paused()
    site.resume("mail")
    kit.run_pending()
    assert ran == [("export", {"n": 2}), ("mail", {"n": 1})]


def test_resuming_the_site_leaves_its_paused_types_paused(kit, site, ran):
    site.pause("mail")
    site.pause()
    assert site.pauses() == [None, "mail"]
    site.resume()
    site.submit("mail", {"n": 1})
    assert kit.run_pending() == [] and site.pauses() == ["mail"]


def test_another_site_runs_while_one_is_paused(kit, site, ran):
    site.pause()
    kit.site("zope").submit("mail", {"n": "zope"})
    site.submit("mail", {"n": "plone"})
    kit.run_pending()
    assert ran == [("mail", {"n": "zope"})]


def test_a_paused_queue_is_seen_by_every_kit_on_the_store(kit, site, url, clock, ran):
    other = cronkit.Cronkit(store=url, clock=clock)
    try:
        other.site("plone").pause("export")
        assert site.paused("export") and site.pauses() == ["export"]
        site.submit("export", {"n": 1})
        assert kit.run_pending() == []
        assert kit.store.paused_sites() == ["plone"]
    finally:
        other.close()


def test_cron_firings_of_a_paused_site_wait_and_are_not_lost(kit, site, clock, ran):
    cron = site.crontab.add_cron(cronkit.Cron(name="export", periodicity="0 * * * *"))
    site.crontab.save()
    [firing] = site.jobs.list(cron=cron, status=Status.PENDING)
    site.pause()
    clock.set(firing.run_after)
    assert kit.run_pending() == []
    assert [j.id for j in site.jobs.list(cron=cron, status=Status.PENDING)] == [firing.id]
    site.resume()
    assert [j.id for j in kit.run_pending()] == [firing.id]
    assert site.jobs.get(firing.id).status == Status.SUCCESS
    assert site.crontab.by_uid(cron.uid).logs[0].status == cronkit.LogStatus.OK


# -- limits -------------------------------------------------------------------------------


def test_a_rate_limit_lets_two_start_per_minute_by_the_kits_clock(kit, site, clock):
    started = []

    class Limited(cronkit.Runner):
        rate_limit = "2/m"

        def run(self):
            started.append(clock.now())

    cronkit.register_runner(Limited, name="limited")
    for i in range(5):
        site.submit("limited", {"n": i})
    assert len(kit.run_pending()) == 2
    clock.advance(seconds=59)
    assert kit.run_pending() == []
    clock.advance(seconds=1)
    assert len(kit.run_pending()) == 2
    clock.advance(seconds=60)
    assert len(kit.run_pending()) == 1
    assert site.jobs.count(status=Status.SUCCESS) == 5


def _spawn_worker(url):
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from tests.limitrunners import serve; serve({url!r})"],
        env=child_env(), cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.05)


def _drained_by_four_workers(kit, url, submit):
    """Start four worker processes, ``submit()`` jobs, wait until none is pending or
    running, stop the workers; return what ``submit`` returned."""
    workers = [_spawn_worker(url) for _ in range(4)]
    try:
        submitted = submit()
        _wait_for(lambda: kit.store.count_jobs(status=["pending", "running"]) == 0,
                  timeout=120, what="queue drained")
        return submitted
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=30)


def test_max_running_holds_across_four_worker_processes(url, tmp_path):
    """Four worker processes of two threads each (eight slots) drain 16 jobs of a runner
    with ``max_running = 2``: the runs, counting themselves in and out, never see three
    at once, and each job runs exactly once."""
    limitrunners.register()
    kit = cronkit.Cronkit(store=url)
    runs_db = str(tmp_path / "runs.db")
    n = 16
    try:
        site = kit.site("plone")
        _drained_by_four_workers(kit, url, lambda: [
            site.submit("overlap", {"db": runs_db, "key": f"job-{i}"}) for i in range(n)])
        assert kit.store.count_jobs(status="success") == n
    finally:
        kit.close()
    conn = sqlite3.connect(runs_db)
    try:
        [(running, most)] = conn.execute("SELECT running, most FROM now").fetchall()
        keys = sorted(k for (k,) in conn.execute("SELECT key FROM runs"))
    finally:
        conn.close()
    assert keys == sorted(f"job-{i}" for i in range(n))     # each exactly once
    assert running == 0 and 1 <= most <= 2


def test_continuations_run_in_order_across_four_worker_processes(url, tmp_path):
    """A chain of ten jobs, each after the one before, a job after three others, and a
    job after one that fails, drained by four worker processes: each runs once, after
    what it waits for, and the one after the failure ends CANCELED naming it."""
    limitrunners.register()
    kit = cronkit.Cronkit(store=url)
    runs_db = str(tmp_path / "runs.db")
    try:
        site = kit.site("plone")

        def job(key, after=None):
            return site.submit("overlap", {"db": runs_db, "key": key, "seconds": 0.05},
                               after=after)

        def submit():
            chain = [job("chain-0")]
            for i in range(1, 10):
                chain.append(job(f"chain-{i}", after=chain[-1]))
            fan = [job(f"fan-{i}") for i in range(3)]
            boom = site.submit("boom")
            return job("joined", after=fan), boom, job("never", after=boom)

        joined, boom, never = _drained_by_four_workers(kit, url, submit)
        assert site.jobs.get(joined.id).status == Status.SUCCESS
        canceled = site.jobs.get(never.id)
        assert canceled.status == Status.CANCELED and f"job {boom.id}" in canceled.message
    finally:
        kit.close()
    conn = sqlite3.connect(runs_db)
    try:
        order = [k for (k,) in conn.execute("SELECT key FROM runs ORDER BY rowid")]
    finally:
        conn.close()
    assert sorted(order) == sorted([f"chain-{i}" for i in range(10)]
                                   + [f"fan-{i}" for i in range(3)] + ["joined"])
    chain_order = [k for k in order if k.startswith("chain-")]
    assert chain_order == [f"chain-{i}" for i in range(10)]
    assert order.index("joined") > max(order.index(f"fan-{i}") for i in range(3))
