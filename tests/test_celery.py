"""The celery executor: Celery workers run the jobs, the store stays the truth.

Real Redis and PostgreSQL servers (``tests/servers.py``), real ``celery`` worker
processes and real dispatching ``cronkit worker --executor celery`` processes.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from datetime import timedelta

import pytest
import redis

import cronkit
from cronkit.executors import celery as ck_celery
from cronkit.executors import make_executor
from tests import jobrunners
from tests.children import child_env
from tests.helpers import wait_for
from tests.test_postgres import (
    ROOT,
    prepare,
    ran,
    run_contention,
    spawn_logged,
    stop_workers,
)

pytestmark = pytest.mark.usefixtures("contract_runners")


@pytest.fixture
def broker(redis_url):
    redis.Redis.from_url(redis_url).flushall()
    return redis_url


@pytest.fixture
def kit(pg_db):
    kit = prepare(pg_db)
    yield kit
    kit.close()


@pytest.fixture
def site(kit):
    return kit.site("plone")


def claim(kit, owner="dispatcher:1"):
    [row] = kit.store.claim(kit.clock.now(), 1, owner, 1)
    return row


# -- the app ----------------------------------------------------------------------------


def test_the_app_speaks_json_only_and_reads_its_broker_from_the_environment(monkeypatch):
    monkeypatch.setenv("CRONKIT_BROKER", "redis://127.0.0.1:1/3")
    monkeypatch.setenv("CRONKIT_IMPORTS", "tests.contracts.runners, json")
    app = ck_celery.make_app()
    assert app.conf.broker_url == "redis://127.0.0.1:1/3"
    assert app.conf.accept_content == ["json"] and app.conf.task_serializer == "json"
    assert app.conf.result_accept_content == ["json"]
    assert tuple(app.conf.imports) == ("tests.contracts.runners", "json")
    assert ck_celery.TASK_NAME in app.tasks
    assert ck_celery.app.conf.task_serializer == "json"


def test_celery_is_an_executor_by_name():
    executor = make_executor("celery", 3)
    assert isinstance(executor, ck_celery.CeleryExecutor) and executor.capacity == 3


# -- the task, without a broker ---------------------------------------------------------


def test_the_task_adopts_the_job_and_runs_it_here(kit, site):
    job = site.submit("count", payload={"n": 1})
    row = claim(kit)
    assert ck_celery.execute_adopted(kit, row["id"], row["attempts"], "dispatcher:1") == "success"
    job = site.jobs.get(job.id)
    assert job.status == cronkit.Status.SUCCESS
    assert job.worker == kit.worker_id and job.pid == os.getpid()
    assert ran(kit.store.engine) == {"job:1": 1}


def test_a_message_delivered_twice_runs_the_job_once(kit, site):
    site.submit("count", payload={"n": 1})
    row = claim(kit)
    args = (row["id"], row["attempts"], "dispatcher:1")
    assert ck_celery.execute_adopted(kit, *args) == "success"
    assert ck_celery.execute_adopted(kit, *args) == "skipped"
    assert ran(kit.store.engine) == {"job:1": 1}


def test_a_message_for_an_earlier_attempt_runs_nothing(kit, site):
    job = site.submit("count", payload={"n": 1})
    row = claim(kit)
    kit.store.requeue_job(job.id, kit.clock.now(), "dispatcher lost")
    again = claim(kit, "dispatcher:2")
    assert ck_celery.execute_adopted(kit, row["id"], row["attempts"], "dispatcher:1") == "skipped"
    assert site.jobs.get(job.id).status == cronkit.Status.RUNNING
    assert ck_celery.execute_adopted(kit, job.id, again["attempts"], "dispatcher:2") == "success"
    assert ran(kit.store.engine) == {"job:1": 1}


def test_a_job_canceled_before_a_celery_worker_took_it_never_runs(kit, site):
    job = site.submit("count", payload={"n": 1})
    row = claim(kit)
    site.jobs.cancel(job.id)
    assert ck_celery.execute_adopted(kit, row["id"], row["attempts"], "dispatcher:1") == "canceled"
    job = site.jobs.get(job.id)
    assert job.status == cronkit.Status.CANCELED and "before a Celery worker" in job.message
    assert ran(kit.store.engine) == {}


def test_a_canceled_firing_that_never_ran_leaves_its_cron_scheduled(kit, site):
    crontab = site.crontab
    crontab.add_cron(cronkit.Cron(name="tick", periodicity="* * * * * *", uid="c1"))
    crontab.save()
    time.sleep(1.1)
    row = claim(kit)
    site.jobs.cancel(row["id"])
    assert ck_celery.execute_adopted(kit, row["id"], row["attempts"], "dispatcher:1") == "canceled"
    assert site.jobs.is_job_pending(crontab.by_uid("c1"))


def test_the_task_heartbeats_while_the_job_runs(kit, site):
    job = site.submit("slow", payload={"seconds": 0.6})
    row = claim(kit)
    first = site.jobs.get(job.id).heartbeat
    assert ck_celery.execute_adopted(kit, row["id"], row["attempts"], "dispatcher:1",
                                     heartbeat=0.1) == "success"
    assert site.jobs.get(job.id).heartbeat > first + timedelta(seconds=0.3)


def test_the_task_runs_an_async_runner_with_asyncio_run(kit, site):
    jobrunners.register()
    job = site.submit("awhoami")
    row = claim(kit)
    assert ck_celery.execute_adopted(kit, row["id"], row["attempts"], "dispatcher:1") == "success"
    job = site.jobs.get(job.id)
    assert (job.status, job.message) == (cronkit.Status.SUCCESS, str(os.getpid()))
    assert [h["comment"] for h in job.history] == ["started"]


# -- the dispatcher, with a broker that only records --------------------------------------


class Broker:
    """Stands for the Celery app: records what is sent."""

    def __init__(self):
        self.sent = []

    def send_task(self, name, kwargs):
        self.sent.append(kwargs)


class Ends:
    def __init__(self):
        self.ids = []
        self.event = threading.Event()

    def __call__(self, job_id):
        self.ids.append(job_id)
        self.event.set()


def dispatch(kit, site, executor, n=1):
    """Submit ``n`` jobs, claim them as the dispatcher ``kit`` and hand them to
    ``executor``; return the rows and what their ends call."""
    for _ in range(n):
        site.submit("noop")
    rows = kit.store.claim(kit.clock.now(), n, kit.worker_id, os.getpid())
    ends = Ends()
    for row in rows:
        executor.submit(row, ends)
    return rows, ends


@pytest.fixture
def celery_kit(pg_db):
    """The kit of a Celery worker process on the same database (as ``worker_kit``)."""
    kit = cronkit.Cronkit(store=pg_db)
    assert ck_celery.notify_ends(kit)
    yield kit
    kit.close()


def test_the_dispatcher_frees_a_slot_when_its_job_ends_without_waiting_for_a_poll(
        kit, site, celery_kit):
    executor = ck_celery.CeleryExecutor(concurrency=2, app=Broker())
    executor.fallback_interval = 300.0   # no look at the store but for a notified end
    executor.start(kit)
    assert executor._pushed, "PostgreSQL notifies job ends"
    try:
        [row], ends = dispatch(kit, site, executor)
        assert executor.in_flight() == {row["id"]}
        assert ck_celery.execute_adopted(celery_kit, row["id"], row["attempts"],
                                         kit.worker_id) == "success"
        assert ends.event.wait(30), "the end was not seen (the poll is 300 s away)"
        assert ends.ids == [row["id"]] and executor.in_flight() == set()
    finally:
        executor.shutdown()


def test_the_jobs_that_ended_are_freed_and_the_others_stay_in_flight(kit, site, celery_kit):
    executor = ck_celery.CeleryExecutor(concurrency=3, app=Broker())
    executor.fallback_interval = 300.0
    executor.start(kit)
    try:
        rows, ends = dispatch(kit, site, executor, n=3)
        done = [{"job_id": r["id"], "status": "success", "now": kit.clock.now(),
                 "attempt": r["attempts"]} for r in rows[:2]]
        for end in done:   # two ends, each notified, while a third job runs on
            celery_kit.store.finish_job(**end)
        wait_for(lambda: len(ends.ids) == 2, 30, "the two ends")
        assert sorted(ends.ids) == sorted(r["id"] for r in rows[:2])
        assert executor.in_flight() == {rows[2]["id"]}
    finally:
        executor.shutdown(wait=False)


def test_an_end_wakes_the_dispatcher_while_its_other_jobs_run_on_celery(kit, site, celery_kit):
    """Jobs taken by Celery workers are out of the dispatcher's count and out of its
    capacity, never in both: the end of one of them frees a slot and wakes the
    dispatcher at once, not at its next poll."""
    from cronkit.worker import Worker
    executor = ck_celery.CeleryExecutor(concurrency=4, app=Broker())
    executor.fallback_interval = 300.0
    executor.start(kit)
    worker = Worker(kit, concurrency=4, executor=executor)
    try:
        for _ in range(4):
            site.submit("noop")
        rows = kit.store.claim(kit.clock.now(), 4, kit.worker_id, os.getpid())
        for row in rows:
            executor.submit(row, worker._finished)
        for row in rows[:3]:    # three taken by a Celery worker, one still waiting
            assert celery_kit.store.adopt_job(row["id"], row["attempts"], kit.worker_id,
                                              "celery-host:1", 1, kit.clock.now())
        executor._check()
        assert executor.count() == len(executor.running()) == 1
        worker._wake.clear()
        celery_kit.store.finish_job(rows[0]["id"], "success", kit.clock.now(),
                                    attempt=rows[0]["attempts"])
        wait_for(worker._wake.is_set, 30, "the dispatcher woken by the end")
        assert executor.in_flight() == {r["id"] for r in rows[1:]}
    finally:
        executor.shutdown(wait=False)


def _queued(url, queue):
    """The kwargs of the task messages waiting in the Redis list ``queue``."""
    import base64
    import json
    found = []
    for raw in reversed(redis.Redis.from_url(url).lrange(queue, 0, -1)):
        _, kwargs, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
        found.append(kwargs)
    return found


def test_the_jobs_of_one_claim_are_sent_together(kit, site, broker):
    executor = ck_celery.CeleryExecutor(
        concurrency=4, app=ck_celery.make_app(broker=broker, queue="together"))
    executor.fallback_interval = 300.0
    executor.start(kit)
    try:
        for _ in range(3):
            site.submit("noop")
        rows = kit.store.claim(kit.clock.now(), 3, kit.worker_id, os.getpid())
        ends = Ends()
        executor.submit_many(rows, ends)
        sent = _queued(broker, "together")
        assert [(m["job_id"], m["attempt"], m["owner"]) for m in sent] == \
            [(r["id"], r["attempts"], kit.worker_id) for r in rows]
        assert executor.running() == {r["id"] for r in rows}
    finally:
        executor.shutdown(wait=False)


def test_jobs_the_broker_cannot_take_go_back_to_the_store(kit, site):
    from tests.servers import free_port
    app = ck_celery.make_app(broker=f"redis://127.0.0.1:{free_port()}/0")
    app.conf.task_publish_retry = False
    executor = ck_celery.CeleryExecutor(concurrency=4, app=app)
    executor.start(kit)
    try:
        jobs = [site.submit("noop") for _ in range(2)]
        rows = kit.store.claim(kit.clock.now(), 2, kit.worker_id, os.getpid())
        ends = Ends()
        executor.submit_many(rows, ends)
        assert sorted(ends.ids) == sorted(j.id for j in jobs)
        assert executor.in_flight() == set()
        for job in jobs:
            job = site.jobs.get(job.id)
            assert job.status == cronkit.Status.PENDING
            assert "broker unavailable" in job.message
            assert job.run_after > kit.clock.now()
    finally:
        executor.shutdown(wait=False)


def test_an_end_notified_without_its_attempt_is_looked_up_in_the_store(
        kit, site, celery_kit):
    executor = ck_celery.CeleryExecutor(concurrency=1, app=Broker())
    executor.fallback_interval = 300.0
    executor.start(kit)
    try:
        [row], ends = dispatch(kit, site, executor)
        celery_kit.store.finish_job(row["id"], "success", kit.clock.now())   # no attempt
        assert ends.event.wait(30) and ends.ids == [row["id"]]
    finally:
        executor.shutdown()


def test_an_end_of_another_attempt_frees_nothing(kit, site, celery_kit):
    executor = ck_celery.CeleryExecutor(concurrency=1, app=Broker())
    executor.fallback_interval = 300.0
    executor.start(kit)
    try:
        [row], ends = dispatch(kit, site, executor)
        executor._notified(f"{row['id']}:{row['attempts'] + 1},999999:1")
        time.sleep(0.3)   # the look it asks for finds the job still running
        assert not ends.ids and executor.in_flight() == {row["id"]}
    finally:
        executor.shutdown(wait=False)


def test_an_end_nobody_notified_is_found_by_the_fallback_look(kit, site):
    executor = ck_celery.CeleryExecutor(concurrency=1, app=Broker())
    executor.fallback_interval = 0.2
    executor.start(kit)
    try:
        [row], ends = dispatch(kit, site, executor)
        # Ended by a store that does not notify (a reaper, say).
        kit.store.finish_job(row["id"], "failed", kit.clock.now(), "worker lost")
        assert ends.event.wait(30) and ends.ids == [row["id"]]
    finally:
        executor.shutdown()


def test_on_sqlite_the_dispatcher_looks_at_its_jobs_in_flight_with_one_query(db_url):
    kit = cronkit.Cronkit(store=db_url)
    executor = ck_celery.CeleryExecutor(concurrency=2, app=Broker())
    executor.start(kit)
    try:
        assert not ck_celery.notify_ends(kit)
        rows, ends = dispatch(kit, kit.site("plone"), executor, n=2)
        for row in rows:
            assert ck_celery.execute_adopted(kit, row["id"], row["attempts"],
                                             kit.worker_id) == "success"
        wait_for(lambda: len(ends.ids) == 2, 30, "the two ends")
        assert executor.in_flight() == set()
    finally:
        executor.shutdown()
        kit.close()


def test_a_celery_process_heartbeats_its_jobs_from_one_thread(kit, site):
    ids = [site.submit("noop").id for _ in range(2)]
    kit.store.claim(kit.clock.now(), 2, "w:1", 1)
    first = {i: site.jobs.get(i).heartbeat for i in ids}
    beats = ck_celery._heartbeats(kit)
    before = threading.active_count()
    for job_id in ids:
        beats.add(job_id, 0.1)
    assert threading.active_count() <= before + 1
    wait_for(lambda: all(site.jobs.get(i).heartbeat > first[i] for i in ids), 30,
             "both heartbeats")
    for job_id in ids:
        beats.discard(job_id)
    assert ck_celery._heartbeats(kit) is beats


# -- real Celery workers ----------------------------------------------------------------


def celery_env(url, broker, imports="tests.contracts.runners"):
    return child_env(CRONKIT_STORE=url, CRONKIT_BROKER=broker, CRONKIT_IMPORTS=imports)


def start_celery(url, broker, name, pool="prefork", concurrency=4,
                 imports="tests.contracts.runners"):
    return spawn_logged(
        [sys.executable, "-m", "celery", "-A", "cronkit.executors.celery", "worker",
         "-P", pool, "-c", str(concurrency), "-n", f"{name}@%h", "--loglevel", "warning",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=celery_env(url, broker, imports), cwd=ROOT)


def start_dispatchers(url, broker, n, concurrency=32):
    return [spawn_logged(
        [sys.executable, "-m", "cronkit", "--store", url, "worker", "--executor", "celery",
         "--concurrency", str(concurrency), "--poll", "0.2", "--log-level", "warning"],
        env=celery_env(url, broker), cwd=ROOT) for _ in range(n)]


def start_dispatcher_with(url, broker, error_timeout):
    """A dispatcher whose kit has a short error_timeout (the CLI has no option for it)."""
    code = ("import cronkit, tests.contracts.runners; "
            f"kit = cronkit.Cronkit(error_timeout={error_timeout}); "
            "kit.worker(concurrency=4, executor='celery', poll_interval=0.2).run_forever()")
    return spawn_logged([sys.executable, "-c", code], env=celery_env(url, broker), cwd=ROOT)


def test_two_celery_workers_and_two_dispatchers_run_everything_exactly_once(pg_db, broker, kit):
    """50 crons firing every second for 20 s and 5,000 submitted jobs, dispatched by two
    ``cronkit worker --executor celery`` and run by two Celery workers: each ran once."""
    site = kit.site("plone")
    procs = [start_celery(pg_db, broker, "w1"), start_celery(pg_db, broker, "w2")]
    procs += start_dispatchers(pg_db, broker, 2)
    run_contention(kit, site, procs)
    workers = {j.worker for j in site.jobs.list(type="count")}
    assert len(workers) >= 2   # host:pid of the Celery processes, not of the dispatchers


def test_a_job_canceled_while_waiting_in_the_broker_never_runs(pg_db, broker, kit):
    site = kit.site("plone")
    dispatcher = start_dispatchers(pg_db, broker, 1)
    celery = None
    try:
        job = site.submit("slow", payload={"seconds": 0.1})
        wait_for(lambda: site.jobs.get(job.id).status == cronkit.Status.RUNNING, 120,
                 "the dispatcher to claim the job")
        site.jobs.cancel(job.id)
        celery = start_celery(pg_db, broker, "late", pool="solo", concurrency=1)
        wait_for(lambda: site.jobs.get(job.id).status == cronkit.Status.CANCELED, 120,
                 "the Celery worker to end the job")
    finally:
        stop_workers(dispatcher + ([celery] if celery else []))
    assert "before a Celery worker started it" in site.jobs.get(job.id).message
    assert ran(kit.store.engine) == {}


def test_a_celery_worker_killed_mid_job_leaves_it_failed_worker_lost(pg_db, broker, kit):
    error_timeout = 2
    site = kit.site("plone")
    dispatcher = start_dispatcher_with(pg_db, broker, error_timeout)
    celery = start_celery(pg_db, broker, "doomed", pool="solo", concurrency=1)
    try:
        job = site.submit("slow", payload={"seconds": 60})
        wait_for(lambda: ran(kit.store.engine), 120, "the job to start on the Celery worker")
        running = site.jobs.get(job.id)
        assert running.status == cronkit.Status.RUNNING and running.pid == celery.pid
        celery.send_signal(signal.SIGKILL)
        # Reaped after the error timeout (2 s), not the broker's visibility timeout
        # (300 s): a bound far below the one, generous for a loaded machine.
        wait_for(lambda: site.jobs.get(job.id).status != cronkit.Status.RUNNING,
                 error_timeout + 120, "the reaper")
    finally:
        stop_workers([dispatcher, celery])
    job = site.jobs.get(job.id)
    assert job.status == cronkit.Status.FAILED and job.message == "worker lost"
    assert ran(kit.store.engine) == {f"slow:{job.id}": 1}


def test_an_async_function_runner_runs_on_a_celery_worker(pg_db, broker, kit):
    jobrunners.register()
    site = kit.site("plone")
    dispatcher = start_dispatchers(pg_db, broker, 1)
    celery = start_celery(pg_db, broker, "aio", imports="tests.jobrunners")
    try:
        job = jobrunners.agreet_fn.submit(site, {"who": "ann"})
        wait_for(lambda: site.jobs.get(job.id).finished, 120, "the Celery worker to end the job")
    finally:
        stop_workers(dispatcher + [celery])
    job = site.jobs.get(job.id)
    assert job.status == cronkit.Status.SUCCESS, job.message
    assert job.message == f"hello ann from {job.pid}" and job.pid != os.getpid()
