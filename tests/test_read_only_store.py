"""Read-only stores can be read: a SQLite store whose file, or folder, cannot be written
(or one opened with ``mode=ro``) lists its crons and jobs, exports its crontab and shows
the dashboard; every write is refused with one clear ReadOnlyStore, and the dashboard
answers a form that would write with a 409 page (the API with a 409 JSON error).

The file or folder is made read-only for real: by a read-only bind mount when the tests
run as root (as in CI: chmod does not stop root), by chmod otherwise. Each test checks
that the store is read-only because of it (the proof that the read-only path runs).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest

import cronkit
from cronkit import cli
from cronkit.exceptions import ReadOnlyStore, StoreError
from cronkit.stores import open_store
from cronkit.web import create_app
from tests.children import child_env

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

START = datetime(2008, 1, 1, 1, 3, tzinfo=UTC)


class Ok(cronkit.Runner):
    """Notes that it ran."""

    def run(self):
        self.job.note("ran")


def _umount(target: Path) -> None:
    if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
        # Busy (a connection not yet collected): detached now, gone once it closes.
        subprocess.run(["umount", "-l", str(target)], check=True, capture_output=True)


class ReadOnly:
    """Makes files and folders read-only for this process, and undoes it."""

    def __init__(self) -> None:
        self._undo: list = []

    def make(self, target: Path) -> None:
        if os.geteuid() != 0:
            mode = target.stat().st_mode
            target.chmod(0o555 if target.is_dir() else 0o444)
            self._undo.append(lambda: target.chmod(mode))
            return
        bind = subprocess.run(["mount", "--bind", str(target), str(target)], capture_output=True,
                              text=True)
        if bind.returncode != 0:
            pytest.skip(f"root cannot bind-mount {target} read-only here: {bind.stderr.strip()}")
        self._undo.append(lambda: _umount(target))
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True,
                       capture_output=True)

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


@pytest.fixture
def read_only():
    made = ReadOnly()
    yield made
    made.undo()


def fill(url: str) -> dict:
    """Two crons (one with a log), a finished job, a pending one; closed cleanly."""
    kit = cronkit.Cronkit(store=url, clock=cronkit.FakeClock(START))
    try:
        site = kit.site("plone")
        site.register_runner(Ok, name="ok")
        crontab = site.crontab
        crontab.add_cron(cronkit.Cron(name="ok", periodicity="@yearly", uid="c1",
                                      environ={"k": "v"}))
        crontab.add_cron(cronkit.Cron(name="ok", periodicity="0 0 1 1 *", uid="c2",
                                      activated=False))
        crontab.save()
        crontab.by_uid("c1").log("WARN", ["a message"])
        crontab.save()
        done = site.submit("ok", {"n": 1}, name="done")
        kit.run_pending()
        later = site.submit("ok", name="later", delay=3600)
        return {"done": done.id, "later": later.id, "export": site.export_crons()}
    finally:
        kit.close()


def cli_out(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


READS = [("crons", "list"), ("crons", "list", "--logs"), ("jobs", "list"),
         ("profile", "export")]


@pytest.fixture(params=["file", "folder", "mode=ro"])
def ro(request, tmp_path, read_only, capsys):
    """A filled store made read-only by its file, its folder, or ``mode=ro``: (url,
    what fill() gave, the CLI's answers to READS on the writable store)."""
    folder = tmp_path / "store"
    folder.mkdir()
    path = folder / "cronkit.db"
    url = f"sqlite:///{path}"
    data = fill(url)
    data["cli"] = {argv: cli_out(capsys, "--store", url, "--site", "plone", *argv)
                   for argv in READS}
    assert not Path(f"{path}-wal").exists()   # closed cleanly
    data["kind"], data["path"] = request.param, path
    if request.param == "file":
        read_only.make(path)
    elif request.param == "folder":
        read_only.make(folder)
    else:
        url += "?mode=ro"
    return url, data


def test_the_store_is_read_only_because_of_its_file_folder_or_mode(ro):
    url, data = ro
    store = open_store(url)
    try:
        assert store.read_only is True
        if data["kind"] == "mode=ro":
            assert "opened read-only" in store._read_only_why
            assert os.access(data["path"], os.W_OK)       # the store refuses, not the file
        else:
            # (a folder mounted read-only makes its file read-only too)
            assert re.search(r"its (file|folder) '.*' is not writable", store._read_only_why)
            assert str(data["path"].parent) in store._read_only_why
            with pytest.raises(OSError):   # nothing can be written there, by anyone
                if data["kind"] == "file":
                    open(data["path"], "ab").close()
                else:
                    (data["path"].parent / "probe").touch()
            conn = sqlite3.connect(data["path"])
            try:
                with pytest.raises(sqlite3.OperationalError):
                    conn.execute("DELETE FROM cronkit_jobs")
            finally:
                conn.close()
        # A WAL database closed cleanly in a folder that cannot be written is read as
        # immutable (SQLite cannot make its -shm file there).
        assert store._file.immutable is (data["kind"] == "folder")
        assert store.count_jobs() == 3   # done, later, and the next firing of c1
    finally:
        store.close()


def test_crons_and_jobs_are_listed_and_the_crontab_exported(ro):
    url, data = ro
    kit = cronkit.Cronkit(store=url)
    try:
        site = kit.site("plone")
        assert list(site.crontab.crons) == ["c1", "c2"]
        assert site.crontab.by_uid("c1").logs[0].messages == ["a message"]
        statuses = {j.id: j.status for j in site.jobs.list()}
        assert statuses[data["done"]] == cronkit.Status.SUCCESS
        assert statuses[data["later"]] == cronkit.Status.PENDING
        assert [j.cron_uid for j in site.jobs.list(status="pending", cron="c1")] == ["c1"]
        assert [h["comment"] for h in site.jobs.get(data["done"]).history] == ["ran"]
        assert site.export_crons() == data["export"]
        assert kit.site_names() == ["plone"]
    finally:
        kit.close()


@pytest.mark.parametrize("argv", READS, ids=" ".join)
def test_the_cli_lists_and_exports_as_on_a_writable_store(ro, capsys, argv):
    url, data = ro
    assert cli_out(capsys, "--store", url, "--site", "plone", *argv) == data["cli"][argv]
    assert data["cli"][argv][0] == 0


def test_every_write_is_refused_with_one_clear_error_and_changes_nothing(ro, capsys):
    url, data = ro
    kit = cronkit.Cronkit(store=url)
    try:
        site = kit.site("plone")
        site.register_runner(Ok, name="ok")
        with pytest.raises(ReadOnlyStore, match=r"store .* is read-only \(.*\): writes are refused"):
            site.submit("ok")
        with pytest.raises(ReadOnlyStore, match="is read-only"):
            site.jobs.cancel(data["later"])
        site.crontab.by_uid("c2").activated = True
        with pytest.raises(ReadOnlyStore, match="is read-only"):
            site.crontab.save()
        with pytest.raises(ReadOnlyStore, match="is read-only"):
            site.import_crons('<crons><cron uid="c3" name="ok" periodicity="@daily"/></crons>')
    finally:
        kit.close()
    code, out, err = cli_out(capsys, "--store", url, "--site", "plone", "jobs", "cancel",
                             str(data["later"]))
    assert code == 2 and out == ""
    assert re.fullmatch(r"cronkit: error: store .* is read-only \(.*\): writes are refused, "
                        r"nothing was changed\n", err)
    assert cli_out(capsys, "--store", url, "--site", "plone", "jobs", "list") \
        == data["cli"][("jobs", "list")]


def test_a_worker_refuses_a_read_only_store(ro):
    url, _ = ro
    kit = cronkit.Cronkit(store=url)
    try:
        with pytest.raises(ReadOnlyStore, match="a worker cannot work on store .* read-only"):
            kit.worker(concurrency=1).start()
    finally:
        kit.close()


# -- the dashboard ---------------------------------------------------------------------


@pytest.fixture
def client(ro):
    url, data = ro
    kit = cronkit.Cronkit(store=url)
    kit.site("plone").register_runner(Ok, name="ok")
    yield TestClient(create_app(kit)), data
    kit.close()


def test_every_page_of_the_dashboard_renders(client):
    client, data = client
    for url in ("/", "/jobs", "/sites/plone", "/sites/plone/crons/c1", "/sites/plone/crons/new",
                "/sites/plone/crons/c1/edit", f"/sites/plone/jobs/{data['done']}",
                "/sites/plone/types", "/sites/plone/types/ok",
                f"/live?ids={data['done']},{data['later']}", "/api/v1/sites",
                "/api/v1/sites/plone/crontab", "/api/v1/sites/plone/crons",
                "/api/v1/sites/plone/crons/c1/logs", "/api/v1/sites/plone/jobs",
                f"/api/v1/sites/plone/jobs/{data['later']}", "/api/v1/sites/plone/types"):
        response = client.get(url)
        assert response.status_code == 200, (url, response.text[:300])
    assert "a message" in client.get("/sites/plone/crons/c1").text


def _csrf(client) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)


@pytest.mark.parametrize("url, form", [
    ("/sites/plone/crons/c1/run", {}),
    ("/sites/plone/crons/c1/disable", {}),
    ("/sites/plone/crontab", {"activated": "off"}),
    ("/sites/plone/types/ok", {"payload": "{}", "priority": "0"}),
])
def test_a_form_that_would_write_answers_409_with_the_store_s_message(client, url, form):
    client, _ = client
    response = client.post(url, data={**form, "csrf_token": _csrf(client)},
                           follow_redirects=False)
    assert response.status_code == 409, response.text[:300]
    assert "is read-only" in response.text and "writes are refused" in response.text


def test_the_api_answers_a_write_with_a_409_json_error(client):
    client, data = client
    for method, url, body in (("POST", "/api/v1/sites/plone/jobs", {"type": "ok"}),
                              ("POST", f"/api/v1/sites/plone/jobs/{data['later']}/cancel", None),
                              ("POST", "/api/v1/sites/plone/crons/c1/run", None),
                              ("PATCH", "/api/v1/sites/plone/crontab", {"activated": False})):
        response = client.request(method, url, json=body)
        assert response.status_code == 409, (url, response.text)
        assert "is read-only" in response.json()["error"]


# -- WAL files left behind, missing files ------------------------------------------------


KILLED_WRITER = """
import os, sys
from cronkit.stores import open_store
from datetime import datetime, timezone
store = open_store(sys.argv[1])
now = datetime(2008, 1, 1, tzinfo=timezone.utc)
store.add_jobs([{"site": "plone", "type": "ok", "name": "only in the wal", "status": "pending",
                 "payload": {}, "run_after": now, "created_at": now}])
os._exit(0)   # killed: its -wal and -shm files stay, the job only in the -wal
"""


def killed_writer(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "store"
    folder.mkdir()
    path = folder / "cronkit.db"
    url = f"sqlite:///{path}"
    open_store(url).close()
    subprocess.run([sys.executable, "-c", KILLED_WRITER, url], check=True, env=child_env(),
                   timeout=60)
    assert Path(f"{path}-wal").stat().st_size > 0 and Path(f"{path}-shm").exists()
    return path, url


def test_a_store_left_by_a_killed_writer_is_read_in_a_read_only_folder(tmp_path, read_only):
    path, url = killed_writer(tmp_path)
    read_only.make(path.parent)
    store = open_store(url)
    try:
        assert store.read_only and not store._file.immutable
        assert [j["name"] for j in store.list_jobs()] == ["only in the wal"]
    finally:
        store.close()


def test_a_wal_with_changes_but_no_shm_in_a_read_only_folder_says_why(tmp_path, read_only):
    path, url = killed_writer(tmp_path)
    Path(f"{path}-shm").unlink()
    read_only.make(path.parent)
    with pytest.raises(StoreError, match="holds changes not yet in the database"):
        open_store(url)


def test_a_read_only_store_is_never_created(tmp_path, read_only):
    path = tmp_path / "missing.db"
    with pytest.raises(StoreError, match="read-only: there is no file"):
        open_store(f"sqlite:///{path}?mode=ro")
    assert not path.exists()
    folder = tmp_path / "empty"
    folder.mkdir()
    read_only.make(folder)
    with pytest.raises(StoreError, match="cannot create store .* its folder .* is not writable"):
        open_store(f"sqlite:///{folder / 'cronkit.db'}")


def test_mode_rw_on_a_file_that_cannot_be_written_is_an_error(tmp_path, read_only):
    path = tmp_path / "cronkit.db"
    open_store(f"sqlite:///{path}").close()
    read_only.make(path)
    with pytest.raises(StoreError, match="with mode=rw: its file .* is not writable"):
        open_store(f"sqlite:///{path}?mode=rw")


def test_a_file_made_read_only_under_an_open_store_refuses_writes_as_read_only(tmp_path,
                                                                               read_only):
    path = tmp_path / "cronkit.db"
    store = open_store(f"sqlite:///{path}")
    try:
        store.ensure_site("plone")
        read_only.make(path)
        store.after_fork()   # the connections opened from now on meet the read-only file
        assert store.sites()[0]["name"] == "plone"
        now = datetime(2008, 1, 1, tzinfo=UTC)
        with pytest.raises(ReadOnlyStore, match="is read-only: attempt to write a readonly"):
            store.add_jobs([{"site": "plone", "type": "ok", "name": "x", "status": "pending",
                             "payload": {}, "run_after": now, "created_at": now}])   # hot path
        with pytest.raises(ReadOnlyStore, match="is read-only: attempt to write a readonly"):
            store.mark_site("plone")                                                 # SQLAlchemy
    finally:
        store.close()
