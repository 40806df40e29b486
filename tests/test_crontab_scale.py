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


# -- how a big sync is written (ISSUE 16): the same rows, fewer steps ---------------------


def test_a_sync_queues_its_firings_in_one_transaction(kit, monkeypatch):
    from cronkit.stores import bulk
    calls = []
    insert = bulk.insert_jobs

    def counted(store, rows, ignore_duplicates=False):
        calls.append(rows)
        return insert(store, rows, ignore_duplicates)

    monkeypatch.setattr("cronkit.stores.jobqueries.insert_jobs", counted)
    fill(kit.site("big"), 5_000)
    assert len(calls) == 1 and isinstance(calls[0], bulk.FiringRows)
    assert kit.store.count_jobs(status="pending") == 5_000


def test_a_sync_heard_by_a_job_queued_receiver_queues_in_batches_and_tells_of_each(kit):
    heard = []

    def receiver(event):
        heard.append(event.job.cron_uid)

    cronkit.JobQueuedEvent.signal.connect(receiver, weak=False)
    try:
        crontab = fill(kit.site("big"), 4_500)
    finally:
        cronkit.JobQueuedEvent.signal.disconnect(receiver)
    assert sorted(heard) == sorted(crontab.crons)


def test_firings_are_queued_in_due_order_and_claimed_in_the_crontabs_order_at_one_instant(kit):
    site = kit.site("big")
    crontab = site.crontab
    # Two expressions of the same instants (12:00), one later (12:05), interleaved.
    for i, expr in enumerate(["5 12 * * *", "0 12 * * *", "0 12 * * 0-6", "5 12 * * *",
                              "0 12 * * *", "0 12 * * 0-6"]):
        crontab.add_cron(cronkit.Cron(name="noop", periodicity=expr, uid=f"c{i}"))
    crontab.save()
    jobs = kit.store.list_jobs(site="big", oldest_first=True)
    assert [j["cron_uid"] for j in jobs] == ["c1", "c2", "c4", "c5", "c0", "c3"]
    claimed = kit.store.claim(datetime(2024, 1, 1, 13, tzinfo=UTC), 10, "w")
    assert [j["cron_uid"] for j in claimed] == ["c1", "c2", "c4", "c5", "c0", "c3"]


def test_firing_rows_iterate_as_the_job_rows_of_add_jobs(kit):
    from cronkit.stores.bulk import FiringRows
    cron = cronkit.Cron(name="noop", periodicity="0 * * * *", environ={"a": 1}, user="bob")
    due = datetime(2024, 1, 1, 1, tzinfo=UTC)
    (row,) = FiringRows("big", T0, [(cron, due, None)])
    assert row == {"site": "big", "type": "noop", "name": "noop", "status": "pending",
                   "priority": 0, "payload": {"a": 1}, "run_after": due, "created_at": T0,
                   "cron_uid": cron.uid, "fire_at": None, "signature": cron.signature,
                   "user": "bob", "progress": 0, "status_text": "", "attempts": 0,
                   "canceled": False}
    # Laid out by the store from the crons, the rows read back as add_jobs' would.
    (job_id,) = kit.store.add_jobs(FiringRows("big", T0, [(cron, due, due)]),
                                   ignore_duplicates=True)
    stored = kit.store.get_job(job_id)
    assert (stored["payload"], stored["user"], stored["fire_at"], stored["run_after"],
            stored["signature"], stored["created_at"], stored["canceled"]) == \
        ({"a": 1}, "bob", due, due, cron.signature, T0, False)
    assert kit.store.add_jobs(FiringRows("big", T0, [(cron, due, due)]),
                              ignore_duplicates=True) == []     # the same firing: skipped
    assert kit.store.add_jobs(FiringRows("big", T0, []), ignore_duplicates=True) == []
    # A forced run (no scheduled time) and a plain insert (not skipping) of firings.
    (forced,) = kit.store.add_jobs(FiringRows("big", T0, [(cron, T0, None)]),
                                   ignore_duplicates=True)
    assert kit.store.get_job(forced)["fire_at"] is None
    (other,) = kit.store.add_jobs(FiringRows("big", T0, [(cron, due, None)]))
    assert kit.store.get_job(other)["payload"] == {"a": 1}


def test_the_collector_is_paused_during_a_big_save_and_resumed_after(kit, monkeypatch):
    from cronkit.components import crontab_registry_manager as crm
    seen = []
    save_crontab = type(kit.store).save_crontab

    def watched(self, *args, **kwargs):
        seen.append(gc.isenabled())
        return save_crontab(self, *args, **kwargs)

    monkeypatch.setattr(type(kit.store), "save_crontab", watched)
    fill(kit.site("big"), crm.PAUSE_AT)
    assert seen == [False] and gc.isenabled()
    crontab = kit.site("big").crontab
    cron = next(iter(crontab.crons.values()))
    cron.environ = {"x": 1}
    cron.save()       # a save of one cron: the collector runs as ever
    assert seen == [False, True] and gc.isenabled()


def test_collector_pauses_nest_and_leave_a_collector_that_was_off_off():
    from cronkit.components.crontab_registry_manager import collector_paused
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    with collector_paused(size=1):
        assert gc.isenabled()


def test_cron_records_and_stored_crons_give_their_values_at_once(kit):
    site = kit.site("big")
    crontab = site.crontab
    crontab.add_cron(cronkit.Cron(name="noop", periodicity="0 * * * *", uid="a",
                                  environ={"k": [1]}))
    (record,) = crontab.changes().upserts
    assert record.row == tuple(record[k] for k in record.KEYS)
    crontab.save()
    (stored,) = kit.store.load_crontab("big")["crons"]
    names = ("uid", "environ", "logs", "position", "activated")
    assert stored.fields(names) == [stored[n] for n in names] == ["a", {"k": [1]}, [], 1.0, True]
    assert stored.fields(("uid",)) == ["a"]


def test_cron_rows_of_any_mapping_are_written_alike():
    from cronkit.model import CronRecord
    from cronkit.stores.crontabs import _UPSERT_COLUMNS, _upsert_args
    cron = cronkit.Cron(name="noop", periodicity="0 * * * *", uid="a", environ={"k": 1})
    record = CronRecord((*cron._definition_values(), 2.0))

    class Partial(dict):      # KEYS and a row, but not every column: read key by key
        KEYS = ("uid",)
        row = property(lambda self: (self["uid"],))

    as_dict = dict(record)
    lacking = {k: v for k, v in as_dict.items() if k != "expanded"}
    (from_record, from_dict, from_partial, from_lacking) = _upsert_args(
        "big", [record, as_dict, Partial(as_dict), lacking])
    assert from_record == from_dict == from_partial
    assert from_record[from_record.index('{"k": 1}')] == '{"k": 1}'
    expanded = _UPSERT_COLUMNS.index("expanded")
    assert from_lacking[expanded] is None
    assert from_lacking[:expanded] + from_lacking[expanded + 1:] == \
        from_record[:expanded] + from_record[expanded + 1:]


def test_a_firing_due_after_its_scheduled_time_keeps_both(kit):
    from cronkit.stores.bulk import FiringRows
    cron = cronkit.Cron(name="noop", periodicity="0 * * * *")
    due, scheduled = datetime(2024, 1, 1, 2, tzinfo=UTC), datetime(2024, 1, 1, 1, tzinfo=UTC)
    (job_id,) = kit.store.add_jobs(FiringRows("big", T0, [(cron, due, scheduled)]),
                                   ignore_duplicates=True)
    stored = kit.store.get_job(job_id)
    assert (stored["run_after"], stored["fire_at"]) == (due, scheduled)


def test_a_crontab_reads_back_in_order_alone_in_its_store_or_beside_another(kit):
    def uids(site):
        return [row["uid"] for row in kit.store.load_crontab(site)["crons"]]

    first = fill(kit.site("big"), 50)
    assert uids("big") == list(first.crons)          # the only site: a scan of the table
    kit.site("other").register_runner(Noop, name="noop")
    second = fill(kit.site("other"), 30)
    assert uids("big") == list(first.crons)          # two sites: through the index
    assert uids("other") == list(second.crons)
