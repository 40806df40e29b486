"""The ``cronkit`` command: in-process through ``cronkit.cli.main`` on a real SQLite file,
and a few real processes (exit codes, one-line errors, a worker stopped by SIGTERM)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import types
import uuid
from datetime import timedelta

import pytest

import cronkit
from cronkit import cli
from cronkit.worker import Worker
from tests.children import child_env, script

RUNNERS = '''
import time
import cronkit


@cronkit.runner("hello")
def hello(job):
    """Say hello.

    Prints and reports progress."""
    print("hello", job.payload)
    for i in range(4):
        job.update(progress=25 * (i + 1), text=f"step {i}")
        job.note(f"did step {i}")
        time.sleep(job.payload.get("pause", 0) if isinstance(job.payload, dict) else 0)


@cronkit.runner("boom")
def boom(job):
    raise ValueError("it broke")


@cronkit.runner("flaky", retries=1)
def flaky(job):
    raise ValueError("not yet")


@cronkit.runner("warn")
def warn(job):
    return ["careful", "very careful"]


class Export(cronkit.Runner):
    """Export products."""

    parameters = {"limit": cronkit.Param("int", required=True, help="max rows"),
                  "fmt": cronkit.Param("select", choices=["csv", "json"], default="csv"),
                  "dry": cronkit.Param("bool")}

    def run(self):
        return f"exported {self.job.payload['limit']}"


class Silent(cronkit.Runner):
    def run(self):
        pass


cronkit.register_runner(Export, name="export")
cronkit.register_runner(Silent, name="silent")
'''


@pytest.fixture
def runners(tmp_path, monkeypatch):
    """A module registering test runners, importable from the current directory (tmp_path)
    under a name of its own (each test imports it afresh)."""
    name = f"cli_runners_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(RUNNERS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("CRONKIT_STORE", raising=False)
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
def run(db_url, runners, capsys):
    """run(*argv) -> (exit code, stdout, stderr), with --store and --import given."""

    def run(*argv: str, imports: bool = True):
        args = ["--store", db_url] + (["--import", runners] if imports else []) + list(argv)
        code = cli.main(args)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def kit(db_url):
    """A kit of the test's own on the same SQLite file the commands use."""
    kit = cronkit.Cronkit(store=db_url)
    yield kit
    kit.close()


def add(run, *argv: str) -> str:
    code, out, err = run("crons", "add", *argv)
    assert code == 0, err
    return out.strip()


def submit(run, *argv: str) -> int:
    code, out, err = run("jobs", "submit", *argv)
    assert code == 0, err
    return int(out)


def one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cronkit: error: ")
    assert "Traceback" not in err
    return lines[0]


# -- options -----------------------------------------------------------------------


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    for command in ("crons", "crontab", "worker", "run", "web", "jobs", "types", "profile",
                    "cleanup", "--store", "--site", "--import"):
        assert command in out


def test_global_options_work_before_and_after_the_command(run, db_url, runners, kit):
    add(run, "hello", "@hourly", "--site", "after")
    assert cli.main(["--site", "before", "crons", "add", "hello", "@daily",
                     "--store", db_url, "--import", runners]) == 0
    assert cli.main(["crons", "--site", "middle", "add", "hello", "@weekly",
                     "--store", db_url]) == 0
    assert [c.periodicity for c in kit.site("after").crontab.crons.values()] == ["@hourly"]
    assert [c.periodicity for c in kit.site("before").crontab.crons.values()] == ["@daily"]
    assert [c.periodicity for c in kit.site("middle").crontab.crons.values()] == ["@weekly"]
    assert not kit.site("default").crontab.crons


def test_the_innermost_global_option_wins(run, kit):
    code, _, _ = run("--site", "outer", "crons", "add", "hello", "@hourly", "--site", "inner")
    assert code == 0
    assert kit.site("inner").crontab.crons and not kit.site("outer").crontab.crons


def test_imports_are_merged_from_every_level(run, tmp_path):
    (tmp_path / "cli_extra_runner.py").write_text(
        "import cronkit\n@cronkit.runner('extra')\ndef extra(job):\n    'Extra.'\n")
    try:
        code, out, _ = run("types", "--import", "cli_extra_runner")
    finally:
        sys.modules.pop("cli_extra_runner", None)
    assert code == 0
    assert "extra" in out and "hello" in out


def test_store_defaults_to_cronkit_store_env(runners, tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    monkeypatch.setenv("CRONKIT_STORE", url)
    assert cli.main(["--import", runners, "crons", "add", "hello", "@hourly"]) == 0
    assert (tmp_path / "from-env.db").exists()
    assert not (tmp_path / "cronkit.db").exists()


def test_version(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"cronkit {cronkit.__version__}"


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize("argv, words", [
    (["crons", "add", "hello", "bad"], "invalid periodicity 'bad'"),
    (["crons", "add", "hello", "* * * * *", "--environ", "{bad"], "invalid environ"),
    (["crons", "add", "hello", "* * * * *", "--environ", "[1]"], "expected a JSON object"),
    (["crons", "add", "hello", "* * * * *", "--logs-limit", "30"], "invalid logs_limit 30"),
    (["crons", "add", "hello", "* * * * *", "--timezone", "Mars/Base"], "unknown timezone"),
    (["crons", "add", "hello", "* * * * *", "--misfire", "never"], "argument --misfire"),
    (["crons", "add", "hello", "* * * * *", "--misfire-grace", "-1"], "expected a number >= 0"),
    (["crons", "add", "hello", "* * * * *", "--misfire-grace", "x"], "number of seconds"),
    (["crons", "edit", "nope", "--name", "x"], "no cron with uid 'nope'"),
    (["crons", "remove", "nope"], "no cron with uid 'nope'"),
    (["crons", "list", "--bogus"], "unrecognized arguments: --bogus"),
    (["crons"], "required: ACTION"),
    ([], "required: COMMAND"),
    (["jobs", "status", "999"], "no job with id 999"),
    (["jobs", "status", "x"], "invalid int value"),
    (["jobs", "submit", "nosuch"], "no runner named 'nosuch'"),
    (["jobs", "submit", "export", "-p", "limit=x"], "limit: expected an integer"),
    (["jobs", "submit", "export", "-p", "limit=1", "-p", "extra=1"], "extra: unknown parameter"),
    (["jobs", "submit", "hello", "-p", "novalue"], "expected NAME=VALUE"),
    (["jobs", "submit", "hello", "--payload", "{x"], "invalid --payload: invalid JSON"),
    (["jobs", "submit", "hello", "--payload", "[1]"], "expected a JSON object"),
    (["jobs", "list", "--status", "done"], "argument --status"),
    (["worker", "--concurrency", "0"], "expected an integer >= 1"),
    (["worker", "--concurrency", "x"], "expected an integer, got 'x'"),
    (["--import", "no_such_module_here", "types"], "cannot import module 'no_such_module_here'"),
])
def test_a_user_mistake_is_one_line_and_exit_code_2(run, words, argv):
    code, out, err = run(*argv)
    assert code == 2
    assert words in one_error(err)


def test_a_bad_store_url_is_one_line(runners, capsys):
    assert cli.main(["--store", "nosuch://x", "crons", "list"]) == 2
    assert "unknown store scheme 'nosuch'" in one_error(capsys.readouterr().err)


def test_a_broken_import_is_one_line(run, tmp_path):
    (tmp_path / "cli_broken_mod.py").write_text("raise RuntimeError('half written')\n")
    try:
        code, _, err = run("--import", "cli_broken_mod", "types")
    finally:
        sys.modules.pop("cli_broken_mod", None)
    assert code == 2
    assert "importing module 'cli_broken_mod' (--import) failed: RuntimeError: half written" \
        in one_error(err)


def test_ctrl_c_exits_130(run, monkeypatch):
    def interrupted(ctx):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "cmd_types", interrupted)
    assert run("types")[0] == 130


def test_a_closed_pipe_ends_quietly(run, monkeypatch, tmp_path):
    def closed(ctx):
        raise BrokenPipeError
    monkeypatch.setattr(cli, "cmd_types", closed)
    assert run("types")[0] == 1
    with open(tmp_path / "out.txt", "w") as stream:   # a real file descriptor
        cli._silence(stream)
        stream.write("to /dev/null")
    assert (tmp_path / "out.txt").read_text() == ""


# -- crons -------------------------------------------------------------------------


def test_crons_add_prints_the_uid_and_list_shows_the_cron(run, kit):
    uid = add(run, "hello", "*/5 * * * *", "--uid", "greet", "--environ", '{"who": "you"}',
              "--timezone", "Europe/Paris", "--logs-limit", "7", "--user", "admin",
              "--misfire", "all", "--misfire-grace", "30")
    assert uid == "greet"
    cron = kit.site().crontab.by_uid("greet")
    assert (cron.name, cron.periodicity, cron.environ, cron.timezone, cron.logs_limit, cron.user,
            cron.misfire, cron.misfire_grace, cron.activated) == (
        "hello", "*/5 * * * *", {"who": "you"}, "Europe/Paris", 7, "admin", "all", 30, True)
    assert kit.site().jobs.is_job_pending(cron)
    code, out, _ = run("crons", "list")
    assert code == 0
    assert "site 'default': crontab ON, 1 cron(s)" in out
    header, row = out.splitlines()[1:3]
    assert header.split() == ["UID", "NAME", "PERIODICITY", "ACTIVATED", "NEXT", "LAST"]
    assert row.startswith("greet") and "*/5 * * * * (Europe/Paris)" in row and " ON " in row
    assert row.rstrip().endswith("-")         # never ran
    assert "CET" in row or "CEST" in row      # next, in the cron's time zone


def test_crons_add_disabled(run, kit):
    uid = add(run, "hello", "@hourly", "--disabled")
    assert kit.site().crontab.by_uid(uid).activated is False
    assert " OFF " in run("crons", "list")[1]


def test_crons_list_of_an_empty_crontab(run):
    assert run("crons", "list") == (0, "site 'default': crontab ON, 0 cron(s)\n", "")


def test_crons_list_json(run):
    uid = add(run, "hello", "@hourly")
    data = json.loads(run("crons", "list", "--json")[1])
    assert data["activated"] is True
    assert [c["uid"] for c in data["crons"]] == [uid]


def test_crons_add_warns_of_an_unknown_runner(run):
    code, out, err = run("crons", "add", "nobody", "@hourly")
    assert code == 0 and out.strip()
    assert "warning: no runner named 'nobody'" in err


def test_crons_add_refuses_a_uid_in_use(run):
    add(run, "hello", "@hourly", "--uid", "same")
    code, _, err = run("crons", "add", "hello", "@daily", "--uid", "same")
    assert code == 2
    assert "a cron with uid 'same' already exists" in one_error(err)


def test_crons_edit_changes_only_what_is_given(run, kit):
    uid = add(run, "hello", "@hourly", "--user", "bob", "--environ", '{"a": 1}')
    code, out, _ = run("crons", "edit", uid, "--name", "warn", "--periodicity", "@daily",
                       "--user", "", "--logs-limit", "3", "--disabled")
    assert code == 0
    assert out.strip() == f"cron {uid} edited: activated, logs_limit, name, periodicity, user"
    cron = kit.site().crontab.by_uid(uid)
    assert (cron.name, cron.periodicity, cron.user, cron.logs_limit, cron.activated,
            cron.environ) == ("warn", "@daily", None, 3, False, {"a": 1})
    assert not kit.site().jobs.is_job_present(cron)
    run("crons", "edit", uid, "--enabled")
    assert kit.site().crontab.by_uid(uid).activated is True


def test_crons_edit_with_nothing_to_change_says_so(run):
    uid = add(run, "hello", "@hourly")
    code, _, err = run("crons", "edit", uid)
    assert code == 2
    assert "nothing to change" in one_error(err)


def test_a_cron_is_found_by_a_unique_uid_prefix(run, kit):
    add(run, "hello", "@hourly", "--uid", "abc1")
    add(run, "hello", "@hourly", "--uid", "abd2")
    assert run("crons", "disable", "abd")[0] == 0
    assert kit.site().crontab.by_uid("abd2").activated is False
    assert kit.site().crontab.by_uid("abc1").activated is True
    code, _, err = run("crons", "disable", "ab")
    assert code == 2
    assert "uid prefix 'ab' matches 2 crons" in one_error(err)


def test_crons_enable_disable_remove(run, kit):
    uid = add(run, "hello", "@hourly")
    site = kit.site()
    assert run("crons", "disable", uid)[1].strip() == f"cron {uid} (hello) disabled"
    assert not site.jobs.is_job_present(uid)
    assert run("crons", "enable", uid)[1].strip() == f"cron {uid} (hello) enabled"
    assert site.jobs.is_job_pending(uid)
    assert run("crons", "remove", uid)[1].strip() == f"cron {uid} (hello) removed"
    assert not site.crontab.crons
    assert not site.jobs.is_job_present(uid)


def test_crontab_disable_and_enable(run, kit):
    uid = add(run, "hello", "@hourly")
    site = kit.site()
    assert run("crontab", "disable")[1].strip() == "crontab of site 'default' disabled"
    assert site.crontab.activated is False and not site.jobs.is_job_present(uid)
    assert "crontab OFF" in run("crons", "list")[1]
    assert run("crontab", "enable")[1].strip() == "crontab of site 'default' enabled"
    assert site.crontab.activated is True and site.jobs.is_job_pending(uid)


def test_crons_run_queues_a_firing_due_now(run, kit):
    uid = add(run, "hello", "@yearly")
    code, out, _ = run("crons", "run", uid)
    assert code == 0 and "queued to run now as job" in out
    [job] = kit.site().jobs.list(cron=uid, status="pending")
    assert (job.run_after - kit.clock.now()).total_seconds() < 60


def test_crons_run_now_runs_it_here_and_shows_the_log(run, kit, monkeypatch):
    monkeypatch.setattr(cli, "WATCH_INTERVAL", 0.01)
    uid = add(run, "hello", "@yearly", "--environ", '{"pause": 0.05}')
    code, out, err = run("crons", "run", uid, "--now")
    assert code == 0
    assert out.strip() == f"cron {uid} (hello): OK"
    assert "running cron" in err and "100%" in err
    cron = kit.site().crontab.by_uid(uid)
    assert cron.last.status == cronkit.LogStatus.OK
    assert kit.site().jobs.is_job_pending(cron)     # rescheduled


def test_crons_run_now_reports_warnings_and_failures(run):
    uid = add(run, "warn", "@yearly")
    code, out, _ = run("crons", "run", uid, "--now")
    assert code == 0
    assert out.splitlines() == [f"cron {uid} (warn): WARN", "    careful", "    very careful"]
    uid = add(run, "boom", "@yearly")
    code, out, _ = run("crons", "run", uid, "--now")
    assert code == 1
    assert out.splitlines() == [f"cron {uid} (boom): FAILURE", "    ValueError: it broke"]


def test_crons_list_logs_shows_each_crons_logs(run):
    uid = add(run, "warn", "@yearly")
    other = add(run, "hello", "@yearly")
    run("crons", "run", uid, "--now")
    code, out, _ = run("crons", "list", "--logs")
    assert code == 0
    lines = out.splitlines()
    first = lines.index(next(line for line in lines if line.startswith(uid)))
    assert " WARN" in lines[first + 1]
    assert lines[first + 2:first + 4] == ["        careful", "        very careful"]
    assert lines[lines.index(next(ln for ln in lines if ln.startswith(other))) + 1] == "    no logs"
    assert "WARN" in run("crons", "list")[1]        # the last status in the table too


# -- jobs ------------------------------------------------------------------------


def test_jobs_submit_coerces_params_by_the_parameter_format(run, kit):
    job_id = submit(run, "export", "--param", "limit=3", "-p", "dry=yes", "--name", "Export X",
                    "--priority", "5", "--user", "ann", "--timeout", "9")
    job = kit.site().jobs.get(job_id)
    assert job.payload == {"limit": 3, "dry": True, "fmt": "csv"}
    assert (job.name, job.priority, job.user, job.timeout, job.status) == (
        "Export X", 5, "ann", 9, cronkit.Status.PENDING)


def test_jobs_submit_reads_undeclared_params_as_json_else_text(run, kit):
    job_id = submit(run, "hello", "-p", "n=3", "-p", "xs=[1, 2]", "-p", "word=hi there",
                    "-p", "eq=a=b", "--payload", '{"base": true, "n": 1}')
    assert kit.site().jobs.get(job_id).payload == {
        "base": True, "n": 3, "xs": [1, 2], "word": "hi there", "eq": "a=b"}


def test_jobs_submit_delay_and_unique(run, kit):
    first = submit(run, "hello", "-p", "a=1", "--unique", "--delay", "60")
    assert submit(run, "hello", "-p", "a=1", "--unique") == first
    job = kit.site().jobs.get(first)
    assert (job.run_after - job.created_at) == timedelta(seconds=60)


def test_jobs_list(run):
    ok = submit(run, "export", "-p", "limit=1")
    other = submit(run, "hello", "--name", "a very long name " * 5)
    run("jobs", "run", str(ok))
    code, out, _ = run("jobs", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["ID", "TYPE", "NAME", "STATUS", "PROGRESS"]
    assert lines[1].split()[:2] == [str(other), "hello"] and "…" in lines[1]
    assert lines[2].split()[:5] == [str(ok), "export", "export", "success", "100%"]
    assert "exported 1" in lines[2]
    out = run("jobs", "list", "--status", "pending")[1]
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(other)]
    out = run("jobs", "list", "--type", "export")[1]
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(ok)]
    assert len(run("jobs", "list", "--limit", "1")[1].splitlines()) == 2
    data = json.loads(run("jobs", "list", "--json")[1])
    assert [(j["id"], j["status"]) for j in data] == [(other, "pending"), (ok, "success")]


def test_jobs_list_when_there_are_none(run):
    assert run("jobs", "list") == (0, "", "no jobs in site 'default'\n")


def test_jobs_status(run):
    job_id = submit(run, "boom", "-p", "x=1")
    run("jobs", "run", str(job_id))
    code, out, _ = run("jobs", "status", str(job_id))
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.splitlines()
                  if line and not line.startswith(" ") and not line.endswith(":"))
    assert fields["id"] == str(job_id) and fields["type"] == "boom"
    assert fields["status"] == "failed" and fields["payload"] == '{"x": 1}'
    assert fields["pid"] == str(os.getpid())
    assert "message:\n    ValueError: it broke" in out
    assert "Traceback" in out                    # the job's message keeps its traceback
    data = json.loads(run("jobs", "status", str(job_id), "--json")[1])
    assert data["status"] == "failed" and data["message"].startswith("ValueError: it broke")


def test_jobs_status_shows_the_status_text(run):
    job_id = submit(run, "hello")
    run("jobs", "run", str(job_id))
    out = run("jobs", "status", str(job_id))[1]
    assert "progress" in out and "100%" in out
    assert "status text:\n" in out


def test_jobs_run_runs_it_here_with_a_progress_bar(run, kit, monkeypatch):
    monkeypatch.setattr(cli, "WATCH_INTERVAL", 0.01)
    job_id = submit(run, "hello", "--payload", '{"pause": 0.05}', "--delay", "3600")
    code, out, err = run("jobs", "run", str(job_id))
    assert code == 0
    assert out.strip() == f"job {job_id} (hello): success"
    assert f"running job {job_id} (hello) in the foreground" in err
    assert f"job {job_id} success 100%" in err      # not a terminal: plain lines
    job = kit.site().jobs.get(job_id)
    assert job.status == cronkit.Status.SUCCESS and job.pid == os.getpid()
    assert [h["comment"] for h in job.history] == [f"did step {i}" for i in range(4)]


def test_jobs_run_runs_a_finished_job_again(run, kit):
    job_id = submit(run, "boom")
    assert run("jobs", "run", str(job_id))[0] == 1
    assert run("jobs", "run", str(job_id))[1].startswith(f"job {job_id} (boom): failed: ValueError")
    assert kit.site().jobs.get(job_id).status == cronkit.Status.FAILED


def test_jobs_run_is_a_new_attempt_as_a_worker_run_is(run, kit):
    ok = submit(run, "hello")
    assert run("jobs", "run", str(ok))[0] == 0
    job = kit.site().jobs.get(ok)
    assert (job.status, job.attempts) == (cronkit.Status.SUCCESS, 1)
    flaky = submit(run, "flaky")                  # it may be tried twice
    code, out, _ = run("jobs", "run", str(flaky))
    job = kit.site().jobs.get(flaky)
    assert code == 1 and out.startswith(f"job {flaky} (flaky): pending")
    assert (job.status, job.attempts) == (cronkit.Status.PENDING, 1)      # to be retried
    code, out, _ = run("jobs", "run", str(flaky))
    job = kit.site().jobs.get(flaky)
    assert code == 1 and out.startswith(f"job {flaky} (flaky): failed: ValueError: not yet")
    assert (job.status, job.attempts) == (cronkit.Status.FAILED, 2)       # no attempt left
    assert [h["status"] for h in job.history] == ["retry"]


def test_jobs_run_debug_changes_nothing_and_prints_the_output(db_url, runners, kit, capfd):
    # a debug run prints to the real stdout (sys.__stdout__): capture the file descriptors
    base = ["--store", db_url, "--import", runners]
    assert cli.main(base + ["jobs", "submit", "hello", "-p", "who=me"]) == 0
    job_id = int(capfd.readouterr().out)
    code = cli.main(base + ["jobs", "run", str(job_id), "--debug"])
    printed, err = capfd.readouterr()
    assert code == 0
    assert printed.strip().endswith(f"job {job_id} (hello): success (debug run)")
    assert "the store is not changed" in err
    assert "hello {'who': 'me'}" in printed and "[progress 100%] step 3" in printed
    assert "[info] did step 3" in printed
    job = kit.site().jobs.get(job_id)
    assert (job.status, job.progress, job.status_text, job.history, job.attempts) == (
        cronkit.Status.PENDING, 0, "", [], 0)


def test_jobs_run_debug_shows_the_traceback_of_a_failure(run, kit):
    job_id = submit(run, "boom")
    code, out, err = run("jobs", "run", str(job_id), "--debug")
    assert code == 1
    assert out.strip() == f"job {job_id} (boom): failed (debug run)"
    assert "Traceback" in err and "ValueError: it broke" in err
    assert kit.site().jobs.get(job_id).status == cronkit.Status.PENDING


def test_jobs_run_debug_prints_returned_messages(run):
    job_id = submit(run, "warn")
    code, out, _ = run("jobs", "run", str(job_id), "--debug")
    assert code == 0
    assert out.splitlines()[1:] == ["    careful", "    very careful"]


def test_jobs_watch_draws_until_the_job_ends(run, kit, monkeypatch):
    job_id = submit(run, "hello")
    polls = []

    def a_worker_runs_it(seconds):
        polls.append(seconds)
        kit.run_pending()

    monkeypatch.setattr(cli, "_sleep", a_worker_runs_it)
    code, out, err = run("jobs", "watch", str(job_id))
    assert code == 0
    assert polls == [cli.WATCH_INTERVAL]
    assert out.strip() == f"job {job_id} (hello): success"
    assert err.splitlines() == [
        f"job {job_id} pending 0%",
        f"job {job_id} success 100%  step 3"]


def test_jobs_watch_exits_1_on_failure_and_cancel(run):
    failed = submit(run, "boom")
    run("jobs", "run", str(failed))
    code, out, _ = run("jobs", "watch", str(failed))
    assert code == 1 and out.startswith(f"job {failed} (boom): failed: ValueError: it broke")
    canceled = submit(run, "hello")
    run("jobs", "cancel", str(canceled))
    assert run("jobs", "watch", str(canceled))[0] == 1


def test_the_progress_bar_redraws_in_place_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    view = cli._ProgressView(stream)
    job = types.SimpleNamespace(id=7, status=cronkit.Status.RUNNING, progress=50,
                                status_text="line one\nworking hard\n")
    view.show(job)
    view.show(job)                     # unchanged: not redrawn
    job.progress, job.status_text = 100, ""
    job.status = cronkit.Status.SUCCESS
    view.show(job)
    view.end()
    assert stream.getvalue() == (
        "\rjob 7 [###############---------------]  50% running  working hard"
        "\rjob 7 [##############################] 100% success" + " " * 14 + "\n")


def test_the_progress_of_a_job_that_vanished_stops_quietly(monkeypatch):
    monkeypatch.setattr(cli, "WATCH_INTERVAL", 0.001)

    def gone(job_id):
        raise cronkit.NoSuchJob(f"no job with id {job_id!r}")

    site = types.SimpleNamespace(jobs=types.SimpleNamespace(get=gone))
    stream = io.StringIO()
    with cli._Follower(site, 42, stream) as follower:
        follower._thread.join(5)
        assert not follower._thread.is_alive()
    assert stream.getvalue() == ""


def test_jobs_cancel(run, kit):
    pending = submit(run, "hello", "--delay", "60")
    assert run("jobs", "cancel", str(pending)) == (0, f"job {pending} canceled\n", "")
    assert kit.site().jobs.get(pending).status == cronkit.Status.CANCELED
    assert run("jobs", "cancel", str(pending)) == (
        1, f"job {pending} already finished: canceled\n", "")


def test_jobs_cancel_of_a_running_job_asks_it_to_stop(run, kit):
    job_id = submit(run, "hello")
    kit.store.claim(kit.clock.now(), 1, "elsewhere:1", 1)
    code, out, _ = run("jobs", "cancel", str(job_id))
    assert code == 0
    assert out.startswith(f"job {job_id} is running: cancel requested") and "--force" in out
    assert kit.site().jobs.get(job_id).canceled
    code, out, _ = run("jobs", "cancel", str(job_id), "--force")
    assert code == 0 and "--force" not in out


def test_jobs_history(run):
    job_id = submit(run, "hello")
    assert run("jobs", "history", str(job_id)) == (0, "", f"job {job_id} has no history\n")
    run("jobs", "run", str(job_id))
    code, out, _ = run("jobs", "history", str(job_id))
    lines = out.splitlines()
    assert lines[0].split() == ["DATE", "STATUS", "COMMENT"]
    assert [line.split("  ")[-1] for line in lines[1:]] == [f"did step {i}" for i in range(4)]


def test_jobs_are_looked_up_in_the_site_given(run):
    job_id = submit(run, "hello", "--site", "a")
    assert run("jobs", "status", str(job_id), "--site", "a")[0] == 0
    code, _, err = run("jobs", "status", str(job_id), "--site", "b")
    assert code == 2 and "in site 'b'" in one_error(err)


# -- types, profiles, cleanup ----------------------------------------------------


def test_types_lists_runners_with_help_and_parameters(run):
    code, out, _ = run("types")
    assert code == 0
    blocks: dict[str, str] = {}
    for line in out.splitlines():              # a runner's name, then its indented help
        if line and not line.startswith(" "):
            name = line
        blocks[name] = blocks.get(name, "") + line + "\n"
    blocks = {name: block.rstrip("\n") for name, block in blocks.items()}
    assert {"boom", "export", "hello", "silent", "warn"} <= set(blocks)
    assert blocks["hello"].splitlines()[1:] == [
        "    Say hello.", "", "    Prints and reports progress.", "    parameters: any JSON object"]
    assert blocks["silent"].splitlines()[1] == "    (no help)"
    table = blocks["export"].splitlines()[2:]
    assert table[0].split() == ["PARAMETER", "TYPE", "REQUIRED", "CHOICES", "DEFAULT", "HELP"]
    assert table[1].split() == ["limit", "int", "yes", "-", "-", "max", "rows"]
    assert table[2].split() == ["fmt", "select", "no", "csv,", "json", '"csv"', "-"]
    assert table[3].split() == ["dry", "bool", "no", "-", "-", "-"]


def test_types_of_some_names_only(run):
    code, out, _ = run("types", "warn", "boom")
    assert code == 0
    assert out.splitlines() == ["warn", "    (no help)", "    parameters: any JSON object", "",
                                "boom", "    (no help)", "    parameters: any JSON object"]
    code, _, err = run("types", "warn", "nope", "nada")
    assert code == 2 and "no runner named 'nope', 'nada'" in one_error(err)


def test_types_without_runners_says_how_to_get_them(run, monkeypatch):
    monkeypatch.setattr(sys.modules["cronkit.runner"], "job_types", lambda site: {})
    assert run("types", imports=False) == (0, "", "no job types for site 'default': import the "
                                                   "modules that register runners with --import "
                                                   "MODULE\n")


CRONS_XML = """<?xml version="1.0" encoding="UTF-8"?>
<crons>
  <cron uid="one" name="hello" activated="true" periodicity="@hourly">
    <environ><![CDATA[{"a": 1}]]></environ>
  </cron>
  <cron uid="two" name="warn" periodicity="@daily"/>
</crons>
"""


def test_profile_load_and_export_crons_xml(run, kit, tmp_path):
    (tmp_path / "crons.xml").write_text(CRONS_XML)
    code, out, _ = run("profile", "load", "crons.xml", "--site", "s")
    assert code == 0 and out.strip() == "imported crons.xml into site 's': 2 cron(s)"
    crontab = kit.site("s").crontab
    assert [(c.uid, c.activated, c.environ) for c in crontab.crons.values()] == [
        ("one", True, {"a": 1}), ("two", False, {})]
    code, out, _ = run("profile", "export", "--site", "s")
    assert code == 0 and out.startswith("<?xml") and 'uid="two"' in out
    (tmp_path / "again.xml").write_text(out)
    run("profile", "load", "again.xml", "--site", "copy")
    assert kit.site("copy").crontab.similar(kit.site("s").crontab)


def test_profile_export_json_zcml_and_to_a_file(run, tmp_path):
    add(run, "hello", "@hourly", "--uid", "one")
    code, out, _ = run("profile", "export", "--format", "json")
    assert code == 0 and [c["uid"] for c in json.loads(out)["crons"]] == ["one"]
    code, out, _ = run("profile", "export", "--format", "zcml")
    assert code == 0 and 'uid="one"' in out
    code, out, err = run("profile", "export", "-o", "out.xml")
    assert code == 0 and out == "" and err.strip() == "wrote out.xml"
    assert 'uid="one"' in (tmp_path / "out.xml").read_text()


def test_profile_export_of_a_format_that_is_missing(run, monkeypatch):
    from cronkit.profiles import cronsxml
    monkeypatch.delattr(cronsxml, "export_zcml")
    code, _, err = run("profile", "export", "--format", "zcml")
    assert code == 2 and "export to zcml is not available" in one_error(err)
    monkeypatch.setattr(cronsxml, "export_json", lambda site: {"crons": []})
    assert json.loads(run("profile", "export", "--format", "json")[1]) == {"crons": []}


def test_profiles_not_installed_is_one_line(run, monkeypatch):
    def missing(*args):
        raise ModuleNotFoundError("No module named 'cronkit.profiles.cronsxml'",
                                  name="cronkit.profiles.cronsxml")
    monkeypatch.setattr(cronkit.Site, "export_crons", missing)
    code, _, err = run("profile", "export")
    assert code == 2 and "profiles are not available" in one_error(err)


def test_an_import_error_of_another_module_is_not_hidden(run, monkeypatch):
    def broken(*args):
        raise ModuleNotFoundError("No module named 'lxml'", name="lxml")
    monkeypatch.setattr(cronkit.Site, "export_crons", broken)
    with pytest.raises(ModuleNotFoundError):
        run("profile", "export")


ZCML = """<configure xmlns="http://namespaces.zope.org/zope"
           xmlns:cron="http://namespaces.cronkit.org/cron">
  <cron:crontab site="zsite">
    <cron:cron uid="z1" name="hello" periodicity="@hourly" activated="true"/>
  </cron:crontab>
</configure>
"""


def test_profile_load_zcml(run, kit, tmp_path):
    (tmp_path / "site.zcml").write_text(ZCML)
    code, out, _ = run("profile", "load", "site.zcml")
    assert code == 0 and out.strip() == "loaded ZCML profile site.zcml"
    assert list(kit.site("zsite").crontab.crons) == ["z1"]


def test_profile_errors_name_the_file_and_line(run, tmp_path):
    (tmp_path / "bad.xml").write_text('<crons>\n<cron uid="x" name="hello" periodicity="nope"/>'
                                      "\n</crons>\n")
    code, _, err = run("profile", "load", "bad.xml")
    assert code == 2 and "bad.xml" in one_error(err) and "line 2" in err


@pytest.mark.parametrize("name, words", [("missing.xml", "no such profile file: missing.xml"),
                                          ("crons.txt", "unknown profile type 'crons.txt'")])
def test_profile_load_refuses_what_it_cannot_read(run, tmp_path, name, words):
    (tmp_path / "crons.txt").write_text("")
    code, _, err = run("profile", "load", name)
    assert code == 2 and words in one_error(err)


def test_cleanup_deletes_finished_jobs_past_retention(run, kit):
    old, recent, pending = (submit(run, "hello") for _ in range(3))
    for job_id in (old, recent):
        run("jobs", "run", str(job_id))
    kit.store.update_job(old, finished_at=kit.clock.now() - timedelta(days=40))
    assert run("cleanup") == (0, "deleted 1 finished job(s)\n", "")
    assert run("cleanup", "--backlog-days", "0", "--all-backlog-days", "0")[1] == \
        "deleted 0 finished job(s)\n"
    assert {j.id for j in kit.site().jobs.list()} == {recent, pending}


# -- worker, run, web (in-process, with the long-running parts replaced) ----------


@pytest.fixture
def worker_calls(monkeypatch):
    calls = []

    def run_forever(self, install_signals=True):
        calls.append(self)

    monkeypatch.setattr(Worker, "run_forever", run_forever)
    return calls


def test_worker_command_builds_the_worker_asked_for(run, worker_calls, monkeypatch):
    monkeypatch.setattr("logging.basicConfig", lambda **kw: None)
    code, _, err = run("worker", "--concurrency", "3", "--poll", "0.25", "--log-level", "debug")
    assert code == 0
    [worker] = worker_calls
    assert (worker.concurrency, worker.poll_interval) == (3, 0.25)
    assert "concurrency 3" in err and "Ctrl-C to stop" in err


def test_worker_takes_the_longest_back_off(run, worker_calls, monkeypatch):
    monkeypatch.setattr("logging.basicConfig", lambda **kw: None)
    code, _, _ = run("worker", "--poll", "0.5", "--max-backoff", "12")
    assert code == 0
    [worker] = worker_calls
    assert (worker.poll_interval, worker.max_backoff) == (0.5, 12.0)
    code, _, err = run("worker", "--max-backoff", "0")
    assert code == 2 and "--max-backoff" in err


def test_worker_takes_its_claim_ahead_horizon_and_lease(run, worker_calls, monkeypatch):
    monkeypatch.setattr("logging.basicConfig", lambda **kw: None)
    code, _, _ = run("worker", "--claim-ahead", "2.5", "--lease", "9")
    assert code == 0
    [worker] = worker_calls
    assert (worker.claim_ahead, worker.lease) == (2.5, 9.0)
    code, _, _ = run("worker", "--claim-ahead", "0")
    assert code == 0 and worker_calls[-1].claim_ahead == 0
    code, _, err = run("worker", "--lease", "0")
    assert code == 2 and "--lease" in err


def test_worker_takes_the_error_timeout_and_retention(run, worker_calls, monkeypatch):
    monkeypatch.setattr("logging.basicConfig", lambda **kw: None)
    code, _, _ = run("worker", "--error-timeout", "8", "--backlog-days", "0",
                     "--all-backlog-days", "2.5")
    assert code == 0
    [worker] = worker_calls
    kit = worker.kit
    assert (kit.error_timeout, kit.backlog_days, kit.all_backlog_days) == (8.0, 0.0, 2.5)
    assert worker.heartbeat_interval == 2.0 and worker.reap_interval == 4.0


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "soon"])
def test_a_bad_error_timeout_is_named(run, value):
    code, _, err = run("worker", "--error-timeout", value)
    assert code == 2 and "--error-timeout" in err and repr(value) in err


@pytest.fixture
def fake_web(monkeypatch):
    """A stand-in cronkit.web whose serve() records its arguments and returns."""
    calls = []
    module = types.ModuleType("cronkit.web")
    module.serve = lambda kit, **kw: calls.append((kit, kw))
    monkeypatch.setitem(sys.modules, "cronkit.web", module)
    return calls


def test_web_serves_the_dashboard_with_its_credentials(run, fake_web, monkeypatch):
    monkeypatch.setenv("CRONKIT_PASSWORD", "from-env")
    code, _, err = run("web", "--host", "0.0.0.0", "--port", "9999", "--token", "t0k")
    assert code == 0
    [(kit, options)] = fake_web
    assert isinstance(kit, cronkit.Cronkit)
    assert options == {"host": "0.0.0.0", "port": 9999, "token": "t0k", "password": "from-env"}
    assert "dashboard on http://0.0.0.0:9999/" in err


@pytest.mark.parametrize("module", [None, types.ModuleType("cronkit.web")])
def test_web_without_the_dashboard_is_one_line(run, monkeypatch, module):
    monkeypatch.setitem(sys.modules, "cronkit.web", module)
    code, _, err = run("web")
    assert code == 2 and "the dashboard is not available" in one_error(err)


def test_run_serves_the_dashboard_beside_a_worker(run, kit, monkeypatch):
    monkeypatch.setattr("logging.basicConfig", lambda **kw: None)
    job_id = submit(run, "hello")
    seen = []

    def serve(served_kit, **options):     # the dashboard runs until the worker did the job
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if served_kit.site().jobs.get(job_id).finished:
                break
            time.sleep(0.05)
        seen.append(options)

    module = types.ModuleType("cronkit.web")
    module.serve = serve
    monkeypatch.setitem(sys.modules, "cronkit.web", module)
    monkeypatch.setenv("CRONKIT_TOKEN", "env-token")
    code, _, err = run("run", "--port", "8765", "--poll", "0.05")
    assert code == 0
    assert seen == [{"host": "127.0.0.1", "port": 8765, "token": "env-token", "password": None}]
    assert "dashboard on http://127.0.0.1:8765/" in err and "stopping the worker" in err
    assert kit.site().jobs.get(job_id).status == cronkit.Status.SUCCESS


def test_run_without_the_dashboard_runs_the_worker_in_the_foreground(
        run, worker_calls, monkeypatch, kit, tmp_path):
    monkeypatch.setattr("logging.basicConfig", lambda **kw: None)
    monkeypatch.setitem(sys.modules, "cronkit.web", None)
    (tmp_path / "site.zcml").write_text(ZCML)
    code, _, err = run("run", "--profile", "site.zcml", "--concurrency", "2")
    assert code == 0
    assert worker_calls[0].concurrency == 2
    assert "the dashboard is not available" in err and "running the worker only" in err
    assert list(kit.site("zsite").crontab.crons) == ["z1"]
    code, _, err = run("run", "--no-web")
    assert code == 0 and "running the worker only (--no-web)" in err


def test_sigterm_while_serving_ends_the_command_cleanly(run, fake_web, monkeypatch):
    previous = signal.getsignal(signal.SIGTERM)

    def serve(kit, **options):     # uvicorn raises the signal again once it has shut down
        signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(sys.modules["cronkit.web"], "serve", serve)
    assert run("web")[0] == 0
    assert signal.getsignal(signal.SIGTERM) is previous


@pytest.mark.parametrize("status, code", [(0, 0), (None, 0), (3, 2)])
def test_a_dashboard_that_exits_is_reported(run, fake_web, monkeypatch, status, code):
    def serve(kit, **options):
        sys.exit(status)

    monkeypatch.setattr(sys.modules["cronkit.web"], "serve", serve)
    result, _, err = run("web", "--port", "8099")
    assert result == code
    if code:
        assert err.splitlines()[-1] == ("cronkit: error: the dashboard could not start on "
                                        "http://127.0.0.1:8099/ (exit status 3)")


def test_serving_from_another_thread_leaves_signals_alone(run, fake_web):
    import threading
    results = []
    thread = threading.Thread(target=lambda: results.append(run("web")[0]))
    thread.start()
    thread.join()
    assert results == [0] and len(fake_web) == 1


def test_run_with_a_missing_profile_is_one_line(run):
    code, _, err = run("run", "--profile", "nope.zcml")
    assert code == 2 and "no such profile file: nope.zcml" in one_error(err)


# -- real processes --------------------------------------------------------------


def _console_script() -> str:
    found = script("cronkit")
    assert found is not None, "the cronkit console script is missing: run `make test`, which installs it"
    return str(found)


@pytest.mark.parametrize("entry", ["script", "module"])
def test_a_real_process_exits_2_with_one_line(entry, db_url, tmp_path):
    command = [_console_script()] if entry == "script" else [sys.executable, "-m", "cronkit"]
    proc = subprocess.run(command + ["--store", db_url, "crons", "add", "x", "61 * * * *"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "invalid periodicity '61 * * * *'" in one_error(proc.stderr)
    assert proc.stdout == ""


def test_python_m_cronkit_is_cronkit(db_url, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cronkit", "--store", db_url, "crons", "list"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "site 'default': crontab ON, 0 cron(s)\n"


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cronkit_run_serves_the_dashboard_and_stops_on_sigterm(db_url, tmp_path):
    pytest.importorskip("uvicorn")
    port = _free_port()
    proc = subprocess.Popen([_console_script(), "--store", db_url, "run", "--port", str(port),
                             "--poll", "0.2"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        import urllib.request
        deadline, status = time.monotonic() + 30, None
        while status is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status
            except OSError:
                time.sleep(0.1)
        assert status == 200, proc.stderr.read() if proc.poll() is not None else "no answer"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert f"dashboard on http://127.0.0.1:{port}/" in err
    assert "stopping the worker" in err and "stopped" in err and "Traceback" not in err


WORKER_RUNNERS = '''
import cronkit


@cronkit.runner("touch")
def touch(job):
    """Write a file named by the cron's environ."""
    with open(job.payload["path"], "a") as f:
        f.write("ran\\n")
'''


def test_a_worker_process_runs_a_due_cron_and_stops_on_sigterm(db_url, tmp_path, monkeypatch,
                                                                capsys):
    module = f"cli_worker_runners_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(WORKER_RUNNERS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    marker = tmp_path / "ran.txt"
    try:
        assert cli.main(["--store", db_url, "--import", module, "crons", "add", "touch", "@yearly",
                         "--uid", "t", "--environ", json.dumps({"path": str(marker)})]) == 0
        assert cli.main(["--store", db_url, "crons", "run", "t"]) == 0    # due now
    finally:
        sys.modules.pop(module, None)
    env = child_env(tmp_path)
    env.pop("CRONKIT_STORE", None)
    proc = subprocess.Popen([_console_script(), "worker", "--store", db_url, "--import", module,
                             "--poll", "0.2"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "timed out"
        kit = cronkit.Cronkit(store=db_url)
        try:
            deadline = time.monotonic() + 30
            while kit.site().crontab.by_uid("t").last is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert kit.site().crontab.by_uid("t").last.status == cronkit.LogStatus.OK
            assert kit.site().jobs.is_job_pending("t")       # rescheduled for next year
        finally:
            kit.close()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped" in err
    assert marker.read_text() == "ran\n"
    capsys.readouterr()
    assert cli.main(["--store", db_url, "crons", "list"]) == 0
    assert " OK " in capsys.readouterr().out


# -- previews: crons show, --dry-run, --seconds-first --------------------------------


@pytest.fixture
def now(monkeypatch):
    """The commands' kits read this FakeClock, set to noon UTC on Friday 29 March 2024
    (Europe/Paris springs forward on Sunday the 31st, 02:00 to 03:00)."""
    from datetime import UTC, datetime

    import cronkit.kit
    clock = cronkit.FakeClock(datetime(2024, 3, 29, 12, tzinfo=UTC))

    class Kit(cronkit.kit.Cronkit):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("clock", clock)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(cronkit.kit, "Cronkit", Kit)
    return clock


PARIS_NEXT_5 = ["2024-03-30 02:30:00 CET", "2024-03-31 03:00:00 CEST",
                "2024-04-01 02:30:00 CEST", "2024-04-02 02:30:00 CEST",
                "2024-04-03 02:30:00 CEST"]


def _times(out: str) -> list[str]:
    return re.findall(r"^\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+)$", out, re.MULTILINE)


def test_a_dry_run_shows_words_and_the_next_five_times_and_saves_nothing(run, kit, now):
    code, out, err = run("crons", "add", "hello", "30 2 * * *", "--timezone", "Europe/Paris",
                         "--uid", "p", "--dry-run")
    assert code == 0, err
    assert out.startswith("cron p (hello) would be added; nothing saved (--dry-run)\n")
    assert "in words:       at 02:30" in out and "time zone:      Europe/Paris" in out
    assert _times(out) == PARIS_NEXT_5   # 02:30 does not exist on the 31st: 03:00
    assert "note:" not in out and "expanded:" not in out
    assert kit.site().crontab.crons == {}
    assert kit.site().jobs.count() == 0


def test_a_dry_run_of_a_bad_expression_is_one_line(run, kit, now):
    code, out, err = run("crons", "add", "hello", "61 * * * *", "--dry-run")
    assert code == 2 and out == ""
    assert "invalid periodicity '61 * * * *'" in one_error(err)


def test_a_dry_run_notes_six_fields_read_seconds_last(run, now):
    code, out, _ = run("crons", "add", "hello", "0 0 12 * * *", "--dry-run")
    assert code == 0
    note = " ".join(out.split("note:", 1)[1].split("next 5:")[0].split())
    assert note.startswith("cronkit reads six fields with the seconds last (minute hour "
                           "day-of-month month day-of-week second)")
    assert note.endswith("seconds_first reads it their way, and it would run at 12:00")
    assert _times(out)[:2] == ["2024-04-12 00:00:00 UTC", "2024-04-12 00:00:01 UTC"]
    for same in ("* * * * * *", "*/5 * * * *"):
        code, out, _ = run("crons", "add", "hello", same, "--dry-run")
        assert code == 0 and "note:" not in out


def test_seconds_first_reads_quartz_order_and_round_trips(run, db_url, now):
    add(run, "hello", "0 0 12 * * *", "--uid", "q", "--seconds-first")
    code, out, _ = run("crons", "show", "q")
    assert "seconds first:  yes" in out and "expanded:       0 12 * * * 0" in out
    assert "read with the seconds first, the Quartz way" in out
    assert _times(out)[0] == "2024-03-30 12:00:00 UTC"
    code, out, _ = run("crons", "show", "q", "--json")
    data = json.loads(out)
    assert data["cron"]["seconds_first"] is True and data["cron"]["expanded"] == "0 12 * * * 0"
    assert data["preview"]["next"][0] == "2024-03-30T12:00:00+00:00"
    code, out, err = run("crons", "edit", "q", "--periodicity", "*/5 * * * *", "--seconds-last")
    assert code == 0, err
    assert out == "cron q edited: periodicity, seconds_first\n"
    code, out, _ = run("crons", "show", "q", "--json")
    assert json.loads(out)["cron"]["seconds_first"] is False


def test_an_edit_changes_the_expression_and_its_order_together(run, db_url, now):
    add(run, "hello", "*/5 * * * *", "--uid", "e")
    code, out, err = run("crons", "edit", "e", "--periodicity", "0 0 0 * * *", "--seconds-first")
    assert code == 0, err
    kit = cronkit.Cronkit(store=db_url)
    try:
        cron = kit.site().crontab.crons["e"]
        assert (cron.periodicity, cron.seconds_first, cron.expanded) == (
            "0 0 0 * * *", True, "0 0 * * * 0")
    finally:
        kit.close()
    code, out, err = run("crons", "edit", "e", "--periodicity", "*/5 * * * *")
    assert code == 2 and "seconds first needs 6 fields" in one_error(err)


def test_an_edit_dry_run_saves_nothing(run, db_url, now):
    add(run, "hello", "*/5 * * * *", "--uid", "d")
    code, out, err = run("crons", "edit", "d", "--periodicity", "30 2 * * *", "--timezone",
                         "Europe/Paris", "--dry-run")
    assert code == 0, err
    assert out.startswith("cron d (hello) would be edited (periodicity, timezone); nothing saved")
    assert _times(out) == PARIS_NEXT_5
    kit = cronkit.Cronkit(store=db_url)
    try:
        cron = kit.site().crontab.crons["d"]
        assert (cron.periodicity, cron.timezone) == ("*/5 * * * *", None)
        (job,) = kit.site().jobs.list(cron="d")
        assert job.run_after == now.now().replace(minute=5)
    finally:
        kit.close()


def test_an_h_expression_shows_as_written_and_as_drawn(run, db_url, now):
    add(run, "hello", "H 3 * * *", "--uid", "h")
    kit = cronkit.Cronkit(store=db_url)
    try:
        expanded = kit.site().crontab.crons["h"].expanded
    finally:
        kit.close()
    assert expanded != "H 3 * * *" and expanded.endswith(" 3 * * *")
    code, out, _ = run("crons", "show", "h")
    assert "periodicity:    H 3 * * *\n" in out and f"expanded:       {expanded}\n" in out
    code, out, _ = run("crons", "list")
    assert f"H 3 * * * = {expanded}" in out
    code, out, _ = run("crons", "add", "hello", "H 3 * * *", "--uid", "h2", "--dry-run")
    assert "periodicity:    H 3 * * *\n" in out and "expanded:       " in out


def test_crons_show_next_10_lists_10_times_in_the_cron_s_zone(run, now):
    add(run, "hello", "30 2 * * *", "--uid", "p", "--timezone", "Europe/Paris")
    code, out, err = run("crons", "show", "p", "--next", "10")
    assert code == 0, err
    assert out.startswith("cron p (hello)\n") and "next 10:" in out
    times = _times(out)
    assert len(times) == 10 and times[:5] == PARIS_NEXT_5 and times[-1] == "2024-04-08 02:30:00 CEST"
    code, out, _ = run("crons", "show", "p", "--next", "0")
    assert _times(out) == [] and "next" not in out
    code, _, err = run("crons", "show", "p", "--next", "1001")
    assert code == 2 and "--next" in one_error(err)
    code, _, err = run("crons", "show", "nope")
    assert code == 2 and "no cron with uid 'nope'" in one_error(err)


def test_crons_show_says_when_the_years_have_ended(run, now):
    add(run, "hello", "0 0 1 1 * 0 2025", "--uid", "y")
    code, out, _ = run("crons", "show", "y", "--next", "3")
    assert _times(out) == ["2025-01-01 00:00:00 UTC"]
    assert "end:            no firing after these: its year field has ended" in out


# -- results, submission options (issue 15) ----------------------------------------


RESULT_RUNNERS = '''
import cronkit


@cronkit.runner("stats")
def stats(job):
    return {"rows": 3, "names": ["<a>", "b"]}
'''


@pytest.fixture
def result_runners(runners, tmp_path):
    """A second runner module, ``--import``-ed beside the first: a runner returning JSON."""
    name = runners + "_results"
    (tmp_path / f"{name}.py").write_text(RESULT_RUNNERS)
    yield name
    sys.modules.pop(name, None)


def test_jobs_status_shows_the_json_result_a_runner_returned(run, result_runners):
    job_id = submit(run, "stats", "--import", result_runners)
    assert run("jobs", "run", str(job_id), "--import", result_runners)[0] == 0
    code, out, _ = run("jobs", "status", str(job_id))
    assert code == 0
    assert 'result:\n    {\n      "rows": 3,\n      "names": [\n        "<a>",' in out
    data = json.loads(run("jobs", "status", str(job_id), "--json")[1])
    assert data["result"] == {"rows": 3, "names": ["<a>", "b"]}
    assert json.loads(run("jobs", "list", "--json")[1])[0]["result"] == data["result"]


def test_jobs_submit_takes_user_run_after_timeout_and_after(run, kit):
    from datetime import UTC, datetime
    first = submit(run, "hello")
    job_id = submit(run, "hello", "--user", "ann", "--run-after", "2030-01-01T09:00+01:00",
                    "--timeout", "2.5")
    job = kit.site().jobs.get(job_id)
    assert (job.user, job.timeout) == ("ann", 2.5)
    assert job.run_after == datetime(2030, 1, 1, 8, tzinfo=UTC)
    then = submit(run, "hello", "--after", str(first), "--after", str(job_id))
    assert kit.site().jobs.get(then).after_ids == [first, job_id]


@pytest.mark.parametrize(("argv", "message"), [
    (["--run-after", "2030-01-01T09:00"], "--run-after: expected an offset"),
    (["--run-after", "tomorrow"], "--run-after: expected an ISO-8601 date and time"),
    (["--run-after", "2030-01-01T09:00Z", "--delay", "5"], "not allowed with argument"),
    (["--timeout", "0"], "--timeout: expected a number > 0"),
    (["--after", "0"], "--after: expected an integer >= 1"),
    (["--after", "999"], "after: no job 999"),
])
def test_jobs_submit_refuses_bad_options_in_one_line(run, argv, message):
    code, _, err = run("jobs", "submit", "hello", *argv)
    assert code == 2 and message in one_error(err)


def test_jobs_status_shows_what_a_continuation_runs_after_and_then(run):
    first = submit(run, "hello")
    then = submit(run, "hello", "--after", str(first))
    out = run("jobs", "status", str(then))[1]
    assert re.search(rf"^after +job {first} \(pending\)$", out, re.M)
    assert re.search(r"^run after +when the jobs it runs after succeed$", out, re.M)
    out = run("jobs", "status", str(first))[1]
    assert re.search(rf"^then +job {then} \(pending\)$", out, re.M)
    assert json.loads(run("jobs", "status", str(then), "--json")[1])["after"] == [first]


def test_jobs_pause_resume_and_paused_steer_the_site_s_queue(run, kit):
    job_id = submit(run, "hello")
    assert run("jobs", "paused") == (0, "nothing is paused in site 'default'\n", "")
    assert run("jobs", "pause")[1] == ("site 'default' paused: running jobs run on, "
                                       "pending ones wait\n")
    assert run("jobs", "pause", "--type", "export")[0] == 0
    assert kit.site().pauses() == [None, "export"]
    code, out, _ = run("jobs", "paused")
    assert (code, out) == (0, "site 'default': the whole queue\nsite 'default': type export\n")
    code, out, err = run("jobs", "list")
    assert str(job_id) in out and err == ("paused in site 'default': the whole queue, "
                                          "type export\n")
    assert kit.run_pending() == []                     # paused: nothing is claimed
    assert kit.site().jobs.get(job_id).status == cronkit.Status.PENDING
    assert run("jobs", "resume") == (0, "site 'default' resumed\n", "")
    assert run("jobs", "resume") == (1, "site 'default' was not paused\n", "")
    assert run("jobs", "resume", "--type", "export")[1] == (
        "jobs of type 'export' in site 'default' resumed\n")
    assert kit.site().pauses() == []
    code, _, err = run("jobs", "pause", "--type", "")
    assert code == 2 and "invalid --type ''" in one_error(err)
