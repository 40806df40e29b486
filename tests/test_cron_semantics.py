"""DESIGN "Cron semantics": rule 1 (sync), rule 2 (a cron run), rule 3 (misfires) and
rule 5 through the Cron API (the exhaustive DST table is in test_schedule.py)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

import cronkit
from cronkit import (
    Cron,
    FinishedCronJobEvent,
    LogStatus,
    StartedCronJobEvent,
    Status,
    subscribe,
    unsubscribe,
)
from cronkit.interfaces import IQueueManager

UTC = UTC


def at(h, m, s=0):
    return datetime(2008, 1, 1, h, m, s, tzinfo=UTC)


class Recorder(cronkit.Runner):
    """Records its runs; returns (or raises) what the environ says."""

    runs: list = []

    def run(self):
        self.runs.append((self.cron.uid, self.job.fire_at, dict(self.environ)))
        if "raise" in self.environ:
            raise RuntimeError(self.environ["raise"])
        return self.environ.get("return")


@pytest.fixture(autouse=True)
def recorder():
    Recorder.runs = []
    cronkit.register_runner(Recorder, name="recorder")
    return Recorder


def add(site, **kw):
    kw.setdefault("name", "recorder")
    kw.setdefault("periodicity", "*/1 * * * *")
    crontab = site.crontab
    cron = crontab.add_cron(Cron(**kw))
    crontab.save()
    return cron


def pending(site, cron=None):
    return site.jobs.list(cron=cron, status=Status.PENDING)


def claim(kit):
    rows = kit.store.claim(kit.clock.now(), 1, "test", os.getpid())
    assert len(rows) == 1
    return rows[0]


@pytest.fixture
def events():
    seen = []

    def started(event):
        seen.append(("started", event.cron.uid))

    def finished(event):
        seen.append(("finished", event.cron.uid, event.log.status, event.log.messages))

    subscribe(StartedCronJobEvent)(started)
    subscribe(FinishedCronJobEvent)(finished)
    yield seen
    unsubscribe(StartedCronJobEvent, started)
    unsubscribe(FinishedCronJobEvent, finished)


# -- rule 1: the sync invariant ------------------------------------------------


def test_rule1_activated_cron_gets_exactly_one_pending_job_at_its_next_time(site):
    cron = add(site)
    jobs = pending(site, cron)
    assert [(j.run_after, j.fire_at, j.cron_uid) for j in jobs] == [(at(1, 4), at(1, 4), cron.uid)]


def test_rule1_saving_twice_changes_nothing(site):
    add(site)
    add(site, periodicity="*/5 * * * *")
    before = [(j.id, j.run_after) for j in pending(site)]
    site.crontab.save()
    site.crontab.save()
    assert [(j.id, j.run_after) for j in pending(site)] == before
    assert len(before) == 2


def test_rule1_saving_later_keeps_the_pending_job(site, clock):
    cron = add(site, periodicity="0 * * * *")
    job = pending(site, cron)[0]
    clock.advance(minutes=20)
    site.crontab.save()
    assert [j.id for j in pending(site, cron)] == [job.id]


def test_rule1_deactivated_cron_has_no_job(site):
    cron = add(site)
    cron.activated = False
    site.crontab.save()
    assert pending(site, cron) == []
    assert not site.jobs.is_job_present(cron)


def test_rule1_new_deactivated_cron_gets_no_job(site):
    cron = add(site, activated=False)
    assert pending(site, cron) == []


def test_rule1_deactivated_crontab_has_no_jobs(site):
    add(site)
    add(site)
    site.crontab.activated = False
    site.crontab.save()
    assert pending(site) == []


def test_rule1_deleted_cron_has_no_job(site):
    cron = add(site)
    del site.crontab.crons[cron.uid]
    site.crontab.save()
    assert pending(site) == []
    assert site.kit.store.load_crontab(site.name)["crons"] == []


def test_rule1_edited_cron_job_is_replaced(site):
    cron = add(site)
    old = pending(site, cron)[0]
    cron.periodicity = "*/10 * * * *"
    site.crontab.save()
    jobs = pending(site, cron)
    assert len(jobs) == 1 and jobs[0].id != old.id and jobs[0].run_after == at(1, 10)


def test_rule1_editing_environ_replaces_the_job_and_its_payload(site):
    cron = add(site, environ={"a": 1})
    old = pending(site, cron)[0]
    cron.environ = {"a": 2}
    site.crontab.save()
    jobs = pending(site, cron)
    assert [(j.payload, j.run_after) for j in jobs] == [({"a": 2}, old.run_after)]
    assert jobs[0].id != old.id


def test_rule1_editing_user_replaces_the_job(site):
    cron = add(site)
    cron.user = "admin"
    site.crontab.save()
    assert [j.user for j in pending(site, cron)] == ["admin"]


def test_rule1_editing_logs_limit_keeps_the_job(site):
    cron = add(site)
    old = pending(site, cron)[0]
    cron.logs_limit = 10
    cron.misfire = "skip"
    site.crontab.save()
    assert [j.id for j in pending(site, cron)] == [old.id]


def test_rule1_timezone_change_replaces_the_job(site):
    cron = add(site, periodicity="0 9 * * *")
    cron.timezone = "Europe/Paris"
    site.crontab.save()
    assert [j.run_after for j in pending(site, cron)] == [at(8, 0)]


def test_rule1_a_running_cron_gets_its_next_job_when_the_run_ends(site, kit, clock):
    cron = add(site)
    clock.advance(minutes=1)
    row = claim(kit)
    site.crontab.save()
    assert pending(site, cron) == []
    kit.execute(row)
    assert [j.run_after for j in pending(site, cron)] == [at(1, 5)]


def test_rule1_save_cron_syncs_that_cron(site):
    crontab = site.crontab
    cron = crontab.add_cron(Cron(name="recorder", periodicity="*/1 * * * *"))
    cron.save()
    assert len(pending(site, cron)) == 1


# -- rule 2: a cron run --------------------------------------------------------


def run_once(site, kit, clock, **kw):
    cron = add(site, **kw)
    clock.advance(minutes=1)
    done = kit.run_pending()
    return cron, done


def test_rule2_none_gives_ok(site, kit, clock):
    cron, done = run_once(site, kit, clock)
    assert [j.status for j in done] == [Status.SUCCESS]
    assert (cron.last.status, cron.last.messages) == (LogStatus.OK, [])
    assert cron.last.date == at(1, 4)


def test_rule2_returned_string_gives_warn_with_it(site, kit, clock):
    cron, _ = run_once(site, kit, clock, environ={"return": "careful"})
    assert (cron.last.status, cron.last.messages) == (LogStatus.WARN, ["careful"])


def test_rule2_returned_list_gives_warn_with_those_messages(site, kit, clock):
    cron, _ = run_once(site, kit, clock, environ={"return": ["one", "two"]})
    assert (cron.last.status, cron.last.messages) == (LogStatus.WARN, ["one", "two"])


def test_rule2_exception_gives_failure_with_its_text(site, kit, clock):
    cron, done = run_once(site, kit, clock, environ={"raise": "disk on fire"})
    assert cron.last.status == LogStatus.FAILURE
    assert any("disk on fire" in m for m in cron.last.messages)
    assert done[0].status == Status.FAILED
    assert "disk on fire" in done[0].message


def test_rule2_unknown_runner_gives_notrun_naming_it(site, kit, clock):
    cron, done = run_once(site, kit, clock, name="nosuchrunner")
    assert cron.last.status == LogStatus.NOTRUN
    assert any("nosuchrunner" in m for m in cron.last.messages)
    assert Recorder.runs == []
    assert done[0].status != Status.SUCCESS


def test_rule2_deactivated_cron_gives_notrun_with_a_message(site, kit, clock):
    cron = add(site)
    clock.advance(minutes=1)
    row = claim(kit)
    cron.activated = False
    site.crontab.save()
    kit.execute(row)
    assert cron.last.status == LogStatus.NOTRUN
    assert any("deactivated" in m for m in cron.last.messages)
    assert Recorder.runs == []
    assert pending(site, cron) == []


def test_rule2_deactivated_crontab_gives_notrun_with_a_message(site, kit, clock):
    cron = add(site)
    clock.advance(minutes=1)
    row = claim(kit)
    site.crontab.activated = False
    site.crontab.save()
    kit.execute(row)
    assert cron.last.status == LogStatus.NOTRUN
    assert any("crontab" in m and "deactivated" in m for m in cron.last.messages)
    assert Recorder.runs == []


def test_rule2_forced_run_of_a_deactivated_cron_is_notrun(site, kit):
    cron = add(site, activated=False)
    site.cron_manager(cron).register(force=True)
    kit.run_pending()
    assert cron.last.status == LogStatus.NOTRUN
    assert Recorder.runs == []


def test_rule2_started_and_finished_events_around_the_run(site, kit, clock, events):
    cron, _ = run_once(site, kit, clock, environ={"return": "w"})
    assert events == [("started", cron.uid), ("finished", cron.uid, LogStatus.WARN, ["w"])]


def test_rule2_events_also_for_notrun(site, kit, clock, events):
    cron, _ = run_once(site, kit, clock, name="nosuchrunner")
    assert [e[:3] for e in events] == [("started", cron.uid),
                                       ("finished", cron.uid, LogStatus.NOTRUN)]


def test_rule2_a_failing_subscriber_never_breaks_the_job(site, kit, clock):
    def broken(event):
        raise RuntimeError("subscriber bug")

    subscribe(FinishedCronJobEvent)(broken)
    try:
        cron, done = run_once(site, kit, clock)
    finally:
        unsubscribe(FinishedCronJobEvent, broken)
    assert cron.last.status == LogStatus.OK
    assert len(pending(site, cron)) == 1


@pytest.mark.parametrize("environ,name", [({}, "recorder"), ({"return": "w"}, "recorder"),
                                          ({"raise": "x"}, "recorder"), ({}, "nosuchrunner")])
def test_rule2_next_job_is_registered_always(site, kit, clock, environ, name):
    cron, _ = run_once(site, kit, clock, environ=environ, name=name)
    assert [j.run_after for j in pending(site, cron)] == [at(1, 5)]


def test_rule2_the_runner_gets_the_environ_and_the_cron(site, kit, clock):
    cron, _ = run_once(site, kit, clock, environ={"foo": "bar"})
    assert Recorder.runs == [(cron.uid, at(1, 4), {"foo": "bar"})]


def test_rule2_the_log_is_capped(site, kit, clock):
    cron = add(site, logs_limit=2)
    for _ in range(4):
        clock.advance(minutes=1)
        kit.run_pending()
    assert [entry.date for entry in cron.logs] == [at(1, 7), at(1, 6)]
    assert len(site.kit.store.load_crontab(site.name)["crons"][0]["logs"]) == 2


def test_rule2_a_cron_never_runs_twice_at_once(site, kit, clock):
    cron = add(site)
    clock.advance(minutes=1)
    first = claim(kit)
    site.cron_manager(cron).register(force=True)
    assert site.jobs.is_job_running(cron) and site.jobs.is_job_pending(cron)
    assert kit.store.claim(clock.now(), 5, "other", None) == []
    kit.execute(first)
    assert len(kit.run_pending()) == 1
    assert len(Recorder.runs) == 2


def test_rule2_job_of_a_deleted_cron_ends_canceled_without_running(site, kit, clock):
    cron = add(site)
    clock.advance(minutes=1)
    row = claim(kit)
    del site.crontab.crons[cron.uid]
    site.crontab.save()
    job = kit.execute(row)
    assert job.status == Status.CANCELED
    assert Recorder.runs == []
    assert pending(site) == []


# -- rule 3: missed firings ------------------------------------------------------


def test_rule3_once_runs_once_then_counts_from_now(site, kit, clock):
    cron = add(site, misfire="once")
    clock.set(at(1, 30, 30))
    done = kit.run_pending()
    assert len(done) == 1 and [r[1] for r in Recorder.runs] == [at(1, 4)]
    assert cron.last.status == LogStatus.OK
    assert [j.run_after for j in pending(site, cron)] == [at(1, 31)]


def test_rule3_default_is_once_no_catch_up_storm(site, kit, clock):
    cron = add(site)
    clock.set(at(5, 0))
    assert len(kit.run_pending()) == 1
    assert [j.run_after for j in pending(site, cron)] == [at(5, 1)]


def test_rule3_all_runs_every_missed_firing_oldest_first_each_once(site, kit, clock):
    cron = add(site, misfire="all")
    clock.set(at(1, 10, 30))
    done = kit.run_pending()
    fired = [r[1] for r in Recorder.runs]
    assert fired == [at(1, m) for m in range(4, 11)]
    assert len(done) == 7
    assert [j.run_after for j in pending(site, cron)] == [at(1, 11)]
    assert kit.run_pending() == []


def test_rule3_all_loses_no_firing_when_another_worker_restores_meanwhile(site, kit, clock):
    """A worker starting (its restore registers every cron with no pending or running
    job) just as a firing ends must find the next firing already queued: else it
    queues one after now and the backlog in between is lost."""
    cron = add(site, misfire="all")
    clock.set(at(1, 10, 30))
    other = cronkit.Cronkit(store=kit.store, clock=clock)
    other.site(site.name)

    def a_worker_starts(event):
        other.restore()

    subscribe(cronkit.JobFinishedEvent)(a_worker_starts)
    try:
        kit.run_pending()
    finally:
        unsubscribe(cronkit.JobFinishedEvent, a_worker_starts)
    assert [r[1] for r in Recorder.runs] == [at(1, m) for m in range(4, 11)]
    assert [j.run_after for j in pending(site, cron)] == [at(1, 11)]


def test_rule3_all_loses_no_firing_when_a_later_one_was_queued_meanwhile(site, kit, clock):
    """Another process's restore that read the crontab between a save and that save's
    sync queued the firing after its own now: the firings before it still run, each
    once, and the chain goes on from the later one."""
    cron = add(site, misfire="all")
    clock.set(at(1, 10, 30))
    queue = site.registry.getAdapter(site, IQueueManager)
    queue.register_cron_jobs([(cron, at(1, 8), at(1, 8))])
    kit.run_pending()
    assert [r[1] for r in Recorder.runs] == [at(1, m) for m in range(4, 11)]
    assert [j.run_after for j in pending(site, cron)] == [at(1, 11)]


def test_rule3_skip_logs_notrun_missed_and_counts_from_now(site, kit, clock):
    cron = add(site, misfire="skip")
    clock.set(at(1, 30, 30))
    kit.run_pending()
    assert Recorder.runs == []
    assert cron.last.status == LogStatus.NOTRUN
    assert any("missed" in m for m in cron.last.messages)
    assert [j.run_after for j in pending(site, cron)] == [at(1, 31)]


def test_rule3_skip_runs_a_firing_that_is_late_but_not_missed(site, kit, clock):
    cron = add(site, misfire="skip")
    clock.set(at(1, 4, 30))
    kit.run_pending()
    assert len(Recorder.runs) == 1 and cron.last.status == LogStatus.OK


def test_rule3_misfire_grace_turns_a_late_firing_into_skip(site, kit, clock):
    cron = add(site, misfire="once", misfire_grace=10)
    clock.set(at(1, 4, 11))
    kit.run_pending()
    assert Recorder.runs == []
    assert cron.last.status == LogStatus.NOTRUN
    assert any("missed" in m for m in cron.last.messages)
    assert [j.run_after for j in pending(site, cron)] == [at(1, 5)]


def test_rule3_misfire_grace_lets_a_firing_within_it_run(site, kit, clock):
    cron = add(site, misfire="once", misfire_grace=10)
    clock.set(at(1, 4, 10))
    kit.run_pending()
    assert len(Recorder.runs) == 1 and cron.last.status == LogStatus.OK


def test_rule3_misfire_grace_applies_to_all_too(site, kit, clock):
    cron = add(site, misfire="all", misfire_grace=90)
    clock.set(at(1, 6, 0))
    kit.run_pending()
    # 01:04 is 120 s late (missed); 01:05 (60 s) and 01:06 (0 s) are within the grace,
    # each judged on its own lateness: they run.
    assert [r[1] for r in Recorder.runs] == [at(1, 5), at(1, 6)]
    assert [entry.status for entry in cron.logs] == [LogStatus.OK, LogStatus.OK,
                                                    LogStatus.NOTRUN]
    assert [j.run_after for j in pending(site, cron)] == [at(1, 7)]


# The truth table of docs/api.rst ("Missed firings"): a per-minute cron whose first
# firing is 01:04, and a worker back at 01:0(3+n):30, n firings due, the newest 30 s
# late, the one before it 90 s, then 150 s, 210 s. Each row: the firings that run, the
# statuses of the logs (most recent first), and how many were not run in all (each
# NOTRUN log, and each firing counted "missed: N more" in a log).
MISFIRE_TABLE = [
    # policy, grace, n, run, logs, not run
    ("once", None, 1, [4], "OK", 0),
    ("once", 90, 1, [4], "OK", 0),
    ("all", None, 1, [4], "OK", 0),
    ("all", 90, 1, [4], "OK", 0),
    ("skip", None, 1, [4], "OK", 0),
    ("skip", 90, 1, [4], "OK", 0),
    ("once", None, 4, [4], "OK", 3),            # run once now, three counted
    ("once", 90, 4, [4], "OK", 3),              # the newest is within the grace: once
    ("once", 20, 4, [], "NOTRUN", 4),           # none is within: not run, all counted
    ("all", None, 4, [4, 5, 6, 7], "OK OK OK OK", 0),
    ("all", 90, 4, [6, 7], "OK OK NOTRUN", 2),  # 01:04 and 01:05 beyond, 01:06, 01:07 in
    ("all", 20, 4, [], "NOTRUN", 4),
    ("skip", None, 4, [], "NOTRUN", 4),         # skipped, counting from now
    ("skip", 90, 4, [], "NOTRUN", 4),
]


@pytest.mark.parametrize("policy, grace, n, runs, logs, not_run", MISFIRE_TABLE)
def test_rule3_missed_firings_truth_table(site, kit, clock, policy, grace, n, runs, logs,
                                          not_run):
    import re
    cron = add(site, misfire=policy, misfire_grace=grace)
    clock.set(at(1, 3 + n, 30))
    kit.run_pending()
    assert [r[1] for r in Recorder.runs] == [at(1, m) for m in runs]
    assert " ".join(entry.status for entry in cron.logs) == logs
    counted = sum(int(m.group(1)) for entry in cron.logs for text in entry.messages
                  for m in [re.search(r"missed: (\d+) more", text)] if m)
    notrun = sum(entry.status == LogStatus.NOTRUN for entry in cron.logs)
    assert notrun + counted == not_run
    # every firing is accounted for: run, or not run and recorded
    assert (len(runs) if policy != "once" else n - not_run) + not_run == n
    assert [j.run_after for j in pending(site, cron)] == [at(1, 4 + n)]


def test_rule3_a_run_that_outlasted_its_period_runs_next_once(site, kit, clock):
    cron = add(site)
    clock.advance(minutes=1)
    row = claim(kit)
    clock.set(at(1, 20, 30))      # the run took 16 minutes
    kit.execute(row)
    assert [j.run_after for j in pending(site, cron)] == [at(1, 21)]


# -- rule 5 through the Cron API ------------------------------------------------

PARIS = ZoneInfo("Europe/Paris")


def test_rule5_fixed_time_in_a_spring_forward_gap_runs_after_the_gap():
    cron = Cron(name="recorder", periodicity="30 2 * * *", timezone="Europe/Paris")
    nxt = cron.next_after(datetime(2024, 3, 30, 12, 0, tzinfo=UTC))
    assert nxt == datetime(2024, 3, 31, 3, 0, tzinfo=PARIS)
    assert nxt.astimezone(UTC) == datetime(2024, 3, 31, 1, 0, tzinfo=UTC)


def test_rule5_fixed_time_in_a_fall_back_overlap_runs_once_at_first_occurrence():
    cron = Cron(name="recorder", periodicity="30 2 * * *", timezone="Europe/Paris")
    first = cron.next_after(datetime(2024, 10, 26, 12, 0, tzinfo=UTC))
    assert first.astimezone(UTC) == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    again = cron.next_after(first)
    assert again.astimezone(UTC) == datetime(2024, 10, 28, 1, 30, tzinfo=UTC)


def test_rule5_wildcard_hour_skips_the_gap():
    cron = Cron(name="recorder", periodicity="30 * * * *", timezone="America/New_York")
    start = datetime(2024, 3, 10, 6, 45, tzinfo=UTC)        # 01:45 EST
    nxt = cron.next_after(start)
    assert nxt.astimezone(UTC) == datetime(2024, 3, 10, 7, 30, tzinfo=UTC)   # 03:30 EDT
    assert (nxt.hour, nxt.minute) == (3, 30)


def test_rule5_wildcard_hour_happens_twice_in_the_overlap():
    cron = Cron(name="recorder", periodicity="30 * * * *", timezone="America/New_York")
    t = datetime(2024, 11, 3, 5, 0, tzinfo=UTC)              # 01:00 EDT
    fired = []
    for _ in range(3):
        t = cron.next_after(t)
        fired.append(t.astimezone(UTC))
    assert fired == [datetime(2024, 11, 3, 5, 30, tzinfo=UTC),   # 01:30 EDT
                     datetime(2024, 11, 3, 6, 30, tzinfo=UTC),   # 01:30 EST
                     datetime(2024, 11, 3, 7, 30, tzinfo=UTC)]   # 02:30 EST


def test_rule5_pending_job_follows_the_crons_timezone(site):
    cron = add(site, periodicity="0 9 * * *", timezone="Asia/Tokyo")
    assert [j.run_after for j in pending(site, cron)] == [datetime(2008, 1, 2, 0, 0, tzinfo=UTC)]


class SelfCanceling(cronkit.Runner):
    def run(self):
        self.site.jobs.cancel(self.job.id)


def test_rule2_a_run_canceled_midway_is_notrun_and_rescheduled(site, kit, clock):
    cronkit.register_runner(SelfCanceling, name="selfcanceling")
    cron, done = run_once(site, kit, clock, name="selfcanceling")
    assert cron.last.status == LogStatus.NOTRUN
    assert "canceled" in cron.last.messages[0]
    assert done[0].status == Status.CANCELED
    assert [j.run_after for j in pending(site, cron)] == [at(1, 5)]


def test_rule2_a_forced_run_beside_a_due_firing_never_runs_at_the_same_time(site, kit, clock):
    cron = add(site)
    clock.advance(minutes=1)
    row = dict(kit.store.list_jobs(cron_uid=cron.uid)[0])
    forced = {k: row[k] for k in ("site", "type", "name", "status", "payload", "run_after",
                                  "created_at", "cron_uid", "signature")}
    kit.store.add_jobs([forced])                         # e.g. `cronkit crons run` meanwhile
    claimed = kit.store.claim(clock.now(), 10, "worker")
    assert len(claimed) == 1
    assert kit.store.claim(clock.now(), 10, "other") == []


class WhoAmI(cronkit.Runner):
    def run(self):
        return [self.cron.user, self.job.user]


def test_rule2_the_crons_user_is_handed_to_the_runner(site, kit, clock):
    cronkit.register_runner(WhoAmI, name="whoami")
    cron, _ = run_once(site, kit, clock, name="whoami", user="admin")
    assert cron.last.messages == ["admin", "admin"]
