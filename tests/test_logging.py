"""A log line per job event (cronkit.jobs, cronkit.crons), JSON lines through
python-json-logger (cronkit.logs), and ``--log-format json`` of the commands that
serve, run as real processes."""

from __future__ import annotations

import io
import json
import logging
import signal
import socket
import subprocess
import sys

import pytest

import cronkit
from cronkit import Status, logs
from cronkit.exceptions import CronkitError
from tests.children import child_env
from tests.helpers import ROOT, Boom, FailsOnce, finished, wait_for


class Quarter(cronkit.Runner):
    """Takes a quarter of a second of the kit's (fake) clock."""

    def run(self):
        self.job.site.kit.clock.advance(seconds=0.25)
        return "done"


@pytest.fixture
def site(kit):
    site = kit.site("plone")
    for name, factory in (("export", Quarter), ("boom", Boom), ("fails-once", FailsOnce)):
        site.register_runner(factory, name=name)
    return site


class Lines:
    """The records of cronkit's loggers, formatted by ``format``, while a test runs."""

    def __init__(self, format: str, level: int = logging.INFO):
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logs.formatter(format))
        self.logger = logging.getLogger("cronkit")
        self.level = level

    def __enter__(self) -> Lines:
        self.previous = self.logger.level
        self.logger.setLevel(self.level)
        self.logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.previous)

    def text(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def json(self, logger: str | None = None) -> list[dict]:
        found = [json.loads(line) for line in self.text()]
        return [r for r in found if logger is None or r["logger"] == logger]


@pytest.fixture
def json_lines():
    with Lines("json") as lines:
        yield lines


@pytest.fixture
def text_lines():
    with Lines("text") as lines:
        yield lines


def events(lines, job_id):
    return [r["event"] for r in lines.json("cronkit.jobs") if r.get("job_id") == job_id]


# -- one line per job event ---------------------------------------------------------------

def test_each_job_event_is_one_json_line_with_the_job_fields(kit, site, json_lines):
    job = site.submit("export")
    kit.run_pending()
    assert site.jobs.get(job.id).status == Status.SUCCESS
    records = [r for r in json_lines.json("cronkit.jobs") if r.get("job_id") == job.id]
    assert [r["event"] for r in records] == ["queued", "started", "finished"]
    for record in records:
        assert {"timestamp", "level", "logger", "message"} <= record.keys()
        assert record["level"] == "INFO"
        assert (record["site"], record["job_type"], record["cron_uid"]) \
            == ("plone", "export", None)
    end = records[-1]
    assert (end["status"], end["duration"], end["attempt"]) == ("SUCCESS", 0.25, 1)
    assert end["message"] == f"job {job.id} (export, site plone) finished SUCCESS in 0.25 s"


def test_text_lines_name_the_job_readably(kit, site, text_lines):
    job = site.submit("export")
    kit.run_pending()
    lines = text_lines.text()
    assert any(line.endswith(f"INFO cronkit.jobs: job {job.id} (export, site plone) "
                             "finished SUCCESS in 0.25 s") for line in lines), lines
    assert logs.TEXT_FORMAT == "%(asctime)s %(levelname)s %(name)s: %(message)s"


def test_a_failure_is_logged_with_its_message(kit, site, json_lines):
    job = site.submit("boom")
    kit.run_pending()
    [end] = [r for r in json_lines.json() if r.get("event") == "finished"]
    assert end["status"] == "FAILED" and end["job_id"] == job.id
    assert "ValueError: boom" in end["message"] and "ValueError: boom" in end["job_message"]


def test_a_retry_is_logged_with_its_reason_and_when_it_is_due(kit, site, json_lines, clock):
    job = site.submit("fails-once")
    kit.run_pending()
    clock.advance(seconds=2)
    kit.run_pending()
    assert events(json_lines, job.id) == ["queued", "started", "retried", "started",
                                          "finished"]
    [retried] = [r for r in json_lines.json() if r.get("event") == "retried"]
    assert "first attempt fails" in retried["reason"] and retried["attempt"] == 1
    assert retried["run_after"] == site.jobs.get(job.id).run_after.isoformat()
    assert "retry in 1 s" in retried["message"]
    second_start = [r for r in json_lines.json() if r.get("event") == "started"][1]
    assert second_start["attempt"] == 2 and "(attempt 2)" in second_start["message"]


def test_a_delayed_job_says_when_it_is_due(kit, site, json_lines):
    job = site.submit("export", delay=60)
    [queued] = json_lines.json("cronkit.jobs")
    assert queued["run_after"] == job.run_after.isoformat()
    assert queued["message"].endswith(f"queued, due {job.run_after.isoformat()}")


def test_a_continuation_says_what_it_waits_for(kit, site, json_lines):
    first = site.submit("export")
    then = site.submit("export", after=first)
    [queued] = [r for r in json_lines.json() if r.get("job_id") == then.id]
    assert queued["message"].endswith(f"queued to run after job {first.id}")
    assert queued["run_after"] is None


def test_a_unique_submission_is_logged_once(kit, site, json_lines):
    job = site.submit("export", {"n": 1}, unique=True)
    site.submit("export", {"n": 1}, unique=True)     # merged: nothing queued
    assert events(json_lines, job.id) == ["queued"]


def test_a_canceled_pending_job_is_logged_without_a_duration(kit, site, json_lines):
    job = site.submit("export")
    site.jobs.cancel(job.id)
    [end] = [r for r in json_lines.json() if r.get("event") == "finished"]
    assert end["status"] == "CANCELED" and end["duration"] is None
    assert end["message"] == f"job {job.id} (export, site plone) finished CANCELED"


def test_a_batch_is_one_line_at_info_and_a_line_per_job_at_debug(kit, site):
    with Lines("json") as lines:
        site.submit_many([{"type": "export"}] * 1000)
    [batch] = lines.json()
    assert batch["message"] == "queued 1000 jobs (site plone)"
    assert (batch["count"], batch["site"], batch["level"]) == (1000, "plone", "INFO")
    with Lines("json", logging.DEBUG) as lines:
        jobs = site.submit_many([{"type": "export"}] * 3)
    batch, *each = lines.json("cronkit.jobs")
    assert batch["count"] == 3
    assert [(r["level"], r["job_id"]) for r in each] == [("DEBUG", j.id) for j in jobs]


def test_a_crontab_sync_is_one_line_per_firing_queued(kit, site, json_lines):
    site.crontab.add_cron(cronkit.Cron(name="export", periodicity="*/5 * * * *"))
    site.crontab.add_cron(cronkit.Cron(name="boom", periodicity="*/5 * * * *"))
    site.crontab.save()
    queued = [r for r in json_lines.json() if r.get("event") == "queued"]
    assert [r.get("count") for r in queued] == [2]


def test_a_cron_firing_is_logged_with_its_log_status(kit, site, json_lines, clock):
    cron = cronkit.Cron(name="export", periodicity="*/5 * * * *")
    site.crontab.add_cron(cron)
    site.crontab.save()
    clock.advance(minutes=5)
    kit.run_pending()
    [fired] = json_lines.json("cronkit.crons")
    assert (fired["status"], fired["cron_uid"], fired["site"], fired["job_type"]) \
        == ("WARN", cron.uid, "plone", "export")      # its runner said something: WARN
    assert fired["message"] == f"cron 'export' ({cron.uid}, site plone) logged WARN: done"
    assert fired["messages"] == ["done"]
    ends = [r for r in json_lines.json("cronkit.jobs") if r["event"] == "finished"]
    assert [(r["cron_uid"], r["status"]) for r in ends] == [(cron.uid, "SUCCESS")]


def test_a_firing_canceled_before_it_ran_is_logged_notrun(kit, site, json_lines):
    cron = cronkit.Cron(name="export", periodicity="*/5 * * * *")
    site.crontab.add_cron(cron)
    site.crontab.save()
    [pending] = site.jobs.list(cron=cron, status="pending")
    site.jobs.cancel(pending.id)
    [fired] = json_lines.json("cronkit.crons")
    assert fired["status"] == "NOTRUN" and fired["job_id"] == pending.id


def test_library_users_get_the_lines_from_the_logging_module_alone(kit, site, caplog):
    with caplog.at_level(logging.INFO):
        job = site.submit("export")
        kit.run_pending()
    mine = [r for r in caplog.records if r.name == "cronkit.jobs"]
    assert [r.event for r in mine] == ["queued", "started", "finished"]
    assert {(r.site, r.job_id, r.job_type) for r in mine} == {("plone", job.id, "export")}


def test_nothing_is_logged_below_the_loggers_level(kit, site):
    with Lines("json", logging.WARNING) as lines:
        site.submit("export")
        kit.run_pending()
    assert lines.text() == []


# -- the formatter and the setup ----------------------------------------------------------

def test_an_unknown_format_or_level_is_named():
    with pytest.raises(CronkitError, match="unknown log format 'xml'"):
        logs.formatter("xml")
    with pytest.raises(CronkitError, match="unknown log level 'loud'"):
        logs.setup("loud")


def test_json_logs_without_their_library_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pythonjsonlogger.json", None)
    with pytest.raises(CronkitError, match=r"pip install 'cronkit\[ops\]'"):
        logs.formatter("json")


def bare_root(monkeypatch):
    """The root logger with no handler (pytest's own put back after the test): called
    in the test, pytest adds its handlers to the root when the test's call starts."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(logs, "_installed", None)
    return root


def test_setup_configures_a_bare_process_once_and_again(monkeypatch):
    root = bare_root(monkeypatch)
    first, second = io.StringIO(), io.StringIO()
    assert logs.setup("debug", "text", stream=first) and logs.configured()
    assert logs.setup("warning", "json", stream=second)    # its own handler replaced
    assert len(root.handlers) == 1 and root.level == logging.WARNING
    logging.getLogger("cronkit.x").warning("hello")
    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["message"] == "hello"


def test_setup_leaves_a_configured_process_alone(monkeypatch):
    monkeypatch.setattr(logs, "_installed", None)
    assert logging.getLogger().handlers      # pytest's
    assert not logs.setup("info", "json", stream=io.StringIO())
    assert not logs.configured()


def test_the_dashboard_lets_uvicorn_log_through_the_setup(monkeypatch, kit):
    from cronkit.web import make_server
    bare_root(monkeypatch)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)    # as they were, after the test
        monkeypatch.setattr(logger, "handlers", list(logger.handlers))
        monkeypatch.setattr(logger, "propagate", logger.propagate)
    assert make_server(kit).config.log_config is not None    # uvicorn's own, by default
    stream = io.StringIO()
    logs.setup("info", "json", stream=stream)
    server = make_server(kit)
    assert server.config.log_config is None
    logging.getLogger("uvicorn.error").warning("port taken", extra={"color_message": "\x1b["})
    [line] = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert (line["logger"], line["message"]) == ("uvicorn.error", "port taken")
    assert "color_message" not in line


# -- the commands, as real processes ------------------------------------------------------

def _command(*argv):
    return [sys.executable, "-m", "cronkit", *argv]


def test_worker_log_format_json_writes_only_json_lines(db_url, kit):
    site = kit.site("plone")
    proc = subprocess.Popen(
        _command("--store", db_url, "--import", "tests.contracts.runners", "worker",
                 "--log-format", "json", "--poll", "0.05", "--concurrency", "1"),
        env=child_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    try:
        from tests.contracts.runner_classes import register_globally
        register_globally()
        ok = site.submit("noop")
        wait_for(lambda: finished(site, ok.id), what="the worker to run the job")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    lines = err.splitlines()
    assert lines, "the worker wrote nothing"
    records = [json.loads(line) for line in lines]     # every line is JSON
    mine = [r for r in records if r.get("job_id") == ok.id]
    assert [r["event"] for r in mine] == ["started", "finished"]
    assert mine[-1]["status"] == "SUCCESS" and mine[-1]["logger"] == "cronkit.jobs"
    assert any("cronkit worker on" in r["message"] for r in records)   # its note, as JSON


def test_web_log_format_json_writes_uvicorn_s_errors_as_json(db_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            _command("--store", db_url, "web", "--port", str(port), "--log-format", "json"),
            env=child_env(), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    *logged, error = proc.stderr.splitlines()
    records = [json.loads(line) for line in logged]
    assert any(r["logger"] == "uvicorn.error" and r["level"] == "ERROR" for r in records), \
        proc.stderr
    assert error.startswith("cronkit: error: the dashboard could not start")


def test_text_is_still_the_default_format(db_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(_command("--store", db_url, "web", "--port", str(port)),
                              env=child_env(), cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
    assert proc.returncode == 2
    assert not proc.stderr.lstrip().startswith("{")
    assert "ERROR" in proc.stderr
