"""A big crontab: what a loaded crontab holds per cron, and that a save, a sync and a
restore of many crons keep the crontab semantics (speed is measured by the bench,
never asserted here; memory is deterministic enough to be)."""

from __future__ import annotations

import gc
import sqlite3
import tracemalloc
from datetime import UTC, datetime

import pytest

import cronkit
from cronkit.interfaces import ICrontabRegistryManager

T0 = datetime(2024, 1, 1, 0, 0, 30, tzinfo=UTC)
N = 2_000
#: ISSUE 16: memory per cron held at most 1.5 KB.
MAX_BYTES_PER_CRON = 1536


class Noop(cronkit.Runner):
    def run(self):
        return None


def periodicity(i: int) -> str:
    return f"{i % 60} {(i // 60) % 24} * * *"


@pytest.fixture
def kit(tmp_path):
    kit = cronkit.Cronkit(store=f"sqlite:///{tmp_path}/cronkit.db", clock=cronkit.FakeClock(T0))
    kit.site("big").register_runner(Noop, name="noop")
    yield kit
    kit.close()


def fill(site, n=N):
    crontab = site.crontab
    for i in range(n):
        crontab.add_cron(cronkit.Cron(name="noop", periodicity=periodicity(i)))
    crontab.save()
    return crontab


def held_bytes(make):
    """The bytes still allocated after ``make()``, with what it returned alive."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        made = make()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert made is not None
    return after - before


def test_a_loaded_crontab_holds_at_most_1_5_kb_per_cron(kit):
    site = kit.site("big")
    fill(site)
    manager = site.registry.getAdapter(site, ICrontabRegistryManager)
    manager.load()   # every per-process cache warm: only the crontab is counted
    size = held_bytes(manager.load)
    assert size / N <= MAX_BYTES_PER_CRON, f"{size / N:.0f} bytes per cron"


def test_a_built_crontab_holds_at_most_1_5_kb_per_cron(kit):
    def build():
        crontab = cronkit.Crontab()
        for i in range(N):
            crontab.add_cron(cronkit.Cron(name="noop", periodicity=periodicity(i)))
        return crontab

    build()
    size = held_bytes(build)
    assert size / N <= MAX_BYTES_PER_CRON, f"{size / N:.0f} bytes per cron"


def test_saving_many_crons_queues_one_job_each_at_its_next_time(kit):
    site = kit.site("big")
    crontab = fill(site)
    jobs = {job["cron_uid"]: job for job in kit.store.list_jobs(site="big", status="pending")}
    assert len(jobs) == N
    for uid, cron in crontab.crons.items():
        assert jobs[uid]["run_after"] == cron.next_after(T0)
        assert jobs[uid]["signature"] == cron.signature


def test_saving_many_crons_twice_changes_nothing(kit):
    site = kit.site("big")
    crontab = fill(site)
    before = sorted(j["id"] for j in kit.store.list_jobs(site="big", status="pending"))
    crontab.save()
    after = sorted(j["id"] for j in kit.store.list_jobs(site="big", status="pending"))
    assert after == before


def test_restore_brings_back_every_wiped_cron_job(kit, tmp_path):
    site = kit.site("big")
    crontab = fill(site)
    expected = {uid: cron.next_after(T0) for uid, cron in crontab.crons.items()}
    with sqlite3.connect(tmp_path / "cronkit.db") as conn:   # the restart wiped them
        conn.execute("DELETE FROM cronkit_jobs WHERE cron_uid IS NOT NULL")
    fresh = cronkit.Cronkit(store=f"sqlite:///{tmp_path}/cronkit.db", clock=cronkit.FakeClock(T0))
    try:
        fresh.restore()
        jobs = fresh.store.list_jobs(site="big", status="pending")
        assert {j["cron_uid"]: j["run_after"] for j in jobs} == expected
    finally:
        fresh.close()


def test_a_reloaded_crontab_shows_what_was_saved(kit):
    site = kit.site("big")
    crontab = fill(site, 300)
    crontab.by_uid(next(iter(crontab.crons))).environ = {"limit": 3}
    crontab.save()
    manager = site.registry.getAdapter(site, ICrontabRegistryManager)
    loaded = manager.load()
    assert loaded.similar(crontab) and not loaded.dirty
    first = next(iter(loaded.crons.values()))
    assert first.environ == {"limit": 3}
    first.environ["limit"] = 4                  # each cron holds its own environ
    assert all(c.environ == {} for c in list(loaded.crons.values())[1:])
