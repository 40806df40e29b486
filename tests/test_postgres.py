"""PostgreSQL: the store for many workers on many hosts (DESIGN "Cron semantics" 4, 6).

Wake-ups by LISTEN/NOTIFY, connection loss survived, and exactly-once under
contention with real ``cronkit worker`` processes on a real server. The store
contract itself is in ``tests/contracts``; lost COMMITs, operation by operation, in
``test_postgres_retries.py``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

import cronkit
from cronkit import DuplicateFiring, StoreError
from cronkit.exceptions import ReadOnlyStore
from cronkit.stores import open_store
from cronkit.stores.postgres import PostgresStore, engine_url
from cronkit.stores.schema import SCHEMA_VERSION
from tests.children import child_env
from tests.contracts import runner_classes as runners

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2008, 1, 1, 1, 3, tzinfo=UTC)

pytestmark = pytest.mark.usefixtures("contract_runners")


@pytest.fixture
def store(pg_db):
    store = open_store(pg_db)
    yield store
    store.close()


def job_row(**fields):
    data = {"site": "plone", "type": "count", "name": "count", "status": "pending",
            "payload": {}, "run_after": NOW, "created_at": NOW}
    data.update(fields)
    return data


# -- the store --------------------------------------------------------------------------


def test_postgresql_urls_open_a_postgres_store(pg_db):
    plain = "postgresql://" + pg_db.split("://", 1)[1]
    for url in (pg_db, plain):
        store = open_store(url)
        try:
            assert isinstance(store, PostgresStore)
            assert store.engine.dialect.driver == "psycopg"
        finally:
            store.close()


def test_processes_opening_a_fresh_database_at_once_all_find_one_schema(pg_db):
    """Workers and CLI commands started together on an empty database: one creates the
    schema, the others wait for it (an advisory lock) and find it there."""
    code = ("import sys; from cronkit.stores import open_store; "
            "s = open_store(sys.argv[1]); print(s.schema_version()); s.close()")
    procs = [subprocess.Popen([sys.executable, "-c", code, pg_db], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(6)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _, err in results]
    assert {out.strip() for out, _ in results} == {str(SCHEMA_VERSION)}


def test_an_integrity_error_that_is_not_a_firing_is_not_a_duplicate_firing(store):
    with pytest.raises(StoreError, match="refused the change") as info:
        store.add_jobs([job_row(name=None)])
    assert not isinstance(info.value, DuplicateFiring)


def test_right_after_a_claim_the_next_due_time_is_the_one_it_read(store):
    """A claim reads the next due time in its own round trip; ``next_due()`` answers
    with it right after, and asks the server again later (or after a second call)."""
    soon, later = NOW + timedelta(seconds=30), NOW + timedelta(seconds=90)
    [first, second] = store.add_jobs([job_row(), job_row(run_after=soon)])
    [claimed] = store.claim(NOW, 5, "w:1", 1)
    assert claimed["id"] == first and claimed["status"] == "running"
    assert store.next_due() == soon
    store.add_jobs([job_row(run_after=NOW - timedelta(seconds=5))])
    assert store.next_due() == NOW - timedelta(seconds=5)    # read again
    store.finish_job(first, "success", later, attempt=1)
    assert store.claim(NOW, 0, "w:1", 1) == []
    assert [r["id"] for r in store.claim(later, 5, "w:1", 1)][1:] == [second]
    assert store.next_due() is None


def test_a_read_only_store_refuses_the_job_writes(pg_db, store):
    read_only = PostgresStore(pg_db, read_only=True)   # on the schema `store` made
    try:
        for write in (lambda: read_only.claim(NOW, 1, "w:1", 1),
                      lambda: read_only.add_jobs([job_row()]),
                      lambda: read_only.finish_job(1, "success", NOW),
                      lambda: read_only.finish_jobs([{"job_id": 1, "status": "success",
                                                  "now": NOW}]),
                      lambda: read_only.adopt_job(1, 1, "w:1", "w:2", 1, NOW)):
            with pytest.raises(ReadOnlyStore):
                write()
    finally:
        read_only.close()


def test_engine_url_means_psycopg_3():
    assert engine_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert engine_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert engine_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(cronkit.StoreError):
        engine_url("sqlite:///x.db")


def test_a_store_that_cannot_connect_says_so():
    with pytest.raises(cronkit.StoreError, match="cannot open store"):
        PostgresStore("postgresql://postgres@127.0.0.1:1/nowhere", retry_for=0)


# -- LISTEN / NOTIFY --------------------------------------------------------------------


class Wakes:
    def __init__(self):
        self.event = threading.Event()
        self.payloads = []

    def __call__(self, *payload):
        self.payloads += payload
        self.event.set()

    def wait(self, timeout=30.0) -> bool:
        got = self.event.wait(timeout)
        self.event.clear()
        return got


@pytest.fixture
def listening(store):
    wakes = Wakes()
    assert store.start_listener(wakes)
    wakes.wait(1)   # the wake-up every (re)connection gives
    yield wakes
    store.stop_listener(wakes)


def test_a_submitted_job_wakes_listeners_at_once(pg_db, listening):
    kit = cronkit.Cronkit(store=pg_db)
    try:
        kit.site("plone").submit("count", payload={"n": 1})
        assert listening.wait()   # woken by the notification: no poll runs here
    finally:
        kit.close()


def test_a_crontab_save_wakes_listeners(pg_db, listening):
    kit = cronkit.Cronkit(store=pg_db)
    try:
        crontab = kit.site("plone").crontab
        crontab.add_cron(cronkit.Cron(name="tick", periodicity="@hourly", uid="c1"))
        crontab.save()
        assert listening.wait()
    finally:
        kit.close()


def test_a_requeue_wakes_listeners(store, listening):
    [job_id] = store.add_jobs([job_row()])
    store.claim(NOW, 1, "w:1", 1)
    listening.wait(0.5)
    assert store.requeue_job(job_id, NOW, "retry")
    assert listening.wait()


def test_reads_and_other_writes_do_not_wake_anyone(store, listening):
    [job_id] = store.add_jobs([job_row()])
    listening.wait()
    store.get_job(job_id)
    store.update_job(job_id, progress=5)
    store.claim(NOW, 1, "w:1", 1)
    store.finish_job(job_id, "success", NOW)
    assert not listening.wait(0.5)


def test_the_notification_leaves_with_the_commit(store, listening):
    """A notification sent inside a rolled-back transaction is never delivered."""
    with pytest.raises(cronkit.DuplicateFiring):
        store._notifying(((store.notify_channel, ""),),
                         lambda: store.add_jobs([job_row(cron_uid="c1", fire_at=NOW)] * 2))
    assert not listening.wait(0.5)


@pytest.fixture
def ends(store):
    """Wakes from the channel of job ends."""
    wakes = Wakes()
    assert store.start_listener(wakes, channel=store.ends_channel)
    wakes.wait(1)
    yield wakes
    store.stop_listener(wakes, channel=store.ends_channel)


def test_a_job_end_wakes_the_listeners_of_ends_when_the_store_notifies_ends(
        store, listening, ends):
    store.notify_ends = True
    [job_id] = store.add_jobs([job_row()])
    store.claim(NOW, 1, "w:1", 1)
    listening.wait(0.5)
    ends.wait(0.5)
    ends.payloads.clear()
    assert store.finish_job(job_id, "success", NOW, attempt=1) == "success"
    assert ends.wait() and ends.payloads == [f"{job_id}:1"]   # the job and its attempt
    assert not listening.wait(0.5)   # an end is no new work


def test_a_batch_of_ends_wakes_the_listeners_of_ends_once_naming_each_job(store, ends):
    store.notify_ends = True
    ids = store.add_jobs([job_row(), job_row()])
    store.claim(NOW, 2, "w:1", 1)
    ends.wait(0.5)
    ends.payloads.clear()
    batch = ({"job_id": i, "status": "success", "now": NOW, "attempt": 1} for i in ids)
    assert store.finish_jobs(batch) == ["success", "success"]   # any iterable
    assert ends.wait() and ends.payloads == [",".join(f"{i}:1" for i in ids)]


def test_a_requeue_wakes_both_channels_when_the_store_notifies_ends(store, listening, ends):
    store.notify_ends = True
    [job_id] = store.add_jobs([job_row()])
    store.claim(NOW, 1, "w:1", 1)
    listening.wait(0.5)
    ends.wait(0.5)
    ends.payloads.clear()
    assert store.requeue_job(job_id, NOW, "retry")
    assert ends.wait() and listening.wait()
    assert ends.payloads == [f"{job_id}:"]   # no attempt given: the job alone


def test_job_ends_notify_no_one_by_default(store, ends):
    [job_id] = store.add_jobs([job_row()])
    store.claim(NOW, 1, "w:1", 1)
    store.finish_job(job_id, "success", NOW)
    assert not ends.wait(0.5)


def test_the_listeners_of_ends_are_not_woken_by_a_new_job(store, ends):
    store.notify_ends = True
    store.add_jobs([job_row()])
    assert not ends.wait(0.5)


def test_wait_for_notify_sleeps_until_a_notification(store):
    assert store.wait_for_notify(0.2) in (True, False)   # starts listening
    assert store.wait_for_notify(0.2) is False
    threading.Timer(0.2, lambda: store.add_jobs([job_row()])).start()
    assert store.wait_for_notify(30) is True


def test_a_worker_woken_by_the_listener_runs_a_job_without_waiting_for_the_poll(pg_db):
    kit = cronkit.Cronkit(store=pg_db)
    site = kit.site("plone")
    site.register_runner(runners.Noop, name="noop")
    worker = kit.worker(concurrency=1, poll_interval=30).start()
    assert kit.store.start_listener(kit.wake)
    try:
        time.sleep(0.3)   # the worker is asleep for 30 s now
        job = site.submit("noop")
        deadline = time.monotonic() + 20   # the poll would take 30 s
        while site.jobs.get(job.id).status != cronkit.Status.SUCCESS:
            assert time.monotonic() < deadline, "the worker was not woken"
            time.sleep(0.02)
    finally:
        kit.store.stop_listener(kit.wake)
        worker.stop()
        kit.close()


# -- connection loss --------------------------------------------------------------------


def test_calls_wait_through_a_server_restart(store, postgres_server):
    [job_id] = store.add_jobs([job_row()])
    postgres_server.stop()
    restart = threading.Timer(1.0, postgres_server.start)
    restart.start()
    try:
        start = time.monotonic()
        assert store.get_job(job_id)["id"] == job_id   # retried until the server is back
        assert time.monotonic() - start >= 0.9
        assert store.claim(NOW, 5, "w:1", 1)[0]["id"] == job_id
    finally:
        restart.join()   # pg_ctl may still be waiting when clients are back


def test_a_claim_made_while_the_server_is_away_waits_for_it(store, postgres_server):
    """The job operations' own path (one pipeline, then COMMIT) retries a connection
    refused at checkout as every call does."""
    [job_id] = store.add_jobs([job_row()])
    store.engine.dispose()     # no pooled connection: the claim connects anew
    postgres_server.stop()
    restart = threading.Timer(1.0, postgres_server.start)
    restart.start()
    try:
        assert [r["id"] for r in store.claim(NOW, 5, "w:1", 1)] == [job_id]
        assert store.finish_jobs([]) == []
        assert store.finish_jobs([{"job_id": job_id, "status": "success", "now": NOW,
                                   "attempt": 1}]) == ["success"]
    finally:
        restart.join()


def test_a_call_gives_up_after_retry_for(pg_db, postgres_server):
    store = PostgresStore(pg_db, retry_for=1.0)
    try:
        postgres_server.stop()
        start = time.monotonic()
        with pytest.raises(cronkit.StoreError, match="gave up"):
            store.next_due()
        assert time.monotonic() - start < 30   # not the default 60 s of retries
    finally:
        postgres_server.start()
        store.close()


def test_the_listener_reconnects_after_a_restart(store, listening, postgres_server):
    postgres_server.restart()
    assert listening.wait(15)          # the reconnection itself wakes (notifications lost)
    store.add_jobs([job_row()])
    assert listening.wait(5)


# -- many worker processes ------------------------------------------------------------


def start_workers(url, n, *args, concurrency=4):
    env = child_env(CRONKIT_STORE=url)
    return [spawn_logged([sys.executable, "-m", "cronkit", "--store", url, "worker",
                          "--import", "tests.contracts.runners",
                          "--concurrency", str(concurrency), "--poll", "0.2",
                          "--log-level", "warning", *args], env=env, cwd=ROOT)
            for _ in range(n)]


def spawn_logged(argv, **options):
    """A long-running process whose stderr goes to a file that stop_workers reads back:
    a pipe read only at the end fills (64 KiB of warnings under load) and blocks it."""
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, text=True, **options)
    proc.log_file = log
    return proc


def stop_workers(procs):
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    errors = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        log = getattr(proc, "log_file", None)
        if log is not None:
            log.seek(0)
            err = log.read()
            log.close()
        errors.append(err)
    return errors


def ran(engine) -> dict[str, int]:
    with engine.begin() as conn:
        return dict(conn.execute(sa.text("SELECT key, n FROM cronkit_ran")).all())


def finished_count(site):
    return site.jobs.count(status=["success", "failed", "canceled"])


def wait_while_progressing(done, progress, what, stall=180.0):
    """Wait until ``done()``: as long as ``progress()`` keeps changing, however slow the
    machine is; fail only when it stood still for ``stall`` seconds (the workers are
    stuck, not slow). Contention tests assert completeness and exactly-once, not speed."""
    last, since = progress(), time.monotonic()
    while not done():
        now_progress = progress()
        if now_progress != last:
            last, since = now_progress, time.monotonic()
        assert time.monotonic() - since < stall, f"{what}: no progress for {stall:g} s"
        time.sleep(0.2)


def wait_until_drained(site, stall=180.0):
    wait_while_progressing(lambda: site.jobs.count(status=["pending", "running"]) == 0,
                           lambda: finished_count(site),
                           f"{site.jobs.count(status='pending')} pending, "
                           f"{site.jobs.count(status='running')} running", stall)


def prepare(url):
    kit = cronkit.Cronkit(store=url)
    with kit.store.engine.begin() as conn:
        conn.execute(sa.text(runners.RAN_TABLE))
    return kit


def submit_jobs(site, numbers):
    for n in numbers:
        site.submit("count", payload={"n": n})


def check_jobs_ran_once(site, counts, total):
    jobs = site.jobs.list(type="count")
    assert len(jobs) == total
    assert {j.status for j in jobs} == {cronkit.Status.SUCCESS}
    assert {k: v for k, v in counts.items() if k.startswith("job:")} == \
        {f"job:{n}": 1 for n in range(total)}


def run_crons_for(site, uids, seconds, during=None):
    """Save crons firing every second (misfire "all"), do ``during()``, and once every
    firing due in the first ``seconds`` seconds has run, deactivate the crontab.
    Return the end of that window."""
    crontab = site.crontab
    for uid in uids:
        crontab.add_cron(cronkit.Cron(name="tick", periodicity="* * * * * *", uid=uid,
                                      misfire="all"))
    crontab.save()
    end = datetime.now(UTC) + timedelta(seconds=seconds)
    if during is not None:
        during()
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()))   # the window itself

    def caught_up():
        # Every cron's chain of firings has passed ``end`` (its newest job, pending,
        # running or done, is due later): what is due up to ``end`` is queued or run.
        newest = [site.jobs.list(cron=uid, limit=1) for uid in uids]
        return all(jobs and jobs[0].fire_at > end for jobs in newest)
    # However loaded the machine, the work up to ``end`` is finite: wait while it moves.
    wait_while_progressing(caught_up, lambda: finished_count(site),
                           "the workers catching up with the crons")
    crontab = site.crontab
    crontab.activated = False
    crontab.save()
    return end


def check_firings_ran_once(site, counts, crons, end, seconds):
    """Every firing of every cron up to ``end`` ran once, at consecutive seconds; none
    ran twice."""
    for uid in crons:
        jobs = site.jobs.list(cron=uid)
        assert all(j.status in (cronkit.Status.SUCCESS, cronkit.Status.CANCELED) for j in jobs)
        ran_times = sorted(j.fire_at for j in jobs if j.status == cronkit.Status.SUCCESS)
        keys = {k: v for k, v in counts.items() if k.startswith(f"{uid}@")}
        assert keys == {f"{uid}@{t.isoformat()}": 1 for t in ran_times}, uid
        due = sorted(j.fire_at for j in jobs if j.fire_at <= end)
        assert due == ran_times[:len(due)], f"{uid}: a firing due before the end did not run"
        assert due == [due[0] + timedelta(seconds=i) for i in range(len(due))], \
            f"{uid}: a firing was missed"
        assert len(due) >= seconds - 2, f"{uid} fired {len(due)} times in {seconds} s"


def run_contention(kit, site, procs):
    """50 crons firing every second for 20 s plus 5,000 submitted jobs, run by ``procs``;
    then check that every firing and every job ran exactly once."""
    try:
        uids = [f"c{i:02d}" for i in range(50)]
        end = run_crons_for(site, uids, 20, lambda: submit_jobs(site, range(5000)))
        wait_until_drained(site)
        counts = ran(kit.store.engine)
    finally:
        errors = stop_workers(procs)
    assert all(p.returncode == 0 for p in procs), errors
    check_jobs_ran_once(site, counts, 5000)
    check_firings_ran_once(site, counts, uids, end, 20)


def test_four_workers_run_every_firing_and_every_job_exactly_once(pg_db):
    """4 ``cronkit worker`` processes, 50 crons firing every second for 20 s and
    5,000 submitted jobs: each ran once, none was missed."""
    kit = prepare(pg_db)
    site = kit.site("plone")
    run_contention(kit, site, start_workers(pg_db, 4, concurrency=6))
    assert site.jobs.count(status="running") == 0
    kit.close()


def test_workers_reconnect_after_a_server_restart_and_every_job_ends_once(pg_db, postgres_server):
    kit = prepare(pg_db)
    site = kit.site("plone")
    total = 3000
    submit_jobs(site, range(total))
    procs = start_workers(pg_db, 4, concurrency=4)
    try:
        wait_while_progressing(lambda: site.jobs.count(status="success") >= total // 4,
                               lambda: finished_count(site), "a quarter of the jobs")
        postgres_server.restart()
        assert site.jobs.count(status="success") < total, "restart too late to prove anything"
        wait_until_drained(site)
        counts = ran(kit.store.engine)
    finally:
        errors = stop_workers(procs)
    assert all(p.returncode == 0 for p in procs), errors
    check_jobs_ran_once(site, counts, total)
    kit.close()
