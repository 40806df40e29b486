"""Storage faults: a worker whose store fails backs off with one line per back-off and
works again by itself once the fault clears; a worker whose store file is deleted or
replaced stops, with one line, instead of working on a ghost.

The full disk is real where the test may mount a small tmpfs (as root, as in CI);
elsewhere the SQLite store is made to raise the error SQLite gives on a full disk.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

import cronkit
from cronkit import Status
from cronkit.exceptions import StoreError, StoreGone
from cronkit.stores import open_store
from cronkit.stores.sql import SQLStore
from tests.children import child_env, command
from tests.helpers import wait_for
from tests.servers import free_port

NOW = datetime(2008, 1, 1, 1, 3, tzinfo=UTC)


class Ok(cronkit.Runner):
    def run(self):
        return None


class _FullDiskStore(SQLStore):
    """SQLite whose writes fail as on a full disk while ``full`` is set (for machines
    where the test cannot mount a small file system)."""

    full = False

    def claim(self, *args, **kwargs):
        if self.full:
            raise StoreError(f"store {self.url!r}: database or disk is full")
        return super().claim(*args, **kwargs)


class Disk:
    """A small file system holding the store, that can be filled and freed."""

    def __init__(self, root: Path):
        self.root = root
        self.mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs",
                                       str(root)], capture_output=True).returncode == 0
        self.store: _FullDiskStore | None = None

    def open_store(self) -> SQLStore:
        url = f"sqlite:///{self.root / 'cronkit.db'}"
        if self.mounted:
            return SQLStore(url)
        self.store = _FullDiskStore(url)
        return self.store

    def fill(self) -> None:
        if not self.mounted:
            assert self.store is not None
            self.store.full = True
            return
        for name, chunk in (("filler", 65536), ("filler-tail", 512)):
            try:
                with open(self.root / name, "wb") as f:
                    while True:
                        f.write(b"\0" * chunk)
                        f.flush()
            except OSError:
                pass

    def free(self) -> None:
        if not self.mounted:
            assert self.store is not None
            self.store.full = False
            return
        for name in ("filler", "filler-tail"):
            (self.root / name).unlink(missing_ok=True)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.root)], check=False)


@pytest.fixture
def disk(tmp_path):
    root = tmp_path / "disk"
    root.mkdir()
    disk = Disk(root)
    yield disk
    disk.close()


def test_on_a_full_disk_the_worker_backs_off_and_recovers_when_space_is_freed(disk, caplog):
    kit = cronkit.Cronkit(store=disk.open_store())
    site = kit.site("s")
    site.register_runner(Ok, name="ok")
    jobs = [site.submit("ok") for _ in range(15)]
    disk.fill()
    caplog.set_level(logging.WARNING, logger="cronkit.worker")
    worker = kit.worker(concurrency=1, poll_interval=0.05, max_backoff=0.2).start()
    try:
        wait_for(lambda: worker.failures >= 4, what="four failed ticks")
        assert all(site.jobs.get(j.id).status == Status.PENDING for j in jobs)
        disk.free()
        wait_for(lambda: all(site.jobs.get(j.id).status == Status.SUCCESS for j in jobs),
                 what="every job run once space was freed")
    finally:
        worker.stop()
        kit.close()
    lines = [r for r in caplog.records if r.name == "cronkit.worker"]
    failed = [r for r in lines if "disk is full" in r.getMessage()]
    assert len(failed) >= 4
    assert all(r.exc_info is None for r in failed)              # one line, no traceback
    assert any("working again" in r.getMessage() for r in lines)
    # The back-off grew from the poll interval to its cap: no line per poll.
    assert "trying again in 0.2 s" in failed[-1].getMessage()
    assert "trying again in 0.05 s" in failed[0].getMessage()


def test_a_tick_that_fails_backs_off_doubling_to_the_cap(tmp_path, clock):
    store = _FullDiskStore(f"sqlite:///{tmp_path / 'cronkit.db'}")
    kit = cronkit.Cronkit(store=store, clock=clock)
    worker = kit.worker(concurrency=1, poll_interval=1.0, max_backoff=5.0)
    worker.executor.start(kit)
    try:
        store.full = True
        assert [worker.step(clock.now()) for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
        store.full = False
        assert worker.step(clock.now()) <= 1.0 and worker.failures == 0
    finally:
        worker.executor.shutdown()
        kit.close()


def test_an_unexpected_error_is_logged_with_its_traceback_once(tmp_path, clock, caplog,
                                                                monkeypatch):
    kit = cronkit.Cronkit(store=f"sqlite:///{tmp_path / 'cronkit.db'}", clock=clock)
    worker = kit.worker(concurrency=1, poll_interval=1.0)
    worker.executor.start(kit)

    def broken(now=None):
        raise RuntimeError("a bug")
    monkeypatch.setattr(worker, "tick", broken)
    caplog.set_level(logging.WARNING, logger="cronkit.worker")
    try:
        worker.step()
        worker.step()
    finally:
        worker.executor.shutdown()
        kit.close()
    records = [r for r in caplog.records if r.name == "cronkit.worker"]
    assert [r.exc_info is not None for r in records] == [True, False]


# -- a store file deleted or replaced under a worker ---------------------------------------


def delete_store(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def replace_store(path: Path) -> None:
    """Put another store where ``path`` is (a restore from a backup would)."""
    other = path.with_name("other.db")
    open_store(f"sqlite:///{other}").close()
    os.replace(other, path)


@pytest.mark.parametrize("fault, said", [(delete_store, "was deleted"),
                                         (replace_store, "was replaced by another file")])
def test_a_store_file_deleted_or_replaced_under_a_worker_stops_it_with_one_line(
        tmp_path, caplog, fault, said):
    path = tmp_path / "cronkit.db"
    kit = cronkit.Cronkit(store=f"sqlite:///{path}")
    site = kit.site("s")
    site.register_runner(Ok, name="ok")
    first = site.submit("ok")
    caplog.set_level(logging.INFO, logger="cronkit.worker")
    worker = kit.worker(concurrency=1, poll_interval=0.05, check_interval=0.05).start()
    try:
        wait_for(lambda: site.jobs.get(first.id).status == Status.SUCCESS, what="a first job run")
        fault(path)
        wait_for(lambda: not worker._thread.is_alive(), what="the worker stopped")
    finally:
        worker.stop()
        kit.close()
    assert isinstance(worker.stopped_by, StoreGone) and said in str(worker.stopped_by)
    lines = [r for r in caplog.records if r.name == "cronkit.worker" and said in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR and lines[0].exc_info is None
    assert str(path) in lines[0].getMessage()
    assert worker.failures == 0   # stopped at once, no back-off


def test_a_tick_on_a_deleted_store_raises_store_gone_and_the_step_stops_the_worker(tmp_path,
                                                                                     clock):
    path = tmp_path / "cronkit.db"
    kit = cronkit.Cronkit(store=f"sqlite:///{path}", clock=clock)
    worker = kit.worker(concurrency=1, check_interval=0)
    worker.executor.start(kit)
    try:
        assert worker.tick() >= 0
        delete_store(path)
        with pytest.raises(StoreGone, match="was deleted"):
            worker.tick()
        assert worker.step() == 0.0 and worker._stop.is_set() and worker.failures == 0
    finally:
        worker.executor.shutdown()
        kit.close()
    assert not path.exists()   # the worker made no new, empty file in its place


def test_the_store_is_checked_at_most_every_check_interval(tmp_path, clock, monkeypatch):
    kit = cronkit.Cronkit(store=f"sqlite:///{tmp_path / 'cronkit.db'}", clock=clock)
    worker = kit.worker(concurrency=1, check_interval=3600)
    worker.executor.start(kit)
    checks = []
    monkeypatch.setattr(kit.store, "check", lambda: checks.append(1))
    try:
        for _ in range(5):
            worker.tick()
    finally:
        worker.executor.shutdown()
        kit.close()
    assert checks == [1]


def test_run_forever_raises_the_store_gone_that_stopped_it(tmp_path):
    path = tmp_path / "cronkit.db"
    kit = cronkit.Cronkit(store=f"sqlite:///{path}")
    worker = kit.worker(concurrency=1, poll_interval=0.05)
    raised: list[BaseException] = []

    def serve():
        try:
            worker.run_forever(install_signals=False)
        except BaseException as exc:  # noqa: BLE001 - what it raised is the point
            raised.append(exc)

    try:
        delete_store(path)
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        thread.join(60)
        if thread.is_alive():
            worker.stop()
            pytest.fail("the worker went on working on a deleted store")
    finally:
        kit.close()
    [exc] = raised
    assert isinstance(exc, StoreGone) and "was deleted" in str(exc)


def test_cronkit_worker_exits_non_zero_with_one_line_when_its_store_file_is_deleted(tmp_path):
    path = tmp_path / "cronkit.db"
    url = f"sqlite:///{path}"
    open_store(url).close()
    env = child_env()
    env.pop("CRONKIT_STORE", None)
    proc = subprocess.Popen(command("cronkit") + ["worker", "--store", url, "--poll", "0.1"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        started = proc.stderr.readline()
        assert "cronkit worker on" in started, started
        delete_store(path)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    [line] = [x for x in err.splitlines() if x.startswith("cronkit: error:")]
    assert "was deleted" in line and str(path) in line


def test_cronkit_run_stops_its_dashboard_too_when_its_store_file_is_deleted(tmp_path):
    path = tmp_path / "cronkit.db"
    url = f"sqlite:///{path}"
    open_store(url).close()
    env = child_env()
    env.pop("CRONKIT_STORE", None)
    proc = subprocess.Popen(command("cronkit") + ["run", "--store", url, "--poll", "0.1",
                                                  "--port", str(free_port())],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        started = ""
        while "dashboard on" not in started:
            line = proc.stderr.readline()
            assert line, f"cronkit run ended early: {started}"
            started += line
        delete_store(path)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    [line] = [x for x in err.splitlines() if x.startswith("cronkit: error:")]
    assert "was deleted" in line


def test_a_store_whose_file_was_deleted_never_makes_a_new_one(tmp_path):
    path = tmp_path / "cronkit.db"
    store = open_store(f"sqlite:///{path}")
    try:
        [job_id] = store.add_jobs([{"site": "s", "type": "t", "name": "t", "status": "pending",
                                    "payload": {}, "run_after": NOW, "created_at": NOW}])
        delete_store(path)
        with pytest.raises(StoreGone, match="was deleted"):
            store.check()
        store.after_fork()   # its open connections go: the next one would open the path
        with pytest.raises(StoreGone, match="was deleted"):
            store.get_job(job_id)
        with pytest.raises(StoreGone, match="was deleted"):
            store.add_jobs([{"site": "s", "type": "t", "name": "t", "status": "pending",
                             "payload": {}, "run_after": NOW, "created_at": NOW}])
        assert not path.exists()
    finally:
        store.close()


def test_a_submitter_opening_a_deleted_store_starts_a_new_one_unless_mode_rw(tmp_path, caplog):
    path = tmp_path / "cronkit.db"
    open_store(f"sqlite:///{path}").close()
    delete_store(path)
    with pytest.raises(StoreError, match="mode=rw opens an existing store only"):
        open_store(f"sqlite:///{path}?mode=rw")
    assert not path.exists()
    caplog.set_level(logging.INFO, logger="cronkit.stores")
    open_store(f"sqlite:///{path}").close()   # a first start: a new, empty store (logged)
    assert path.exists()
    assert any("created a new, empty store" in r.getMessage() for r in caplog.records)
    again = open_store(f"sqlite:///{path}?mode=rw")
    again.close()
