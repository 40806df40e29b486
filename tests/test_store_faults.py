"""Storage faults: a worker whose store fails backs off with one line per back-off and
works again by itself once the fault clears.

The full disk is real where the test may mount a small tmpfs (as root, as in CI);
elsewhere the SQLite store is made to raise the error SQLite gives on a full disk.
"""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import pytest

import cronkit
from cronkit import Status
from cronkit.exceptions import StoreError
from cronkit.stores.sql import SQLStore


class Ok(cronkit.Runner):
    def run(self):
        return None


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)


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
