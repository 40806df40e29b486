"""One lifecycle: every end of a job, whatever its cause, is written once and sent once.

Each test ends a job in one way and counts what was sent: exactly one
``JobFinishedEvent`` per end and, for a cron firing, one Log and one
``FinishedCronJobEvent``. They run on SQLite and on PostgreSQL, with real child
processes where a process matters. Events are recorded to a file, so that an event
sent in a forked child is counted too.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

import cronkit
from cronkit import FinishedCronJobEvent, JobFinishedEvent, LogStatus, Status
from cronkit.events import JobRetriedEvent, JobStartedEvent
from cronkit.executors.celery import execute_adopted
from tests import jobrunners
from tests.helpers import FailsOnce, wait_for

RECORDED = (JobFinishedEvent, FinishedCronJobEvent, JobRetriedEvent, JobStartedEvent)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cronkit.db'}"
    return request.getfixturevalue("pg_db")


@pytest.fixture
def kit(store_url, clock):
    kit = cronkit.Cronkit(store=store_url, clock=clock, error_timeout=60)
    yield kit
    kit.close()


class Recorder:
    """Appends each event's plain values to a file, one JSON line each."""

    def __init__(self, path):
        self.path = path

    def __call__(self, event):
        with open(self.path, "a") as f:
            f.write(json.dumps(event.to_dict()) + "\n")

    def events(self, name, **match):
        if not self.path.exists():
            return []
        found = [json.loads(line) for line in self.path.read_text().splitlines()]
        return [e for e in found if e["event"] == name
                and all(e.get(k) == v for k, v in match.items())]

    def ends(self, job_id):
        return self.events("JobFinishedEvent", job_id=job_id)


@pytest.fixture
def recorder(tmp_path):
    rec = Recorder(tmp_path / "events.jsonl")
    for cls in RECORDED:
        cls.signal.connect(rec, weak=False)
    yield rec
    for cls in RECORDED:
        cls.signal.disconnect(rec)


class Ok(cronkit.Runner):
    def run(self):
        return None


class Boom(cronkit.Runner):
    def run(self):
        raise RuntimeError("boom")


class CancelsItself(cronkit.Runner):
    """Asks for its own cancel, then returns as a cooperative runner does."""

    def run(self):
        self.context.jobs.cancel(self.job.id)
        assert self.job.canceled


class WaitsForCancel(cronkit.Runner):
    """Runs (real time) until its canceled flag is set."""

    def run(self):
        deadline = time.monotonic() + 60
        while not self.job.canceled and time.monotonic() < deadline:
            time.sleep(0.02)


@pytest.fixture
def site(kit):
    site = kit.site("plone")
    for name, cls in {"ok": Ok, "boom": Boom, "cancels": CancelsItself, "fails-once": FailsOnce,
                      "waits": WaitsForCancel}.items():
        site.register_runner(cls, name=name)
    for name, cls in jobrunners.RUNNERS.items():
        site.register_runner(cls, name=name)
    return site


def add_cron(site, name="ok", periodicity="*/5 * * * *", **options):
    cron = cronkit.Cron(name=name, periodicity=periodicity, **options)
    site.crontab.add_cron(cron)
    site.crontab.save()
    return site.crontab.by_uid(cron.uid)


def claim_as_other_worker(kit, now=None):
    rows = kit.store.claim(now or kit.clock.now(), 1, "elsewhere.example:4242", 4242)
    assert len(rows) == 1
    return rows[0]


# -- submitted jobs ---------------------------------------------------------------


def test_a_run_that_returns_ends_success_once(kit, site, recorder):
    job = site.submit("ok")
    kit.run_pending()
    assert [e["status"] for e in recorder.ends(job.id)] == ["success"]
    assert len(recorder.events("JobStartedEvent", job_id=job.id)) == 1


def test_a_run_that_raises_ends_failed_once(kit, site, recorder):
    job = site.submit("boom")
    kit.run_pending()
    [end] = recorder.ends(job.id)
    assert end["status"] == "failed" and "RuntimeError: boom" in end["message"]


def test_a_pending_job_canceled_ends_canceled_once(kit, site, recorder):
    job = site.submit("ok")
    site.jobs.cancel(job.id)
    site.jobs.cancel(job.id)
    kit.run_pending()
    assert [e["status"] for e in recorder.ends(job.id)] == ["canceled"]
    assert site.jobs.get(job.id).status == Status.CANCELED


def test_a_cooperative_cancel_ends_canceled_once(kit, site, recorder):
    job = site.submit("cancels")
    kit.run_pending()
    assert [e["status"] for e in recorder.ends(job.id)] == ["canceled"]


def test_a_manual_run_is_a_new_attempt_with_an_end_of_its_own(kit, site, recorder):
    job = site.submit("ok")
    kit.run_pending()
    again = site.jobs.run(job.id)
    assert again.status == Status.SUCCESS and again.attempts == 2
    assert [e["attempt"] for e in recorder.ends(job.id)] == [1, 2]


def test_a_retried_attempt_is_retried_not_finished(kit, site, recorder, clock):
    job = site.submit("fails-once")
    kit.run_pending()
    assert recorder.ends(job.id) == []
    [retried] = recorder.events("JobRetriedEvent", job_id=job.id)
    assert retried["attempt"] == 1 and "first attempt fails" in retried["reason"]
    clock.advance(seconds=2)
    kit.run_pending()
    assert [e["status"] for e in recorder.ends(job.id)] == ["success"]


def test_a_job_whose_worker_is_lost_is_failed_once(kit, site, recorder, clock):
    job = site.submit("ok")
    claim_as_other_worker(kit)
    clock.advance(seconds=61)
    assert kit.reap() == [job.id]
    assert kit.reap() == []
    [end] = recorder.ends(job.id)
    assert end["status"] == "failed" and end["message"] == "worker lost"


def test_the_end_of_an_attempt_that_no_longer_owns_the_job_is_refused(kit, site, recorder, clock):
    job = site.submit("fails-once")
    first = claim_as_other_worker(kit)
    clock.advance(seconds=61)
    kit.reap()                                 # attempt 1 lost: retried
    clock.advance(seconds=20)
    second = claim_as_other_worker(kit)
    assert second["attempts"] == 2
    assert kit.lifecycle.finish(first, Status.SUCCESS) is None   # the orphan's late end
    assert site.jobs.get(job.id).status == Status.RUNNING
    assert recorder.ends(job.id) == []
    assert kit.lifecycle.finish(second, Status.SUCCESS) == "success"
    assert [e["attempt"] for e in recorder.ends(job.id)] == [2]


def test_a_thread_past_its_timeout_is_failed_once_and_its_own_end_refused(kit, site, recorder,
                                                                        clock):
    job = site.submit("waits", timeout=5)
    worker = kit.worker(concurrency=1)
    worker.executor.start(kit)
    try:
        worker.tick(clock.now())
        wait_for(lambda: recorder.events("JobStartedEvent", job_id=job.id), what="start")
        clock.advance(seconds=10)
        worker.tick(clock.now())
        wait_for(lambda: not worker.executor.running(), what="the thread's end")
    finally:
        worker.executor.shutdown(wait=True)
    [end] = recorder.ends(job.id)
    assert end["status"] == "failed" and end["message"] == "timed out after 5 s"


# -- real processes -----------------------------------------------------------------


@pytest.fixture
def processes(kit):
    worker = kit.worker(concurrency=2, executor="processes")
    worker.executor.start(kit)
    yield worker
    worker.executor.shutdown(wait=False)


def run_in_process(kit, processes, job):
    processes.tick(kit.clock.now())
    assert kit.store.get_job(job.id)["status"] != "pending"    # claimed, given to a child


def test_a_child_process_that_returns_ends_success_once(kit, site, recorder, processes):
    job = site.submit("whoami")
    run_in_process(kit, processes, job)
    wait_for(lambda: not processes.executor.running(), what="the child's end")
    [end] = recorder.ends(job.id)      # sent by the child, recorded through the file
    assert end["status"] == "success"


def test_a_child_process_that_crashes_ends_failed_once(kit, site, recorder, processes):
    job = site.submit("exit")
    run_in_process(kit, processes, job)
    wait_for(lambda: not processes.executor.running(), what="the child's end")
    [end] = recorder.ends(job.id)
    assert end["status"] == "failed" and end["message"] == "process exited with code 1"


def test_a_child_past_its_hard_timeout_is_killed_and_failed_once(kit, site, recorder, processes,
                                                               clock):
    job = site.submit("hang", timeout=3)
    run_in_process(kit, processes, job)
    clock.advance(seconds=5)
    processes.tick(clock.now())
    wait_for(lambda: not processes.executor.running(), what="the child's end")
    [end] = recorder.ends(job.id)
    assert end["status"] == "failed" and end["message"] == "timed out after 3 s"


def test_a_forced_cancel_kills_the_child_and_ends_canceled_once(kit, site, recorder, processes):
    job = site.submit("hang")
    run_in_process(kit, processes, job)
    wait_for(lambda: site.jobs.get(job.id).pid not in (None, 0), what="the child's pid")
    site.jobs.cancel(job.id, force=True)
    wait_for(lambda: not processes.executor.running(), what="the child's end")
    [end] = recorder.ends(job.id)
    assert end["status"] == "canceled"


# -- Celery --------------------------------------------------------------------------


def test_a_celery_job_canceled_before_it_started_ends_canceled_once(kit, site, recorder):
    job = site.submit("ok")
    [row] = kit.lifecycle.claim(kit.clock.now(), 1)
    site.jobs.cancel(job.id)                      # running (sent to Celery): flag set
    assert execute_adopted(kit, job.id, row["attempts"], kit.worker_id) == "canceled"
    assert execute_adopted(kit, job.id, row["attempts"], kit.worker_id) == "skipped"
    assert [e["status"] for e in recorder.ends(job.id)] == ["canceled"]


def test_a_celery_job_whose_celery_worker_died_is_failed_once(kit, site, recorder, clock):
    job = site.submit("ok")
    [row] = kit.lifecycle.claim(kit.clock.now(), 1)
    # A Celery worker on another host adopts it, then dies: no more heartbeats.
    assert kit.store.adopt_job(job.id, row["attempts"], kit.worker_id, "celery.example:77", 77,
                               clock.now())
    clock.advance(seconds=61)
    kit.reap()
    [end] = recorder.ends(job.id)
    assert end["status"] == "failed" and end["message"] == "worker lost"


# -- cron firings -------------------------------------------------------------------


def firing_counts(recorder, site, cron, job_id):
    crontab = site.crontab
    logs = crontab.by_uid(cron.uid).logs
    return (len(recorder.ends(job_id)), len(recorder.events("FinishedCronJobEvent", job_id=job_id)),
            logs)


def test_a_cron_firing_that_runs_is_logged_once_and_rescheduled(kit, site, recorder, clock):
    cron = add_cron(site)
    [pending] = site.jobs.list(cron=cron, status="pending")
    clock.set(pending.run_after)
    kit.run_pending()
    ends, finished, logs = firing_counts(recorder, site, cron, pending.id)
    assert (ends, finished) == (1, 1)
    assert [entry.status for entry in logs] == [LogStatus.OK]
    [nxt] = site.jobs.list(cron=cron, status="pending")
    assert nxt.run_after == pending.run_after + timedelta(minutes=5)


def test_a_lost_cron_firing_is_logged_failure_once_and_rescheduled(kit, site, recorder, clock):
    cron = add_cron(site)
    [pending] = site.jobs.list(cron=cron, status="pending")
    clock.set(pending.run_after)
    claim_as_other_worker(kit)
    clock.advance(seconds=61)
    kit.reap()
    kit.reap()
    ends, finished, logs = firing_counts(recorder, site, cron, pending.id)
    assert (ends, finished) == (1, 1)
    assert [(entry.status, entry.messages) for entry in logs] == [(LogStatus.FAILURE, ["worker lost"])]
    [event] = recorder.events("FinishedCronJobEvent", job_id=pending.id)
    assert event["cron_uid"] == cron.uid and event["status"] == "FAILURE"
    assert len(site.jobs.list(cron=cron, status="pending")) == 1


def test_a_pending_cron_firing_canceled_is_logged_notrun_and_the_next_one_queued(kit, site,
                                                                                recorder):
    cron = add_cron(site)
    [pending] = site.jobs.list(cron=cron, status="pending")
    site.jobs.cancel(pending.id)
    site.jobs.cancel(pending.id)
    ends, finished, logs = firing_counts(recorder, site, cron, pending.id)
    assert (ends, finished) == (1, 1)
    assert [entry.status for entry in logs] == [LogStatus.NOTRUN]
    [nxt] = site.jobs.list(cron=cron, status="pending")
    assert nxt.run_after > pending.run_after


def test_a_cron_firing_past_its_timeout_is_logged_failure_once(kit, site, recorder, clock,
                                                             processes):
    cron = add_cron(site, name="hang")
    [pending] = site.jobs.list(cron=cron, status="pending")
    kit.store.update_job(pending.id, timeout=3)
    clock.set(pending.run_after)
    run_in_process(kit, processes, pending)
    clock.advance(seconds=5)
    processes.tick(clock.now())
    wait_for(lambda: not processes.executor.running(), what="the child's end")
    ends, finished, logs = firing_counts(recorder, site, cron, pending.id)
    assert (ends, finished) == (1, 1)
    assert [(entry.status, entry.messages) for entry in logs] == \
        [(LogStatus.FAILURE, ["timed out after 3 s"])]
    assert len(site.jobs.list(cron=cron, status="pending")) == 1


# -- events per kit, on the kit's clock ----------------------------------------------


def test_two_kits_in_one_process_do_not_see_each_others_core_events(tmp_path, clock):
    from cronkit.interfaces import IJobFinishedEvent, IModifiedCrontabEvent
    kits = [cronkit.Cronkit(store=f"sqlite:///{tmp_path / name}.db", clock=clock)
            for name in ("a", "b")]
    seen: dict[int, list] = {0: [], 1: []}
    for n, k in enumerate(kits):
        k.registry.registerHandler(lambda event, n=n: seen[n].append(type(event).__name__),
                                   (IModifiedCrontabEvent,))
        k.registry.registerHandler(lambda event, n=n: seen[n].append(type(event).__name__),
                                   (IJobFinishedEvent,))
    try:
        site = kits[0].site("same-name")
        site.register_runner(Ok, name="ok")
        add_cron(site)
        site.submit("ok")
        kits[0].run_pending()
        assert seen[0] == ["ModifiedCrontabEvent", "JobFinishedEvent"]
        assert seen[1] == []
        assert kits[1].site("same-name").jobs.list() == []   # b's queue was never synced
    finally:
        for k in kits:
            k.close()


def test_events_carry_ids_and_plain_values_and_the_kits_time(kit, site, recorder, clock):
    clock.advance(hours=3)
    job = site.submit("ok", payload={"x": 1})
    kit.run_pending()
    [end] = recorder.ends(job.id)
    assert end == {"event": "JobFinishedEvent", "timestamp": clock.now().isoformat(),
                   "site_name": "plone", "job_id": job.id, "type": "ok", "cron_uid": None,
                   "status": "success", "message": None, "attempt": 1}
    assert json.loads(json.dumps(end)) == end


def test_an_event_is_frozen():
    event = JobFinishedEvent(job_id=3, status="success")
    with pytest.raises(AttributeError):
        event.status = "failed"          # type: ignore[misc]
    assert event.site is None and event.timestamp.tzinfo is not None


def test_a_subscriber_that_raises_never_breaks_the_job(kit, site):
    def broken(event):
        raise RuntimeError("subscriber bug")
    JobFinishedEvent.signal.connect(broken, weak=False)
    try:
        job = site.submit("ok")
        kit.run_pending()
    finally:
        JobFinishedEvent.signal.disconnect(broken)
    assert site.jobs.get(job.id).status == Status.SUCCESS


# -- time holds ------------------------------------------------------------------------


def test_tick_reaps_and_cleans_up_at_the_now_it_is_given(kit, site, recorder, clock):
    old = site.submit("ok")
    kit.run_pending()
    lost = site.submit("ok")
    claim_as_other_worker(kit)
    worker = kit.worker(concurrency=1)
    worker.executor.start(kit)
    try:
        later = clock.now() + timedelta(days=31)    # the clock itself does not move
        worker.tick(later)
    finally:
        worker.executor.shutdown(wait=True)
    [end] = recorder.ends(lost.id)
    assert end["message"] == "worker lost" and end["timestamp"] == later.isoformat()
    assert site.jobs.get(lost.id).finished_at == later
    with pytest.raises(cronkit.NoSuchJob):
        site.jobs.get(old.id)                        # past the 30 days' retention at ``later``


# -- every firing that does not run is recorded -------------------------------------


def test_firings_due_while_one_waits_in_the_queue_are_counted_on_its_log(kit, site, clock):
    cron = add_cron(site, periodicity="* * * * *")       # misfire "once", the default
    [pending] = site.jobs.list(cron=cron, status="pending")
    clock.set(pending.run_after + timedelta(minutes=5, seconds=30))   # stuck behind a burst
    kit.run_pending()
    [entry] = site.crontab.by_uid(cron.uid).logs
    due = [pending.run_after + timedelta(minutes=m) for m in range(1, 6)]
    assert entry.status == LogStatus.OK
    assert entry.messages == [f"missed: 5 more firing(s) not run (misfire 'once'), due "
                              f"{due[0].isoformat()} to {due[-1].isoformat()}"]
    [nxt] = site.jobs.list(cron=cron, status="pending")
    assert nxt.run_after == pending.run_after + timedelta(minutes=6)


def test_a_firing_on_time_counts_nothing_missed(kit, site, clock):
    cron = add_cron(site, periodicity="* * * * *")
    [pending] = site.jobs.list(cron=cron, status="pending")
    clock.set(pending.run_after + timedelta(seconds=2))
    kit.run_pending()
    assert site.crontab.by_uid(cron.uid).logs[0].messages == []


def test_a_skipped_firing_counts_the_others_it_skipped(kit, site, clock):
    cron = add_cron(site, periodicity="* * * * *", misfire="skip")
    [pending] = site.jobs.list(cron=cron, status="pending")
    clock.set(pending.run_after + timedelta(minutes=2, seconds=10))
    kit.run_pending()
    [entry] = site.crontab.by_uid(cron.uid).logs
    assert entry.status == LogStatus.NOTRUN
    assert entry.messages[0].startswith("missed: due at ")
    assert entry.messages[1].startswith("missed: 2 more firing(s) not run (misfire 'skip')")


def test_a_lost_firing_counts_the_firings_due_while_it_was_lost(kit, site, clock):
    cron = add_cron(site, periodicity="* * * * *")
    [pending] = site.jobs.list(cron=cron, status="pending")
    clock.set(pending.run_after)
    claim_as_other_worker(kit)
    clock.advance(minutes=3)
    kit.reap()
    [entry] = site.crontab.by_uid(cron.uid).logs
    assert entry.status == LogStatus.FAILURE
    assert entry.messages[0] == "worker lost"
    assert entry.messages[1].startswith("missed: 3 more firing(s) not run")


def test_misfire_all_runs_every_firing_and_counts_none(kit, site, clock):
    cron = add_cron(site, periodicity="* * * * *", misfire="all")
    [pending] = site.jobs.list(cron=cron, status="pending")
    clock.set(pending.run_after + timedelta(minutes=2, seconds=10))
    kit.run_pending()
    logs = site.crontab.by_uid(cron.uid).logs
    assert [(e.status, e.messages) for e in logs] == [(LogStatus.OK, [])] * 3


def test_a_lost_firing_of_a_misfire_all_cron_is_followed_by_the_next_firing(kit, site, clock):
    cron = add_cron(site, periodicity="* * * * *", misfire="all")
    [pending] = site.jobs.list(cron=cron, status="pending")
    clock.set(pending.run_after)
    claim_as_other_worker(kit)
    clock.advance(minutes=3)
    kit.reap()
    [entry] = site.crontab.by_uid(cron.uid).logs
    assert entry.messages == ["worker lost"]                  # nothing skipped
    [nxt] = site.jobs.list(cron=cron, status="pending")
    assert nxt.fire_at == pending.fire_at + timedelta(minutes=1)


# -- what a running job reports is always stored ----------------------------------


class SaysOddThings(cronkit.Runner):
    def run(self):
        self.job.update(progress=10, text="half \ud800 done\x00")
        self.job.note("a note \udcff")
        print("printed \ud83d")
        raise RuntimeError("broke \ud800")


def test_text_a_job_reports_that_no_store_holds_is_stored_escaped(kit, site, recorder):
    site.register_runner(SaysOddThings, name="odd")
    job = site.submit("odd")
    kit.run_pending()
    done = site.jobs.get(job.id)
    assert done.status == Status.FAILED and "broke \\ud800" in done.message
    assert "half \\ud800 done\\x00" in done.status_text and "printed \\ud83d" in done.status_text
    assert [h["comment"] for h in done.history] == ["a note \\udcff"]
    assert site.jobs.list()[0].id == job.id          # the listing still reads it
    assert len(recorder.ends(job.id)) == 1


def test_a_site_name_no_store_holds_is_refused(kit):
    for name in ("bad \ud800", "nul\x00", "x" * 201):
        with pytest.raises(cronkit.CronkitError, match="invalid site name"):
            kit.site(name)
