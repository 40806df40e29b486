"""The command line as an operator meets it (issue 17, configuration and messages):
profiles for workers, the current folder on the module path of the console script,
profile export/load round trips, one-line errors for unreachable stores, bad ports,
malformed store URLs and unknown sites, and ``jobs watch`` off a terminal.

Where the bug was about the installed console script, the test runs it (a real
subprocess, in a folder of its own whose modules are not on ``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cronkit
from cronkit import cli
from cronkit.cli.common import ONE_SHOT_RETRY, Context
from cronkit.worker import Worker
from tests.children import child_env
from tests.children import command as script_command
from tests.helpers import finished, wait_for
from tests.servers import free_port

# A module of the operator's own, in the folder the command runs from; its runner is
# declared for one site only, in ZCML.
OPS_RUNNERS = '''
import cronkit


class Local(cronkit.Runner):
    """A runner of site 'shop' only."""

    def run(self):
        self.job.note(f"ran in {self.context.name}")
        return None
'''
SITE_ZCML = '''<configure xmlns="http://namespaces.zope.org/zope"
           xmlns:cron="http://namespaces.cronkit.org/cron">
  <cron:runner name="local" factory="{module}.Local" site="shop"/>
</configure>
'''
CRONTAB_ZCML = '''<configure xmlns="http://namespaces.zope.org/zope"
           xmlns:cron="http://namespaces.cronkit.org/cron">
  <cron:crontab site="shop">
    <cron:cron uid="nightly" name="local" periodicity="0 3 * * *"/>
  </cron:crontab>
</configure>
'''
TIMEOUT = 60.0


def one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cronkit: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """The operator's folder, the current one: a runners module of a name of its own
    and the profiles naming it. The test process's module path is restored after."""
    module = f"ops_runners_{os.getpid()}_{len(os.listdir(tmp_path.parent))}"
    (tmp_path / f"{module}.py").write_text(OPS_RUNNERS)
    (tmp_path / "site.zcml").write_text(SITE_ZCML.format(module=module))
    (tmp_path / "crontab.zcml").write_text(CRONTAB_ZCML)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("CRONKIT_PROFILE", raising=False)
    monkeypatch.delenv("CRONKIT_STORE", raising=False)
    yield tmp_path
    sys.modules.pop(module, None)


@pytest.fixture
def store(folder):
    return f"sqlite:///{folder / 'cronkit.db'}"


@pytest.fixture
def run(store, capsys):
    """run(*argv) -> (exit code, stdout, stderr): ``cronkit --store STORE argv`` here."""
    def run(*argv: str):
        code = cli.main(["--store", store, *argv])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def env_of(folder, **extra: str) -> dict:
    """The environment of a child run in ``folder``: the checkout and this process's
    path on PYTHONPATH (so cronkit imports), ``folder`` not (its modules are found only
    as the current folder's)."""
    env = child_env(**extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in env["PYTHONPATH"].split(os.pathsep)
                                        if os.path.abspath(p) != str(folder))
    return env


def script(folder, *argv: str, timeout: float = TIMEOUT):
    """The installed console script, run in ``folder`` (see env_of)."""
    return subprocess.run([*script_command("cronkit"), *argv], cwd=folder,
                          env=env_of(folder), capture_output=True, text=True,
                          timeout=timeout)


# -- the current folder on the module path, with the console script ------------------


def test_the_console_script_loads_a_zcml_profile_naming_modules_of_the_current_folder(
        folder, store):
    done = script(folder, "--store", store, "profile", "load", "site.zcml")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "loaded ZCML profile site.zcml\n"


def test_the_console_script_imports_modules_of_the_current_folder(folder, store):
    module = next(p.stem for p in folder.glob("ops_runners_*.py"))
    (folder / "global_runners.py").write_text(
        "import cronkit\n\n@cronkit.runner('tidy')\ndef tidy(job):\n    '''Tidy up.'''\n")
    done = script(folder, "--store", store, "--import", "global_runners", "types", "tidy")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["tidy", "    Tidy up."]
    done = script(folder, "--store", store, "--import", f"{module}_nope", "types")
    assert done.returncode == 2
    assert one_error(done.stderr) == (f"cronkit: error: cannot import module "
                                      f"'{module}_nope' (--import): No module named "
                                      f"'{module}_nope'")


# -- worker --profile and CRONKIT_PROFILE -------------------------------------------------


def test_a_worker_runs_the_site_local_runner_of_the_profiles_in_cronkit_profile(folder, store):
    kit = cronkit.Cronkit(store=store)
    sys.path.insert(0, str(folder))   # the fixture restores the path
    try:
        kit.load_profile(str(folder / "site.zcml"))   # to submit its job from here
        job = kit.site("shop").submit("local")
        env = env_of(folder, CRONKIT_STORE=store,
                     CRONKIT_PROFILE=os.pathsep.join(["site.zcml", "", "crontab.zcml"]))
        with open(folder / "worker.log", "w") as log:
            worker = subprocess.Popen([*script_command("cronkit"), "worker", "--poll", "0.2"],
                                      cwd=folder, env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
        try:
            done = wait_for(lambda: finished(kit.site("shop"), job.id), TIMEOUT,
                            "the job's end")
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(TIMEOUT) == 0, (folder / "worker.log").read_text()
        assert done.status == cronkit.Status.SUCCESS, done.message
        assert [h["comment"] for h in done.history] == ["ran in shop"]
        assert list(kit.site("shop").crontab.crons) == ["nightly"]   # the second profile
    finally:
        kit.close()


@pytest.fixture
def worker_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(Worker, "run_forever", lambda self, install_signals=True:
                        calls.append(self))
    monkeypatch.setattr("logging.basicConfig", lambda **kw: None)
    return calls


@pytest.mark.parametrize("command", ["worker", "run"])
def test_profile_options_come_before_cronkit_profile(run, folder, store, worker_calls,
                                                     monkeypatch, command):
    extra = ["--no-web"] if command == "run" else []
    monkeypatch.setenv("CRONKIT_PROFILE", "crontab.zcml")
    code, _, err = run(command, *extra, "--profile", "site.zcml")
    assert code == 0, err
    kit = cronkit.Cronkit(store=store)
    try:
        assert list(kit.site("shop").crontab.crons) == []      # crontab.zcml: not loaded
        code, _, err = run(command, *extra)
        assert code == 0, err
        assert list(kit.site("shop").crontab.crons) == ["nightly"]
    finally:
        kit.close()
    assert len(worker_calls) == 2


def test_a_missing_or_wrong_profile_is_one_line_naming_where_it_came_from(
        run, worker_calls, monkeypatch):
    code, _, err = run("worker", "--profile", "nowhere.zcml")
    assert code == 2
    assert one_error(err) == "cronkit: error: no such profile file: nowhere.zcml (--profile)"
    monkeypatch.setenv("CRONKIT_PROFILE", os.pathsep.join(["site.zcml", "gone.zcml"]))
    code, _, err = run("run", "--no-web")
    assert code == 2
    assert one_error(err) == ("cronkit: error: no such profile file: gone.zcml "
                              "($CRONKIT_PROFILE)")
    code, _, err = run("worker", "--profile", "crons.xml")
    assert code == 2
    assert one_error(err) == (
        "cronkit: error: invalid profile 'crons.xml' (--profile): a worker loads ZCML "
        "profiles (.zcml); import a crons .xml file with 'cronkit profile load'")
    assert worker_calls == []


# -- profile export --format json, then profile load -------------------------------------


def test_profile_load_reads_what_profile_export_json_writes(run, folder, store):
    assert run("--import", next(p.stem for p in folder.glob("ops_runners_*.py")),
               "profile", "load", "site.zcml")[0] == 0
    code, uid, err = run("--site", "shop", "crons", "add", "local", "*/5 * * * *",
                         "--environ", '{"depth": 2}', "--timezone", "Europe/Paris")
    assert code == 0, err
    run("--site", "shop", "crons", "add", "local", "@daily", "--uid", "daily")
    run("--site", "shop", "crons", "disable", "daily")
    run("--site", "shop", "crontab", "disable")
    assert run("--site", "shop", "profile", "export", "--format", "json",
               "-o", "shop.json")[0] == 0
    other = f"sqlite:///{folder / 'other.db'}"
    assert cli.main(["--store", other, "--site", "copy", "profile", "load", "shop.json"]) == 0
    kits = [cronkit.Cronkit(store=url) for url in (store, other)]
    try:
        exported, loaded = kits[0].site("shop").crontab, kits[1].site("copy").crontab
        assert loaded.similar(exported)
        assert loaded.activated is False and loaded.crons["daily"].activated is False
        assert loaded.crons[uid.strip()].environ == {"depth": 2}
        # loaded again: the same crons, edited in place, nothing added
        assert cli.main(["--store", other, "--site", "copy", "profile", "load",
                         "shop.json"]) == 0
        assert kits[1].site("copy").crontab.similar(exported)
    finally:
        for kit in kits:
            kit.close()


def test_profile_load_of_a_bad_json_file_is_one_line_naming_it(run, folder):
    (folder / "bad.json").write_text('{"crons": [{"uid": "x", "name": "n"}]}')
    code, _, err = run("profile", "load", "bad.json")
    assert code == 2
    assert one_error(err).startswith("cronkit: error: bad.json")
    assert "periodicity" in err
    (folder / "notes.txt").write_text("")
    code, _, err = run("profile", "load", "notes.txt")
    assert code == 2
    assert one_error(err) == ("cronkit: error: unknown profile type 'notes.txt': expected a "
                              ".zcml, a crons .xml or a crontab .json file (profile export "
                              "--format json)")


# -- stores -------------------------------------------------------------------------------


def test_a_one_shot_command_on_an_unreachable_postgresql_fails_soon_without_the_password(
        capsys):
    url = f"postgresql://cronkit:s3cret@127.0.0.1:{free_port()}/cronkit"   # a closed port
    start = time.monotonic()
    code = cli.main(["--store", url, "crons", "list"])
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 2
    line = one_error(err)
    assert line.startswith(f"cronkit: error: cannot open store "
                           f"'{url.replace('s3cret', '***')}'")
    assert f"in {ONE_SHOT_RETRY:g} s)" in line and "s3cret" not in err
    assert elapsed < 45    # not the minute a worker retries for (a generous bound)


def test_long_running_commands_keep_the_stores_own_retries(tmp_path):
    url = "postgresql://cronkit@127.0.0.1:1/cronkit"
    args = cli.build_parser().parse_args(["--store", url, "worker"])
    assert Context(args, sys.stdout, sys.stderr)._open_store() == url   # retry_for 60
    args = cli.build_parser().parse_args(["--store", url, "jobs", "list"])
    assert Context(args, sys.stdout, sys.stderr).one_shot


@pytest.mark.parametrize("url, message", [
    ("sqlite://relative.db", "invalid store URL 'sqlite://relative.db': 'relative.db' "
                             "would be a host; a SQLite store URL is sqlite:///relative.db "
                             "(three slashes: a path from the current folder) or "
                             "sqlite:////abs/path.db (four: an absolute path)"),
    ("sqlite:///", "invalid store URL 'sqlite:///': no file path; a SQLite store URL is "
                   "sqlite:///relative.db (three slashes: a path from the current folder) "
                   "or sqlite:////abs/path.db (four: an absolute path)"),
    ("mysql://x/y", "unknown store scheme 'mysql' in 'mysql://x/y': known schemes are "
                    "memory, postgres, postgresql, sqlite"),
    ("cronkit.db", "invalid store URL 'cronkit.db': expected e.g. sqlite:///cronkit.db, "
                   "memory:// or postgresql://user@host/db"),
])
def test_a_malformed_store_url_says_what_it_should_look_like(folder, capsys, url, message):
    assert cli.main(["--store", url, "crons", "list"]) == 2
    assert one_error(capsys.readouterr().err) == f"cronkit: error: {message}"
    assert not (folder / "sqlite:").exists()


# -- ports --------------------------------------------------------------------------------


def test_the_console_script_refuses_a_port_out_of_range_in_one_line(folder):
    done = script(folder, "web", "--port", "99999")
    assert done.returncode == 2
    assert one_error(done.stderr) == ("cronkit: error: argument --port: expected an integer "
                                      "<= 65535, got '99999'")


@pytest.mark.parametrize("argv", [["run", "--port", "65536"], ["worker", "--metrics-port", "-1"],
                                  ["worker", "--health-port", "http"]])
def test_every_port_option_refuses_what_is_not_a_port(run, argv):
    code, _, err = run(*argv)
    assert code == 2
    assert one_error(err).startswith(f"cronkit: error: argument {argv[1]}: expected an integer")


# -- sites --------------------------------------------------------------------------------


def test_a_listing_of_a_site_the_store_does_not_know_says_so(run):
    assert run("--site", "shop", "crons", "add", "nothing", "@daily")[0] == 0   # creates
    for argv in (["crons", "list"], ["jobs", "list"], ["jobs", "paused"],
                 ["profile", "export"]):
        code, out, err = run("--site", "shpo", *argv)
        assert (code, out) == (2, "")
        line = one_error(err)
        assert line.startswith("cronkit: error: no site 'shpo' in store 'sqlite:///")
        assert line.endswith("(--site): no crontab, job or pause of that site; the sites it "
                             "knows: 'shop'")
    assert run("crons", "list")[0] == 0          # the default site is always there
    assert run("--site", "shop", "crons", "list")[0] == 0


def test_a_site_with_jobs_only_or_paused_is_known(run):
    code, _, err = run("--site", "queue", "jobs", "pause")
    assert code == 0, err
    assert run("--site", "queue", "jobs", "list")[0] == 0
    assert run("--site", "queue", "jobs", "paused")[1] == "site 'queue': the whole queue\n"


# -- jobs watch off a terminal ---------------------------------------------------------


def test_jobs_watch_off_a_terminal_writes_plain_lines_ending_with_a_newline(
        run, folder, store, monkeypatch):
    kit = cronkit.Cronkit(store=store)
    try:
        @cronkit.runner("steps")
        def steps(job):
            for i in range(2):
                job.update(progress=50 * (i + 1), text=f"step {i + 1}")

        job = kit.site().submit("steps")
        monkeypatch.setattr(cli, "_sleep", lambda seconds: kit.run_pending())
        code, out, err = run("jobs", "watch", str(job.id))
    finally:
        cronkit.unregister_runner("steps")
        kit.close()
    assert code == 0
    assert out == f"job {job.id} (steps): success\n"
    assert err == f"job {job.id} pending 0%\njob {job.id} success 100%  step 2\n"
    assert json.dumps(err).count("\\r") == 0


# -- the deployment page's workers run something ------------------------------------------


def test_the_deployment_pages_workers_know_the_runner_of_every_cron_they_load(
        folder, store, capsys):
    from cronkit.cli.profiles import load_profiles
    from cronkit.runner import runner_factory
    root = Path(__file__).resolve().parent.parent
    text = (root / "docs" / "deployment.rst").read_text()
    commands = re.findall(r"^\s*\$ (cronkit worker .*)$", text, re.MULTILINE)
    assert len(commands) >= 3
    shutil.copytree(root / "examples", folder / "examples",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for command in commands:
        argv = shlex.split(command, comments=True)
        args = cli.build_parser().parse_args(["--store", store, *argv[1:]])
        ctx = Context(args, sys.stdout, sys.stderr)
        try:
            assert load_profiles(ctx), f"{command}: loads no profile, knows no runner"
            crons = list(ctx.kit.site("default").crontab.crons.values())
            assert crons, f"{command}: no cron to run"
            for cron in crons:
                assert runner_factory(ctx.kit.site("default"), cron.name) is not None, \
                    f"{command}: no runner {cron.name!r}: its cron would log NOTRUN"
        finally:
            ctx.close()
            cronkit.unregister_runner("heartbeat")
            runners = sys.modules.get("examples.runners")
            if runners is not None:
                cronkit.unsubscribe(cronkit.FinishedCronJobEvent, runners.noted)
    # and the module the Celery workers import registers that runner
    env = env_of(folder)
    done = subprocess.run([*script_command("cronkit"), "--import", "examples.jobs", "types",
                           "heartbeat"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert "CRONKIT_IMPORTS=examples.jobs" in text


def test_store_urls_are_shown_without_their_password():
    from cronkit.cli.common import shown_store
    from cronkit.stores.postgres import hide_password
    url = "postgresql://cronkit:s3cret@db.example.org/cronkit"
    assert shown_store(url) == "'postgresql://cronkit:***@db.example.org/cronkit'"
    assert shown_store(url, quoted=False) == "postgresql://cronkit:***@db.example.org/cronkit"
    assert shown_store("sqlite:///cronkit.db") == "'sqlite:///cronkit.db'"
    assert hide_password("store 'not a url'", "not a url") == "store 'not a url'"


def test_a_json_profile_over_the_crons_limit_is_refused_whole(run, folder, monkeypatch):
    import cronkit.profiles
    (folder / "two.json").write_text(json.dumps({"crons": [
        {"uid": uid, "name": "local", "periodicity": "@daily"} for uid in ("a", "b")]}))
    monkeypatch.setattr(cronkit.profiles, "MAX_PROFILE_CRONS", 1)
    code, _, err = run("profile", "load", "two.json")
    assert code == 2
    assert one_error(err) == ("cronkit: error: two.json: more than 1 crons: over the limit "
                              "for a profile (cronkit.profiles.MAX_PROFILE_CRONS)")
    assert run("crons", "list", "--json")[1].count('"uid"') == 0
