"""The job system (issue 3): submit, order, parameters, lifecycle, runner API, cancel,
retries, stale jobs, retention, manual runs. Real SQLite files, FakeClock."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

import cronkit
from cronkit import Param, Status


def _register(site, name, run, parameters=None, **attrs):
    cls = type(name, (cronkit.Runner,), {"run": run, "parameters": parameters,
                                         "__doc__": f"{name} help", **attrs})
    site.register_runner(cls, name=name)
    return cls


@pytest.fixture
def noop(site):
    return _register(site, "noop", lambda self: None)


# -- submit -------------------------------------------------------------------


def test_submit_returns_a_pending_job_at_once(site, noop, clock):
    job = site.submit("noop", payload={"a": 1}, name="Export X")
    assert job.status == Status.PENDING
    assert job.id and job.name == "Export X" and job.payload == {"a": 1}
    assert job.run_after == clock.now() and job.created_at == clock.now()
    assert site.jobs.get(job.id).status == "pending"


def test_name_defaults_to_the_type(site, noop):
    assert site.submit("noop").name == "noop"


def test_higher_priority_runs_first_then_run_after_then_submission_order(kit, site, clock):
    order = []
    _register(site, "rec", lambda self: order.append(self.job.name))
    site.submit("rec", name="low-1")
    site.submit("rec", name="high", priority=100)
    site.submit("rec", name="low-2")
    site.submit("rec", name="early", run_after=clock.now() - timedelta(minutes=1))
    site.submit("rec", name="mid", priority=5)
    kit.run_pending()
    assert order == ["high", "mid", "early", "low-1", "low-2"]


@pytest.mark.parametrize("delay", [90, timedelta(seconds=90)])
def test_delay_sets_the_earliest_start(kit, site, noop, clock, delay):
    job = site.submit("noop", delay=delay)
    assert job.run_after == clock.now() + timedelta(seconds=90)
    assert kit.run_pending() == []
    clock.advance(seconds=90)
    assert [j.id for j in kit.run_pending()] == [job.id]


def test_run_after_sets_the_earliest_start(kit, site, noop, clock):
    job = site.submit("noop", run_after=clock.now() + timedelta(hours=1))
    assert kit.run_pending() == []
    clock.advance(hours=1)
    assert kit.run_pending()[0].id == job.id


def test_unique_merges_an_identical_pending_submission(site, noop):
    first = site.submit("noop", payload={"x": 1}, unique=True)
    again = site.submit("noop", payload={"x": 1}, unique=True)
    other = site.submit("noop", payload={"x": 2}, unique=True)
    assert again.id == first.id
    assert other.id != first.id
    assert site.jobs.count(status="pending") == 2


def test_unique_does_not_merge_into_a_finished_job(kit, site, noop):
    first = site.submit("noop", unique=True)
    kit.run_pending()
    assert site.submit("noop", unique=True).id != first.id


def test_payload_over_one_mib_is_refused(site, noop):
    with pytest.raises(cronkit.InvalidParameters, match="1 MiB"):
        site.submit("noop", payload={"blob": "x" * (1024 * 1024)})
    assert site.jobs.count() == 0


def test_payload_not_json_serialisable_is_refused(site, noop):
    with pytest.raises(cronkit.InvalidParameters, match="JSON"):
        site.submit("noop", payload={"when": object()})
    with pytest.raises(cronkit.InvalidParameters, match="JSON object"):
        site.submit("noop", payload=[1, 2])


def test_unknown_type_is_refused(site):
    with pytest.raises(cronkit.UnknownRunner, match="'nope'"):
        site.submit("nope")


@pytest.mark.parametrize("kwargs, field", [
    ({"priority": "high"}, "priority"), ({"delay": -1}, "delay"), ({"delay": "soon"}, "delay"),
    ({"timeout": -5}, "timeout"),
])
def test_bad_submit_options_are_refused_naming_the_field(site, noop, kwargs, field):
    with pytest.raises(cronkit.InvalidParameters) as err:
        site.submit("noop", **kwargs)
    assert field in err.value.errors


def test_naive_run_after_is_refused(site, noop, clock):
    with pytest.raises(cronkit.InvalidParameters, match="aware"):
        site.submit("noop", run_after=clock.now().replace(tzinfo=None))


def test_job_queued_event_fires(site, noop):
    seen = []
    handler = cronkit.subscribe(cronkit.JobQueuedEvent)(lambda e: seen.append(e.job.id))
    try:
        job = site.submit("noop")
    finally:
        cronkit.unsubscribe(cronkit.JobQueuedEvent, handler)
    assert seen == [job.id]


# -- parameter formats ----------------------------------------------------------

PARAMS = {
    "limit": Param("int", required=True, help="max rows"),
    "dry": Param("bool", default=False),
    "mode": Param("select", choices=["fast", "full"]),
    "label": Param("string"),
}


def test_valid_payload_gets_defaults(site):
    _register(site, "export", lambda self: None, PARAMS)
    job = site.submit("export", payload={"limit": 5, "mode": "fast"})
    assert job.payload == {"limit": 5, "mode": "fast", "dry": False}


def test_every_bad_field_is_named_in_one_error(site):
    _register(site, "export", lambda self: None, PARAMS)
    with pytest.raises(cronkit.InvalidParameters) as err:
        site.submit("export", payload={"dry": "yes", "mode": "slow", "label": 3, "extra": 1})
    assert set(err.value.errors) == {"limit", "dry", "mode", "label", "extra"}
    assert err.value.errors["limit"] == "required"
    assert err.value.errors["extra"] == "unknown parameter"
    assert "'slow' is not one of" in err.value.errors["mode"]
    assert site.jobs.count() == 0


def test_int_param_refuses_a_bool(site):
    _register(site, "export", lambda self: None, PARAMS)
    with pytest.raises(cronkit.InvalidParameters, match="limit"):
        site.submit("export", payload={"limit": True})


def test_runner_without_parameters_accepts_any_object(site, noop):
    assert site.submit("noop", payload={"anything": [1, {"b": None}]}).payload["anything"][1] == {"b": None}


def test_param_definitions_are_checked():
    with pytest.raises(cronkit.CronkitError, match="type"):
        Param("float")
    with pytest.raises(cronkit.CronkitError, match="choices"):
        Param("select")


def test_param_coerce_reads_typed_text():
    assert Param("int").coerce(" 7 ") == 7
    assert Param("bool").coerce("yes") is True and Param("bool").coerce("off") is False
    assert Param("int").coerce("seven") == "seven"   # left for validation to refuse
    assert Param("bool").coerce("maybe") == "maybe"
    assert Param("string").coerce("x") == "x"
    assert Param("select", choices=["a"]).describe()["choices"] == ["a"]


def test_available_jobs_lists_names_and_help(site, noop):
    _register(site, "export", lambda self: None, PARAMS)
    jobs = cronkit.available_jobs(site)
    assert jobs["noop"] == "noop help" and jobs["export"] == "export help"


def test_runner_decorator_on_a_function(kit, site):
    calls = []

    @cronkit.runner("fn-job", parameters={"n": Param("int")})
    def fn_job(job):
        """Adds n."""
        calls.append(job.payload["n"])

    assert cronkit.available_jobs(site)["fn-job"] == "Adds n."
    site.submit("fn-job", payload={"n": 3})
    kit.run_pending()
    assert calls == [3]
    fn_job(type("J", (), {"payload": {"n": 4}})())      # still a plain function
    assert calls == [3, 4]
    job = fn_job.submit(site, {"n": 5}, priority=3, delay=0)
    assert (job.type, job.priority, job.payload) == ("fn-job", 3, {"n": 5})
    kit.run_pending()
    assert calls == [3, 4, 5]
    cronkit.unregister_runner("fn-job")


def test_runner_decorator_bare_and_with_options(kit, site):
    @cronkit.runner
    def bare_task(job):
        """Bare."""

    @cronkit.runner()
    def empty_parens(job):
        pass

    @cronkit.runner("backed", retries=2, retry_backoff=1.5)
    def backed(job):
        pass

    try:
        assert {"bare_task", "empty_parens", "backed"} <= set(cronkit.available_jobs(site))
        assert (backed.runner.retries, backed.runner.retry_backoff) == (2, 1.5)
        assert bare_task.submit(site).type == "bare_task"
    finally:
        for name in ("bare_task", "empty_parens", "backed"):
            cronkit.unregister_runner(name)


# -- lifecycle and runner side --------------------------------------------------


def test_success_records_timestamps_pid_worker_and_summary(kit, site, clock):
    import os
    import socket

    def run(self):
        self.job.update(progress=50, text="half")
        return "42 rows"

    _register(site, "work", run)
    job = site.submit("work")
    clock.advance(seconds=5)
    kit.run_pending()
    job.refresh()
    assert job.status == Status.SUCCESS and job.progress == 100
    assert job.message == "42 rows" and job.status_text == "half"
    assert job.started_at == clock.now() and job.finished_at == clock.now()
    assert job.pid == os.getpid() and job.worker == f"{socket.gethostname()}:{os.getpid()}"
    assert job.attempts == 1


def test_exception_fails_the_job_with_type_text_and_traceback(kit, site):
    def run(self):
        raise ValueError("bad row 7")

    _register(site, "boom", run)
    job = site.submit("boom")
    kit.run_pending()
    job.refresh()
    assert job.status == Status.FAILED
    assert job.message.startswith("ValueError: bad row 7")
    assert "Traceback" in job.message and "raise ValueError" in job.message


def test_update_increment_note_finish(kit, site):
    def run(self):
        self.job.update(progress=10)
        self.job.increment_progress(15, text="step")
        self.job.increment_progress()
        self.job.note("read 10 rows")
        self.job.note("row 3 skipped", status="warning")
        assert self.job.progress == 26
        self.job.finish("all done")

    _register(site, "steps", run)
    job = site.submit("steps")
    kit.run_pending()
    job.refresh()
    assert job.status == Status.SUCCESS and job.message == "all done"
    assert job.status_text == "step\nall done"
    assert [(h["status"], h["comment"]) for h in job.history] == [
        ("info", "read 10 rows"), ("warning", "row 3 skipped")]


def test_fail_ends_the_job_failed_with_the_message(kit, site):
    _register(site, "quit", lambda self: self.job.fail("no input file"))
    job = site.submit("quit")
    kit.run_pending()
    job.refresh()
    assert job.status == Status.FAILED and job.message == "no input file"
    assert job.status_text == "no input file"


def test_finish_with_a_status(kit, site):
    _register(site, "giveup", lambda self: self.job.finish("nothing to do", status="canceled"))
    job = site.submit("giveup")
    kit.run_pending()
    assert (job.refresh().status, job.message) == (Status.CANCELED, "nothing to do")
    with pytest.raises(cronkit.CronkitError, match="pending"):
        job.finish(status="pending")


def test_cancel_all_by_status(kit, site, noop):
    jobs = [site.submit("noop") for _ in range(3)]
    kit.store.update_job(jobs[0].id, status="running")
    assert site.jobs.cancel_all("pending") == 2
    assert site.jobs.get(jobs[0].id).status == Status.RUNNING
    assert site.jobs.cancel_all(["running"]) == 1
    assert site.jobs.get(jobs[0].id).canceled
    with pytest.raises(cronkit.InvalidParameters):
        site.jobs.cancel_all("success")


def test_manual_run_runs_a_job_now_whatever_its_state(kit, site, clock):
    runs = []
    _register(site, "manual", lambda self: runs.append(self.job.id))
    job = site.submit("manual", delay=3600)
    assert site.jobs.run(job.id).status == Status.SUCCESS
    assert site.jobs.run(job.id).status == Status.SUCCESS     # again, finished or not
    assert runs == [job.id, job.id]
    assert site.jobs.run(job.id, debug=True).status == Status.SUCCESS
    assert site.jobs.get(job.id).attempts == 2 and len(runs) == 3


def test_progress_is_clamped_and_must_be_a_number(kit, site):
    def run(self):
        self.job.update(progress=250)
        assert self.job.progress == 100
        with pytest.raises(cronkit.CronkitError):
            self.job.update(progress="lots")

    _register(site, "clamp", run)
    job = site.submit("clamp")
    kit.run_pending()
    assert job.refresh().status == Status.SUCCESS


def test_printed_output_lands_in_status_text(kit, site):
    def run(self):
        print("line one")
        print("line two", end="")

    _register(site, "talk", run)
    job = site.submit("talk")
    kit.run_pending()
    assert job.refresh().status_text == "line one\nline two"


def test_two_concurrent_jobs_keep_only_their_own_printed_lines(kit, site):
    barrier = threading.Barrier(2)

    def run(self):
        for i in range(20):
            barrier.wait(timeout=10)       # interleave the two jobs line by line
            print(f"{self.job.payload['tag']} {i}")

    _register(site, "chatty", run)
    a = site.submit("chatty", payload={"tag": "A"})
    b = site.submit("chatty", payload={"tag": "B"})
    worker = kit.worker(concurrency=2).start()
    try:
        for job in (a, b):
            _wait_until(lambda job=job: site.jobs.get(job.id).finished)
    finally:
        worker.stop()
    assert a.refresh().status_text == "".join(f"A {i}\n" for i in range(20))
    assert b.refresh().status_text == "".join(f"B {i}\n" for i in range(20))


def test_job_events_fire_in_order(kit, site):
    seen = []
    handlers = [(cls, cronkit.subscribe(cls)(lambda e, n=cls.__name__: seen.append(n)))
                for cls in (cronkit.JobQueuedEvent, cronkit.JobStartedEvent,
                            cronkit.JobProgressEvent, cronkit.JobFinishedEvent)]
    _register(site, "prog", lambda self: self.job.update(progress=50))
    try:
        site.submit("prog")
        kit.run_pending()
    finally:
        for cls, fn in handlers:
            cronkit.unsubscribe(cls, fn)
    assert seen == ["JobQueuedEvent", "JobStartedEvent", "JobProgressEvent", "JobFinishedEvent"]


def test_a_subscriber_that_raises_never_breaks_the_job(kit, site, noop):
    def bad(event):
        raise RuntimeError("subscriber bug")

    cronkit.subscribe(cronkit.JobStartedEvent)(bad)
    try:
        job = site.submit("noop")
        kit.run_pending()
    finally:
        cronkit.unsubscribe(cronkit.JobStartedEvent, bad)
    assert job.refresh().status == Status.SUCCESS


# -- cancel ---------------------------------------------------------------------


def test_a_canceled_pending_job_never_starts(kit, site):
    ran = []
    _register(site, "never", lambda self: ran.append(1))
    job = site.submit("never")
    assert site.jobs.cancel(job.id).status == Status.CANCELED
    assert kit.run_pending() == [] and ran == []
    assert site.jobs.get(job.id).finished_at is not None


def test_a_running_job_stops_within_one_iteration_of_the_cancel(kit, site):
    seen = {}

    def run(self):
        for i in range(1000):
            if self.job.canceled:
                seen["stopped_at"] = i
                return
            if i == 500:
                self.job.note("about to be canceled")
                self.context.jobs.cancel(self.job.id)
            self.job.update(progress=i // 10)
        seen["stopped_at"] = None

    _register(site, "loop", run)
    job = site.submit("loop")
    kit.run_pending()
    job.refresh()
    assert seen["stopped_at"] == 501
    assert job.status == Status.CANCELED
    assert [h["comment"] for h in job.history] == ["about to be canceled"]


def test_cancel_of_a_finished_job_changes_nothing(kit, site, noop):
    job = site.submit("noop")
    kit.run_pending()
    assert site.jobs.cancel(job.id).status == Status.SUCCESS


def test_unknown_job_ids_raise_no_such_job(site, kit, noop):
    with pytest.raises(cronkit.NoSuchJob):
        site.jobs.get(999)
    with pytest.raises(cronkit.NoSuchJob):
        site.jobs.cancel(999)
    with pytest.raises(cronkit.NoSuchJob):
        site.jobs.get("abc")
    other = kit.site("other")
    job = site.submit("noop")
    with pytest.raises(cronkit.NoSuchJob):
        other.jobs.get(job.id)


def test_remove_deletes_a_job_whatever_its_state(site, noop):
    job = site.submit("noop")
    site.jobs.remove(job.id)
    with pytest.raises(cronkit.NoSuchJob):
        site.jobs.get(job.id)
    with pytest.raises(cronkit.NoSuchJob):
        site.jobs.remove(job.id)


def test_retry_submits_a_failed_job_again(kit, site):
    _register(site, "boom", lambda self: 1 / 0)
    job = site.submit("boom", payload={"k": 1}, priority=3)
    kit.run_pending()
    again = site.jobs.retry(job.id)
    assert again.id != job.id and again.status == Status.PENDING
    assert (again.type, again.payload, again.priority) == ("boom", {"k": 1}, 3)


def test_list_filters_and_orders_newest_first(kit, site, noop):
    _register(site, "boom", lambda self: 1 / 0)
    a = site.submit("noop")
    b = site.submit("boom")
    kit.run_pending()
    c = site.submit("noop")
    assert [j.id for j in site.jobs.list()] == [c.id, b.id, a.id]
    assert [j.id for j in site.jobs.list(status="failed")] == [b.id]
    assert [j.id for j in site.jobs.list(type="noop")] == [c.id, a.id]
    assert [j.id for j in site.jobs.list(limit=1, offset=1)] == [b.id]
    assert site.jobs.count(status=["success", "failed"]) == 2


# -- retries and stale jobs -------------------------------------------------------


def test_a_failing_runner_with_retries_is_retried_with_exponential_backoff(kit, site, clock):
    attempts = []

    def run(self):
        attempts.append(self.job.attempts)
        raise RuntimeError("flaky")

    _register(site, "flaky", run, retries=2, retry_backoff=10)
    job = site.submit("flaky")
    kit.run_pending()
    assert job.refresh().status == Status.PENDING
    assert job.run_after == clock.now() + timedelta(seconds=10)
    clock.advance(seconds=10)
    kit.run_pending()
    assert job.refresh().run_after == clock.now() + timedelta(seconds=20)
    clock.advance(seconds=20)
    kit.run_pending()
    job.refresh()
    assert attempts == [1, 2, 3]
    assert job.status == Status.FAILED and "flaky" in job.message
    assert [h["status"] for h in job.history] == ["retry", "retry"]


def _make_running(kit, site, job, heartbeat, worker="elsewhere:1"):
    kit.store.update_job(job.id, status="running", started_at=heartbeat, heartbeat=heartbeat,
                         worker=worker, attempts=1)


def test_a_job_without_heartbeat_for_error_timeout_is_failed_worker_lost(kit, site, noop, clock):
    job = site.submit("noop")
    _make_running(kit, site, job, clock.now())
    clock.advance(seconds=59)
    assert kit.reap() == []
    clock.advance(seconds=2)
    assert kit.reap() == [job.id]
    job.refresh()
    assert job.status == Status.FAILED and job.message == "worker lost"


def test_a_lost_job_is_retried_when_its_runner_allows(kit, site, clock):
    _register(site, "again", lambda self: None, retries=1, retry_backoff=5)
    job = site.submit("again")
    _make_running(kit, site, job, clock.now())
    clock.advance(seconds=61)
    kit.reap()
    assert job.refresh().status == Status.PENDING
    assert job.run_after == clock.now() + timedelta(seconds=5)


def test_a_job_of_a_dead_local_worker_process_is_reaped_at_once(kit, site, noop, clock):
    import socket
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    job = site.submit("noop")
    _make_running(kit, site, job, clock.now(), worker=f"{socket.gethostname()}:{proc.pid}")
    assert kit.reap() == [job.id]
    assert job.refresh().message == "worker lost"


def test_a_lost_cron_job_is_failed_and_its_cron_rescheduled(kit, site, clock):
    _register(site, "tick", lambda self: None)
    cron = cronkit.Cron(name="tick", periodicity="*/5 * * * *")
    site.crontab.add_cron(cron)
    site.crontab.save()
    clock.advance(minutes=2)
    job = site.jobs.list(cron=cron)[0]
    _make_running(kit, site, job, clock.now())
    clock.advance(minutes=2)
    kit.reap()
    assert job.refresh().status == Status.FAILED
    pending = site.jobs.list(cron=cron, status="pending")
    assert len(pending) == 1 and pending[0].run_after > clock.now()


# -- retention ----------------------------------------------------------------------


def test_cleanup_keeps_successes_backlog_days_and_everything_all_backlog_days(kit, site, clock):
    _register(site, "ok", lambda self: None)
    _register(site, "bad", lambda self: 1 / 0)
    site.submit("ok")
    old_bad = site.submit("bad")
    kit.run_pending()
    clock.advance(days=31)
    recent_ok = site.submit("ok")
    kit.run_pending()
    pending = site.submit("ok", delay=10**8)
    assert kit.cleanup() == 1                      # old success only
    assert {j.id for j in site.jobs.list()} == {old_bad.id, recent_ok.id, pending.id}
    clock.advance(days=30, seconds=1)
    assert kit.cleanup() == 2                      # old failure (61 d), success (30 d 1 s)
    assert [j.id for j in site.jobs.list()] == [pending.id]


def test_cleanup_with_zero_keeps_forever(kit, site, noop, clock):
    site.submit("noop")
    kit.run_pending()
    clock.advance(days=1000)
    assert kit.cleanup(backlog_days=0, all_backlog_days=0) == 0
    assert site.jobs.count() == 1


def test_cleanup_leaves_cron_logs_alone(kit, site, clock):
    _register(site, "tick", lambda self: None)
    cron = cronkit.Cron(name="tick", periodicity="0 * * * *")
    site.crontab.add_cron(cron)
    site.crontab.save()
    clock.advance(hours=1)
    kit.run_pending()
    clock.advance(days=100)
    kit.cleanup()
    assert len(site.crontab.by_uid(cron.uid).logs) == 1


# -- manual runs ------------------------------------------------------------------


def test_debug_run_changes_nothing(kit, site, capfd):
    def run(self):
        print("working")
        self.job.update(progress=40, text="forty")
        self.job.note("noted")

    _register(site, "dbg", run)
    job = site.submit("dbg")
    row = kit.store.get_job(job.id)
    kit.execute(row, debug=True)
    after = site.jobs.get(job.id)
    assert (after.status, after.progress, after.status_text) == (Status.PENDING, 0, "")
    assert after.history == []
    out = capfd.readouterr().out
    assert "working" in out and "forty" in out and "noted" in out


def _wait_until(predicate, timeout=20.0):
    import time
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


# -- results ----------------------------------------------------------------------


@pytest.mark.parametrize("value, message", [
    ({"rows": 3}, '{"rows": 3}'),
    ([1, "two", None], '[1, "two", null]'),
    (42, "42"),
    ("done", "done"),
    (["one", "two"], "one\ntwo"),
    ({"text": "é"}, '{"text": "é"}'),
])
def test_a_json_value_returned_is_the_result_read_back(kit, site, value, message):
    _register(site, "work", lambda self: value)
    job = site.submit("work")
    kit.run_pending()
    done = site.jobs.get(job.id)
    assert done.status == Status.SUCCESS
    assert done.result == (list(value) if isinstance(value, tuple) else value)
    assert done.message == message


@pytest.mark.parametrize("value, why", [
    (object(), "not a storable JSON result"),
    (float("nan"), "not a storable JSON result"),
    ({"k": {1, 2}}, "result['k']"),
    ("x" * (1024 * 1024 + 1), "over the 1 MiB limit"),
])
def test_a_result_that_cannot_be_stored_fails_the_job_naming_why(kit, site, value, why):
    _register(site, "work", lambda self: value)
    job = site.submit("work")
    kit.run_pending()
    done = site.jobs.get(job.id)
    assert done.status == Status.FAILED and done.result is None
    assert done.message.startswith("InvalidResult: ") and why in done.message


def test_no_result_for_none_and_for_a_failure(kit, site):
    _register(site, "nothing", lambda self: None)
    job = site.submit("nothing")
    kit.run_pending()
    assert site.jobs.get(job.id).result is None


# -- retries ----------------------------------------------------------------------


def _failing(errors):
    """A run() raising the next of ``errors`` (None: succeed)."""
    def run(self):
        error = errors.pop(0)
        if error is not None:
            raise error
        return "ok"
    return run


def test_retry_on_retries_only_the_exceptions_it_names(kit, site, clock):
    _register(site, "picky", _failing([ValueError("bad"), None]), retries=3,
              retry_on=(KeyError,), retry_backoff=1)
    job = site.submit("picky")
    kit.run_pending()
    done = site.jobs.get(job.id)
    assert done.status == Status.FAILED and done.attempts == 1      # ValueError: no retry
    _register(site, "picky2", _failing([KeyError("k"), None]), retries=3,
              retry_on=(KeyError, OSError), retry_backoff=1)
    job = site.submit("picky2")
    kit.run_pending()
    assert site.jobs.get(job.id).status == Status.PENDING
    clock.advance(seconds=1)
    kit.run_pending()
    done = site.jobs.get(job.id)
    assert (done.status, done.attempts, done.message) == (Status.SUCCESS, 2, "ok")
    assert [h["status"] for h in done.history].count("retry") == 1


def test_a_runner_raising_retry_runs_again_after_its_delay(kit, site, clock):
    _register(site, "later", _failing([cronkit.Retry("busy", delay=30)] * 4))
    job = site.submit("later")
    kit.run_pending()
    waiting = site.jobs.get(job.id)
    assert waiting.status == Status.PENDING
    assert waiting.run_after == clock.now() + timedelta(seconds=30)
    assert "busy" in waiting.message
    for _ in range(3):                     # retries 0: Celery's default, 3 asked retries
        clock.advance(seconds=30)
        kit.run_pending()
    done = site.jobs.get(job.id)
    assert done.status == Status.FAILED and done.attempts == 4
    assert done.message.startswith("Retry: busy")
    assert [h["status"] for h in done.history].count("retry") == 3


def test_a_cron_firing_is_retried_as_the_same_firing(kit, site, clock):
    runs = []

    def run(self):
        runs.append(self.job.fire_at)
        if len(runs) == 1:
            raise OSError("disk busy")
    _register(site, "flaky", run, retries=2, retry_backoff=5)
    crontab = site.crontab
    cron = crontab.add_cron(cronkit.Cron(name="flaky", periodicity="0 * * * *", uid="h"))
    crontab.save()
    first = site.jobs.list(cron=cron, status=Status.PENDING)[0]
    clock.set(first.run_after)
    kit.run_pending()
    # retried: still the one firing, pending again; no other firing of the cron queued
    pending = site.jobs.list(cron=cron, status=Status.PENDING)
    assert [j.id for j in pending] == [first.id]
    clock.advance(seconds=5)
    kit.run_pending()
    assert runs == [first.fire_at, first.fire_at]
    done = site.jobs.get(first.id)
    assert (done.status, done.attempts) == (Status.SUCCESS, 2)
    log = site.crontab.by_uid("h").logs[0]
    assert log.status == cronkit.LogStatus.OK and "after 2 attempts" in log.messages
    nxt = site.jobs.list(cron=cron, status=Status.PENDING)
    assert [j.fire_at for j in nxt] == [first.fire_at + timedelta(hours=1)]


# -- continuations and unique ------------------------------------------------------


def _order(site):
    ran = []
    _register(site, "step", lambda self: ran.append(self.job.payload["n"]))
    _register(site, "bad", lambda self: 1 / 0)
    return ran


def test_a_continuation_runs_once_its_jobs_have_succeeded(kit, site):
    ran = _order(site)
    a = site.submit("step", {"n": "a"})
    b = site.submit("step", {"n": "b"})
    c = site.submit("step", {"n": "c"}, after=[a, b.id])
    waiting = site.jobs.get(c.id)
    assert waiting.status == Status.PENDING and waiting.after_ids == [a.id, b.id]
    assert "waiting for job" in waiting.status_text
    assert [j.id for j in site.jobs.dependents(a.id)] == [c.id]
    kit.run_pending()
    assert ran[-1] == "c" and sorted(ran[:2]) == ["a", "b"]
    assert site.jobs.get(c.id).status == Status.SUCCESS


def test_a_continuation_of_a_failed_job_ends_canceled_naming_it_and_so_do_its_own(kit, site):
    ran = _order(site)
    a = site.submit("bad")
    b = site.submit("step", {"n": "b"}, after=a)
    c = site.submit("step", {"n": "c"}, after=b)
    kit.run_pending()
    assert ran == []
    b2, c2 = site.jobs.get(b.id), site.jobs.get(c.id)
    assert b2.status == Status.CANCELED and f"job {a.id}" in b2.message and "failed" in b2.message
    assert c2.status == Status.CANCELED and f"job {b.id}" in c2.message


def test_a_continuation_of_jobs_already_ended_is_decided_at_once(kit, site):
    ran = _order(site)
    ok = site.submit("step", {"n": "ok"})
    bad = site.submit("bad")
    kit.run_pending()
    now_due = site.submit("step", {"n": "next"}, after=ok)
    assert site.jobs.get(now_due.id).run_after == kit.clock.now()
    never = site.submit("step", {"n": "never"}, after=[ok, bad])
    assert site.jobs.get(never.id).status == Status.CANCELED
    kit.run_pending()
    assert ran == ["ok", "next"]


def test_a_continuation_another_process_missed_is_released_by_the_reaper(kit, site):
    ran = _order(site)
    a = site.submit("step", {"n": "a"})
    b = site.submit("step", {"n": "b"}, after=a)
    kit.lifecycle._waiting_seen = (float("inf"), False)    # as if it could not know
    kit.lifecycle.execute(kit.lifecycle.claim(kit.clock.now(), 1)[0])
    assert ran == ["a"] and site.jobs.get(b.id).status == Status.PENDING
    kit.reap()                                             # the sweep of every worker
    assert site.jobs.get(b.id).run_after == kit.clock.now()
    kit.run_pending()
    assert ran == ["a", "b"]


def test_after_is_checked(kit, site):
    _order(site)
    a = site.submit("step", {"n": "a"})
    with pytest.raises(cronkit.InvalidParameters, match="no job 999"):
        site.submit("step", {"n": "b"}, after=999)
    with pytest.raises(cronkit.InvalidParameters, match="expected|must name"):
        site.submit("step", {"n": "b"}, after="one")
    with pytest.raises(cronkit.InvalidParameters, match="no delay"):
        site.submit("step", {"n": "b"}, after=a, delay=10)


def test_unique_merges_into_a_running_twin_and_pending_only_when_asked(kit, site):
    started = threading.Event()
    release = threading.Event()

    def run(self):
        started.set()
        release.wait(30)
    _register(site, "long", run)
    first = site.submit("long", {"k": 1}, unique=True)
    worker = kit.worker(concurrency=1, poll_interval=0.01).start()
    try:
        assert started.wait(30)
        assert site.submit("long", {"k": 1}, unique=True).id == first.id      # running twin
        # A new one; due later, so that the worker's prefetch (it claims one job beyond
        # its busy thread) cannot take it before the next line looks.
        other = site.submit("long", {"k": 1}, unique="pending", delay=3600)
        assert other.id != first.id
        assert site.submit("long", {"k": 1}, unique="pending").id == other.id
        with pytest.raises(cronkit.InvalidParameters, match="unique"):
            site.submit("long", {"k": 1}, unique="always")
    finally:
        release.set()
        worker.stop()


# -- name clashes -------------------------------------------------------------------


def test_a_second_runner_under_a_taken_name_is_a_warning_or_refused(site, caplog):
    first = _register(site, "clash", lambda self: "first")
    second = type("Second", (cronkit.Runner,), {"run": lambda self: "second"})
    with caplog.at_level("WARNING", logger="cronkit.runner"):
        site.register_runner(first, name="clash")             # the same: nothing said
        assert not caplog.records
        site.register_runner(second, name="clash")
    assert "clash" in caplog.text and "Second" in caplog.text and "clash" in caplog.text
    third = type("Third", (cronkit.Runner,), {"run": lambda self: "third"})
    with pytest.raises(cronkit.CronkitError, match="taken by .*Second"):
        cronkit.register_runner(third, name="clash", registry=site.registry, replace=False)
    from cronkit.runner import runner_factory
    assert runner_factory(site, "clash") is second


# -- a cron's environ and its runner's parameter format ---------------------------------


def test_a_cron_environ_is_checked_against_its_runners_format_when_saved(kit, site):
    seen = []
    _register(site, "export", lambda self: seen.append(dict(self.environ)),
              {"rows": Param("int", required=True), "fmt": Param("string", default="csv")})
    crontab = site.crontab
    crontab.add_cron(cronkit.Cron(name="export", periodicity="* * * * *", uid="bad"))
    with pytest.raises(cronkit.InvalidCron, match="cron 'bad' for runner 'export': rows"):
        crontab.save()
    assert kit.store.load_crontab(site.name)["crons"] == []          # nothing half-saved
    del crontab.crons["bad"]
    crontab.add_cron(cronkit.Cron(name="export", periodicity="* * * * *", uid="ok",
                                  environ={"rows": 3}))
    crontab.save()
    kit.clock.advance(minutes=1)
    kit.run_pending()
    assert seen == [{"rows": 3, "fmt": "csv"}]           # the format's default applied


def test_a_firing_of_a_cron_saved_before_its_runner_fails_naming_the_field(kit, site):
    crontab = site.crontab
    crontab.add_cron(cronkit.Cron(name="later", periodicity="* * * * *", uid="early"))
    crontab.save()
    _register(site, "later", lambda self: None, {"rows": Param("int", required=True)})
    kit.clock.advance(minutes=1)
    kit.run_pending()
    log = site.crontab.by_uid("early").logs[0]
    assert log.status == cronkit.LogStatus.FAILURE
    assert "InvalidCron" in log.messages[0] and "rows" in log.messages[0]


# -- smaller defects ------------------------------------------------------------------


def test_a_cooperatively_canceled_job_keeps_the_progress_it_reached(kit, site):
    def run(self):
        self.job.update(progress=30)
        kit.store.cancel_job(self.job.id, kit.clock.now())   # asked while it runs
        return None                                           # it returns anyway
    _register(site, "stopped", run)
    job = site.submit("stopped")
    kit.run_pending()
    done = site.jobs.get(job.id)
    assert (done.status, done.progress) == (Status.CANCELED, 30)


def test_printed_output_starts_a_line_after_a_status_text(kit, site):
    def run(self):
        self.job.update(text="half way")
        print("printed")
    _register(site, "talk", run)
    job = site.submit("talk")
    kit.run_pending()
    assert site.jobs.get(job.id).status_text == "half way\nprinted\n"
