"""The store contract (ICrontabStore, IJobStore): every store passes all of it.

Each test runs on memory://, a SQLite file and a real PostgreSQL database (see
``conftest.py``); a new store backend is done when it passes this file.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from zope.interface.verify import verifyObject

import cronkit
from cronkit.exceptions import ReadOnlyStore
from cronkit.interfaces import ICrontabStore, IJobStore, IStore
from cronkit.stores import open_store
from cronkit.stores.base import OPERATIONS, READS, REPEATABLE, WRITES, Store
from cronkit.stores.sql import SCHEMA_VERSION

NOW = datetime(2008, 1, 1, 1, 3, tzinfo=UTC)


def row(site="plone", type="export", **fields):
    """A pending job row, due at NOW, as the queue manager writes it."""
    data = {"site": site, "type": type, "name": fields.pop("name", type), "status": "pending",
            "priority": 0, "payload": {}, "run_after": NOW, "created_at": NOW}
    data.update(fields)
    return data


def firing(uid="c1", at=NOW, site="plone"):
    return row(site=site, type="mycron", cron_uid=uid, fire_at=at, run_after=at, signature="sig")


def claim_all(store, now=NOW, worker="w:1"):
    return store.claim(now, 1000, worker, 1)


# -- schema ------------------------------------------------------------------------------


def test_a_new_store_is_at_the_current_schema_version(store):
    assert store.schema_version() == SCHEMA_VERSION


def test_reopening_a_store_keeps_its_schema_and_data(store, open_another):
    [job_id] = store.add_jobs([row()])
    other = open_another(store)
    assert other.schema_version() == SCHEMA_VERSION
    assert other.get_job(job_id)["type"] == "export"


# -- jobs --------------------------------------------------------------------------------


def test_a_job_reads_back_as_written(store):
    [job_id] = store.add_jobs([row(payload={"a": [1, "x"], "b": None}, priority=7, user="joe",
                                   timeout=2.5, run_after=NOW + timedelta(seconds=3))])
    got = store.get_job(job_id)
    assert got["id"] == job_id and got["status"] == "pending"
    assert got["payload"] == {"a": [1, "x"], "b": None}
    assert got["priority"] == 7 and got["user"] == "joe" and got["timeout"] == 2.5
    assert got["run_after"] == NOW + timedelta(seconds=3)
    assert got["run_after"].tzinfo is not None
    assert got["canceled"] is False and got["progress"] == 0 and got["attempts"] == 0


def test_add_jobs_returns_ids_in_submission_order(store):
    ids = store.add_jobs([row(name=f"j{i}") for i in range(5)])
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [store.get_job(i)["name"] for i in ids] == [f"j{i}" for i in range(5)]


def test_an_unknown_job_raises_no_such_job(store):
    with pytest.raises(cronkit.NoSuchJob):
        store.get_job(12345)
    with pytest.raises(cronkit.NoSuchJob):
        store.cancel_job(12345, NOW)
    with pytest.raises(cronkit.NoSuchJob):
        store.remove_job(12345)


def test_list_and_count_filter_by_site_cron_status_and_type(store):
    a, b, c = store.add_jobs([row(), row(site="other"), row(type="import")])
    store.add_jobs([firing("c1")])
    assert [j["id"] for j in store.list_jobs(site="plone", type="export")] == [a]
    assert [j["id"] for j in store.list_jobs(site="other")] == [b]
    assert [j["id"] for j in store.list_jobs(cron_uid="c1")][0] > c
    assert store.count_jobs(site="plone") == 3
    assert store.count_jobs(status=["pending", "running"]) == 4
    assert [j["id"] for j in store.list_jobs(site="plone", limit=2)][:1] == [c + 1]  # newest first


def test_update_job_and_append_text(store):
    [job_id] = store.add_jobs([row()])
    store.update_job(job_id, progress=40, status_text="half", payload={"k": 1})
    store.append_text(job_id, " and more")
    got = store.get_job(job_id)
    assert (got["progress"], got["status_text"], got["payload"]) == (40, "half and more", {"k": 1})


def test_add_unique_job_merges_into_the_pending_one(store):
    first, created = store.add_unique_job(row(unique_key="k1"))
    again, created_again = store.add_unique_job(row(unique_key="k1"))
    other, created_other = store.add_unique_job(row(unique_key="k2"))
    assert created and not created_again and created_other
    assert again == first and other != first


def test_unique_submissions_at_once_from_many_connections_make_one_job(store, open_another):
    stores = [store] + [open_another(store) for _ in range(3)]
    start = threading.Barrier(len(stores))
    results = []

    def submit(s):
        start.wait()
        for _ in range(10):
            results.append(s.add_unique_job(row(unique_key="same")))

    threads = [threading.Thread(target=submit, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({job_id for job_id, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1
    assert store.count_jobs(status="pending") == 1


# -- claim -------------------------------------------------------------------------------


def test_claim_takes_higher_priority_then_earlier_run_after_then_submission_order(store):
    early = NOW - timedelta(minutes=5)
    ids = store.add_jobs([
        row(name="low"), row(name="late-high", priority=5), row(name="early-high", priority=5,
                                                                 run_after=early),
        row(name="low-2"), row(name="early-low", run_after=early),
    ])
    claimed = [r["name"] for r in store.claim(NOW, 10, "w:1", 1)]
    assert claimed == ["early-high", "late-high", "early-low", "low", "low-2"]
    assert len(ids) == 5


def test_claim_one_at_a_time_follows_the_same_order(store):
    store.add_jobs([row(name="a"), row(name="b", priority=1), row(name="c")])
    names = [store.claim(NOW, 1, "w:1", 1)[0]["name"] for _ in range(3)]
    assert names == ["b", "a", "c"]
    assert store.claim(NOW, 1, "w:1", 1) == []


def test_claim_skips_jobs_not_yet_due_and_respects_the_limit(store):
    store.add_jobs([row(name="later", run_after=NOW + timedelta(seconds=1))])
    store.add_jobs([row(name=f"now{i}") for i in range(3)])
    assert [r["name"] for r in store.claim(NOW, 2, "w:1", 1)] == ["now0", "now1"]
    assert [r["name"] for r in store.claim(NOW, 5, "w:1", 1)] == ["now2"]
    assert store.claim(NOW, 0, "w:1", 1) == []
    assert [r["name"] for r in store.claim(NOW + timedelta(seconds=1), 5, "w:1", 1)] == ["later"]


def test_a_claimed_job_is_running_with_its_worker_pid_attempt_and_heartbeat(store):
    [job_id] = store.add_jobs([row()])
    [claimed] = store.claim(NOW, 1, "host:42", 42)
    got = store.get_job(job_id)
    for data in (claimed, got):
        assert data["status"] == "running" and data["worker"] == "host:42" and data["pid"] == 42
        assert data["started_at"] == NOW and data["heartbeat"] == NOW and data["attempts"] == 1


def test_next_due_is_the_earliest_pending_run_after(store):
    assert store.next_due() is None
    store.add_jobs([row(run_after=NOW + timedelta(hours=1)),
                    row(run_after=NOW + timedelta(minutes=1))])
    assert store.next_due() == NOW + timedelta(minutes=1)


def test_a_cron_job_is_not_claimed_while_a_job_of_the_same_cron_runs(store):
    store.add_jobs([firing("c1", NOW - timedelta(minutes=1))])
    [first] = store.claim(NOW, 5, "w:1", 1)
    store.add_jobs([firing("c1", NOW), firing("c2", NOW)])
    assert [r["cron_uid"] for r in store.claim(NOW, 5, "w:1", 1)] == ["c2"]
    store.finish_job(first["id"], "success", NOW)
    assert [r["cron_uid"] for r in store.claim(NOW, 5, "w:1", 1)] == ["c1"]


def test_two_claimers_never_get_the_same_job(store, open_another):
    """Two threads, each with its own store object on the one database (another worker
    process would have the same), drain 300 jobs: each job is claimed exactly once."""
    store.add_jobs([row(name=f"j{i}") for i in range(300)])
    stores = [store, open_another(store)]
    got: list[list[int]] = [[], []]
    start = threading.Barrier(2)
    errors = []

    def drain(n):
        try:
            start.wait()
            while True:
                rows = stores[n].claim(NOW, 1 + n * 2, f"w:{n}", n)
                if not rows:
                    return
                got[n].extend(r["id"] for r in rows)
        except Exception as exc:  # pragma: no cover - shown by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    everything = got[0] + got[1]
    assert len(everything) == len(set(everything)) == 300
    for job in store.list_jobs():
        assert job["status"] == "running" and job["attempts"] == 1


# -- paused queues and limits ------------------------------------------------------------


def test_a_paused_site_is_not_claimed_until_resumed(store):
    [paused, other] = store.add_jobs([row(), row(site="other")])
    store.pause("plone", None, NOW)
    assert [r["id"] for r in claim_all(store)] == [other]
    assert store.get_job(paused)["status"] == "pending"
    assert store.resume("plone", None) is True
    assert [r["id"] for r in claim_all(store)] == [paused]


def test_a_paused_type_is_not_claimed_while_the_others_of_the_site_are(store):
    [mail, export] = store.add_jobs([row(type="mail", priority=5), row()])
    store.pause("plone", "mail", NOW)
    assert [r["id"] for r in claim_all(store)] == [export]
    store.resume("plone", "mail")
    assert [r["id"] for r in claim_all(store)] == [mail]


def test_a_paused_cron_firing_waits_and_is_not_lost(store):
    [job_id] = store.add_jobs([firing("c1")])
    store.pause("plone", None, NOW)
    assert claim_all(store, now=NOW + timedelta(hours=1)) == []
    store.resume("plone", None)
    assert [r["id"] for r in claim_all(store, now=NOW + timedelta(hours=1))] == [job_id]


def test_pauses_lists_the_whole_site_first_then_the_paused_types(store):
    assert store.pauses("plone") == [] and store.paused_sites() == []
    store.pause("plone", "mail", NOW)
    store.pause("plone", "export", NOW)
    store.pause("plone", None, NOW)
    store.pause("zope", "mail", NOW)
    assert store.pauses("plone") == [None, "export", "mail"]
    assert store.pauses("zope") == ["mail"]
    assert store.paused_sites() == ["plone", "zope"]


def test_pausing_twice_is_one_pause_and_resume_says_whether_it_was_paused(store):
    store.pause("plone", None, NOW)
    store.pause("plone", None, NOW + timedelta(seconds=1))
    store.pause("plone", "mail", NOW)
    assert store.resume("plone", None) is True
    assert store.resume("plone", None) is False
    assert store.pauses("plone") == ["mail"]      # the type's pause is another one


def test_a_pause_holds_for_every_store_on_the_database(store, open_another):
    store.add_jobs([row()])
    other = open_another(store)
    other.pause("plone", "export", NOW)
    assert claim_all(store) == []
    assert store.pauses("plone") == ["export"]


LIMITS = {"export": (2, None)}


def test_max_running_counts_the_running_jobs_of_the_type_on_every_site(store):
    store.add_jobs([row(site="zope")] + [row() for _ in range(4)] + [row(type="mail")])
    store.claim(NOW, 1, "w:1", 1)                       # one export, of zope, runs
    got = store.claim(NOW, 10, "w:2", 2, limits=LIMITS)
    assert sorted(r["type"] for r in got) == ["export", "mail"]
    assert store.claim(NOW, 10, "w:3", 3, limits=LIMITS) == []
    [export] = [r for r in got if r["type"] == "export"]
    store.finish_job(export["id"], "success", NOW)
    assert [r["type"] for r in store.claim(NOW, 10, "w:3", 3, limits=LIMITS)] == ["export"]


def test_a_limited_type_in_front_leaves_the_claim_to_the_jobs_behind_it(store):
    ids = store.add_jobs([row(priority=9) for _ in range(5)] + [row(type="mail")
                                                               for _ in range(3)])
    got = store.claim(NOW, 4, "w:1", 1, limits=LIMITS)
    assert [r["id"] for r in got] == ids[:2] + ids[5:7]


def test_a_rate_limit_counts_the_starts_within_its_window(store):
    store.add_jobs([row() for _ in range(5)])
    limits = {"export": (None, (2, 60.0))}
    assert len(store.claim(NOW, 10, "w:1", 1, limits=limits)) == 2
    for job in store.list_jobs(status="running"):
        store.finish_job(job["id"], "success", NOW)     # ended: still started in the window
    assert store.claim(NOW + timedelta(seconds=59), 10, "w:1", 1, limits=limits) == []
    assert len(store.claim(NOW + timedelta(seconds=60), 10, "w:1", 1, limits=limits)) == 2


def test_max_running_and_rate_together_give_the_smaller_room(store):
    store.add_jobs([row() for _ in range(5)])
    limits = {"export": (3, (1, 60.0))}
    assert len(store.claim(NOW, 10, "w:1", 1, limits=limits)) == 1


def test_limited_claims_at_once_never_take_more_than_max_running(store, open_another):
    """Four claimers, each with its own store object (as four workers would), claim at
    one instant, twenty times; nothing finishes in a round: two jobs run after each."""
    store.add_jobs([row(name=f"j{i}") for i in range(60)])
    stores = [store] + [open_another(store) for _ in range(3)]
    start = threading.Barrier(5)      # the four claimers and this thread
    got: list[list[list[int]]] = [[] for _ in range(4)]
    errors = []

    def claimer(n):
        try:
            for _ in range(20):
                start.wait()
                got[n].append([r["id"] for r in stores[n].claim(NOW, 2, f"w:{n}", n,
                                                                limits=LIMITS)])
                start.wait()
                start.wait()     # this thread ends the round's jobs meanwhile
        except Exception as exc:  # pragma: no cover - shown by the assert below
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        for round_ in range(20):
            start.wait()
            start.wait()
            claimed = [i for n in range(4) for i in got[n][round_]]
            assert len(claimed) == 2, (round_, claimed)
            for job_id in claimed:
                store.finish_job(job_id, "success", NOW)
            start.wait()
    finally:
        start.abort()
        for t in threads:
            t.join()
    assert errors == [] or all(isinstance(e, threading.BrokenBarrierError) for e in errors)


# -- cron firings ------------------------------------------------------------------------


def test_a_second_job_for_one_firing_is_refused(store, open_another):
    store.add_jobs([firing("c1", NOW)])
    with pytest.raises(cronkit.DuplicateFiring):
        open_another(store).add_jobs([firing("c1", NOW)])
    assert store.count_jobs(cron_uid="c1") == 1


def test_a_duplicate_firing_is_refused_even_after_the_first_ran(store):
    [job_id] = store.add_jobs([firing("c1", NOW)])
    claim_all(store)
    store.finish_job(job_id, "success", NOW)
    with pytest.raises(cronkit.DuplicateFiring):
        store.add_jobs([firing("c1", NOW)])


def test_ignore_duplicates_skips_the_firing_already_queued(store):
    [first] = store.add_jobs([firing("c1", NOW)])
    ids = store.add_jobs([firing("c1", NOW), firing("c2", NOW),
                          firing("c1", NOW + timedelta(minutes=1))], ignore_duplicates=True)
    assert first not in ids and len(ids) == 2
    assert store.count_jobs(cron_uid="c1") == 2


def test_the_same_scheduled_time_is_a_different_firing_on_another_site_or_cron(store):
    store.add_jobs([firing("c1", NOW), firing("c2", NOW), firing("c1", NOW, site="other")])
    assert store.count_jobs() == 3


def test_pending_and_running_cron_queries(store):
    a, _b, _c = store.add_jobs([firing("c1", NOW), firing("c2", NOW + timedelta(minutes=1)),
                                row(name="plain")])
    store.add_jobs([firing("c9", NOW + timedelta(hours=1), site="other")])
    pending = store.pending_cron_jobs("plone")
    assert set(pending) == {"c1", "c2"}
    assert pending["c2"]["run_after"] == NOW + timedelta(minutes=1)
    assert pending["c1"]["fire_at"] == NOW and pending["c1"]["signature"] == "sig"
    assert pending["c1"]["id"] == a
    assert store.running_cron_uids("plone") == set()
    assert {r["id"] for r in store.claim(NOW, 10, "w:1", 1)} >= {a}
    assert store.running_cron_uids("plone") == {"c1"}
    assert store.cron_job_statuses("plone", "c1") == {"running"}
    assert store.cron_job_statuses("plone", "c2") == {"pending"}
    assert store.delete_pending_cron_jobs("plone", ["c1", "c2"]) == 1   # running c1 is kept
    assert set(store.pending_cron_jobs("plone")) == set()
    assert set(store.pending_cron_jobs("other")) == {"c9"}


# -- lifecycle ---------------------------------------------------------------------------


def test_cancel_a_pending_job_ends_it_canceled(store):
    [job_id] = store.add_jobs([row()])
    assert store.cancel_job(job_id, NOW) == "canceled"
    got = store.get_job(job_id)
    assert got["status"] == "canceled" and got["canceled"] and got["finished_at"] == NOW
    assert claim_all(store) == []


def test_cancel_pending_ends_a_pending_job_once_and_nothing_else(store):
    [running, pending] = store.add_jobs([row(), row()])
    assert [r["id"] for r in store.claim(NOW, 1, "w:1", 1)] == [running]
    assert store.cancel_pending(pending, NOW) is True
    assert store.cancel_pending(pending, NOW) is False
    got = store.get_job(pending)
    assert got["status"] == "canceled" and got["canceled"] and got["finished_at"] == NOW
    assert store.cancel_pending(running, NOW) is False
    assert store.get_job(running)["status"] == "running" and not store.is_canceled(running)
    assert store.cancel_pending(12345, NOW) is False


def test_cancel_a_running_job_sets_its_flag_and_its_success_ends_canceled(store):
    [job_id] = store.add_jobs([row()])
    claim_all(store)
    assert store.is_canceled(job_id) is False
    assert store.cancel_job(job_id, NOW) == "running"
    assert store.is_canceled(job_id) is True
    assert store.get_job(job_id)["status"] == "running"
    assert store.finish_job(job_id, "success", NOW) == "canceled"


def test_cancel_a_finished_job_changes_nothing(store):
    [job_id] = store.add_jobs([row()])
    claim_all(store)
    store.finish_job(job_id, "failed", NOW, "boom")
    assert store.cancel_job(job_id, NOW) == "failed"
    assert store.get_job(job_id)["status"] == "failed"


def test_finish_ends_a_running_job_once(store):
    [job_id] = store.add_jobs([row()])
    claim_all(store)
    later = NOW + timedelta(seconds=5)
    assert store.finish_job(job_id, "success", later, "done", progress=100) == "success"
    assert store.finish_job(job_id, "failed", later, "again") is None
    got = store.get_job(job_id)
    assert (got["status"], got["message"], got["progress"], got["finished_at"]) == \
        ("success", "done", 100, later)
    assert store.finish_job(job_id, "failed", later, "forced", only_running=False) == "failed"


def test_finish_jobs_ends_many_in_one_call_each_as_finish_job_would(store):
    ids = store.add_jobs([row(name=f"j{i}") for i in range(4)])
    claim_all(store)
    store.cancel_job(ids[2], NOW)                       # asked to cancel: success -> canceled
    later = NOW + timedelta(seconds=5)
    ends = [{"job_id": ids[0], "status": "success", "now": later, "progress": 100,
             "result": {"n": 1}},
            {"job_id": ids[1], "status": "failed", "now": later, "message": "boom",
             "attempt": 1},
            {"job_id": ids[2], "status": "success", "now": later},
            {"job_id": ids[3], "status": "success", "now": later, "attempt": 2}]  # not its attempt
    assert store.finish_jobs(ends) == ["success", "failed", "canceled", None]
    got = {j["id"]: j for j in store.list_jobs()}
    assert (got[ids[0]]["result"], got[ids[0]]["progress"], got[ids[0]]["finished_at"]) == \
        ({"n": 1}, 100, later)
    assert got[ids[1]]["message"] == "boom" and got[ids[3]]["status"] == "running"
    assert store.finish_jobs(ends[:1]) == [None]        # ended once
    assert store.finish_jobs([]) == []


def test_a_leased_job_stays_pending_held_by_its_worker_and_no_claim_takes_it(store, open_another):
    soon = NOW + timedelta(seconds=1)
    ids = store.add_jobs([row(name="soon", run_after=soon), row(name="late",
                          run_after=NOW + timedelta(seconds=30)), row(name="now")])
    expires = NOW + timedelta(seconds=10)
    leased = store.lease(NOW, NOW + timedelta(seconds=2), 10, "w:1", 1, expires)
    assert [r["id"] for r in leased] == [ids[0]]        # not the due one, not the late one
    got = store.get_job(ids[0])
    assert (got["status"], got["worker"], got["heartbeat"]) == ("pending", "w:1", expires)
    other = open_another(store)
    assert other.lease(NOW, NOW + timedelta(seconds=2), 10, "w:2", 2, expires) == []
    assert [r["id"] for r in other.claim(soon, 10, "w:2", 2)] == [ids[2]]
    [started] = store.start_leased([ids[0]], soon, "w:1", 1)
    assert (started["status"], started["started_at"], started["attempts"], started["pid"]) == \
        ("running", soon, 1, 1)
    assert store.start_leased([ids[0]], soon, "w:1", 1) == []   # started once


def test_a_job_canceled_while_leased_never_starts(store):
    soon = NOW + timedelta(seconds=1)
    [job_id] = store.add_jobs([row(run_after=soon)])
    store.lease(NOW, soon, 10, "w:1", 1, NOW + timedelta(seconds=10))
    assert store.cancel_pending(job_id, NOW)
    assert store.renew_leases([job_id], "w:1", NOW + timedelta(seconds=20)) == set()
    assert store.start_leased([job_id], soon, "w:1", 1) == []
    assert store.get_job(job_id)["status"] == "canceled"


def test_an_expired_lease_is_no_lease_and_a_renewed_one_holds(store):
    soon = NOW + timedelta(seconds=1)
    ids = store.add_jobs([row(name="a", run_after=soon), row(name="b", run_after=soon)])
    store.lease(NOW, soon, 10, "w:1", 1, NOW + timedelta(seconds=5))
    assert store.renew_leases(ids[:1], "w:1", NOW + timedelta(seconds=60)) == {ids[0]}
    assert store.renew_leases(ids, "w:other", NOW + timedelta(seconds=60)) == set()
    # the worker died: its lease on b expires, another worker claims it; a stays held
    later = NOW + timedelta(seconds=6)
    assert [r["id"] for r in store.claim(later, 10, "w:2", 2)] == [ids[1]]
    assert store.start_leased(ids, later, "w:1", 1) == [store.get_job(ids[0])]


def test_released_leases_are_claimable_at_once_and_a_paused_job_is_given_back(store):
    soon = NOW + timedelta(seconds=1)
    ids = store.add_jobs([row(name="a", run_after=soon), row(name="b", run_after=soon,
                                                              type="other")])
    store.lease(NOW, soon, 10, "w:1", 1, NOW + timedelta(seconds=60))
    store.release_leases(ids[:1], "w:1")
    assert store.get_job(ids[0])["worker"] is None
    store.pause("plone", "other", NOW)
    assert store.start_leased(ids[1:], soon, "w:1", 1) == []      # paused: not started
    assert store.get_job(ids[1])["worker"] is None                # and given back
    store.resume("plone", "other")
    assert {r["id"] for r in store.claim(soon, 10, "w:2", 2)} == set(ids)


def test_lease_leaves_cron_firings_and_limited_types_to_the_claim(store):
    soon = NOW + timedelta(seconds=1)
    store.add_jobs([firing(at=soon), row(type="limited", run_after=soon)])
    assert store.lease(NOW, soon, 10, "w:1", 1, NOW + timedelta(seconds=9),
                       limited=["limited"]) == []
    assert store.lease(NOW, soon, 0, "w:1", 1, NOW + timedelta(seconds=9)) == []


def test_continuations_are_found_waiting_and_by_the_job_they_follow(store):
    from cronkit.stores.base import WAITING
    a, b = store.add_jobs([row(), row()])
    c, d = store.add_jobs([row(after_ids=[a, b], run_after=WAITING), row(after_ids=[b])])
    assert [r["id"] for r in store.continuations()] == [c]               # d is due
    assert [r["after_ids"] for r in store.continuations(b)] == [[a, b]]
    assert [r["id"] for r in store.continuations(b, waiting=False)] == [c, d]
    assert store.continuations(a + 1000, waiting=False) == []
    assert store.get_job(a)["after_ids"] is None


def test_a_unique_job_merges_into_a_running_twin_only_when_asked(store):
    first, created = store.add_unique_job(row(unique_key="k"))
    assert created
    claim_all(store)
    second, created = store.add_unique_job(row(unique_key="k"), running=True)
    assert (second, created) == (first, False)
    third, created = store.add_unique_job(row(unique_key="k"))
    assert created and third != first


def test_heartbeat_keeps_a_running_job_out_of_the_stale_list(store):
    a, b = store.add_jobs([row(), row()])
    claim_all(store)
    later = NOW + timedelta(seconds=90)
    store.heartbeat([a], later)
    stale = store.stale_jobs(later - timedelta(seconds=60))
    assert [r["id"] for r in stale] == [b]
    assert {r["id"] for r in store.running_jobs()} == {a, b}
    store.heartbeat([], later)   # nothing to do, no error


def test_heartbeat_does_not_touch_a_finished_job(store):
    [job_id] = store.add_jobs([row()])
    claim_all(store)
    store.finish_job(job_id, "success", NOW)
    store.heartbeat([job_id], NOW + timedelta(hours=1))
    assert store.get_job(job_id)["heartbeat"] == NOW


def test_requeue_puts_a_running_job_back_pending(store):
    [job_id] = store.add_jobs([row()])
    claim_all(store)
    later = NOW + timedelta(seconds=10)
    assert store.requeue_job(job_id, later, "attempt 1 failed: worker lost") is True
    got = store.get_job(job_id)
    assert got["status"] == "pending" and got["run_after"] == later and got["worker"] is None
    assert got["message"] == "attempt 1 failed: worker lost" and got["attempts"] == 1
    assert store.requeue_job(job_id, later, "again") is False
    [again] = store.claim(later, 1, "w:2", 2)
    assert again["id"] == job_id and again["attempts"] == 2


def test_cleanup_deletes_finished_jobs_past_retention(store):
    old, recent, failed_old, pending = store.add_jobs([row(), row(), row(), row()])
    claim_all(store)
    store.requeue_job(pending, NOW + timedelta(days=1), "later")
    store.finish_job(old, "success", NOW - timedelta(days=40))
    store.finish_job(recent, "success", NOW - timedelta(days=1))
    store.finish_job(failed_old, "failed", NOW - timedelta(days=40))
    store.add_history(old, NOW, "note")
    assert store.cleanup(None, None) == 0
    assert store.cleanup(NOW - timedelta(days=30), None) == 1
    assert store.history(old) == []
    assert {j["id"] for j in store.list_jobs()} == {recent, failed_old, pending}
    assert store.cleanup(None, NOW - timedelta(days=30)) == 1
    assert {j["id"] for j in store.list_jobs()} == {recent, pending}


def test_remove_and_delete_jobs_take_their_history_along(store):
    a, b, c = store.add_jobs([row(), row(), row()])
    for job_id in (a, b, c):
        store.add_history(job_id, NOW, f"note {job_id}")
    store.remove_job(a)
    assert store.delete_jobs([b, 999]) == 1
    assert store.history(a) == [] and store.history(b) == []
    assert [j["id"] for j in store.list_jobs()] == [c]


def test_history_is_kept_in_order(store):
    [job_id] = store.add_jobs([row()])
    store.add_history(job_id, NOW, "first")
    store.add_history(job_id, NOW + timedelta(seconds=1), "second", "warn")
    assert store.history(job_id) == [
        {"date": NOW, "status": "info", "comment": "first"},
        {"date": NOW + timedelta(seconds=1), "status": "warn", "comment": "second"},
    ]


# -- crontabs ----------------------------------------------------------------------------


def cron(uid, position=1.0, **fields):
    data = {"uid": uid, "name": "mycron", "periodicity": "*/5 * * * *", "timezone": None,
            "activated": True, "environ": {"foo": "bar"}, "logs_limit": 5, "user": None,
            "misfire": "once", "misfire_grace": None, "position": position}
    data.update(fields)
    return data


def entry(minute, status="OK", messages=()):
    return {"date": NOW + timedelta(minutes=minute), "status": status, "messages": list(messages)}


def test_an_unknown_site_has_an_empty_activated_crontab_at_version_0(store):
    assert store.load_crontab("nowhere") == {"version": 0, "activated": True, "crons": []}
    assert store.crontab_version("nowhere") == 0


def test_save_then_load_a_crontab(store):
    version, ids = store.save_crontab("plone", False, [cron("a", 2.0), cron("b", 1.0, user="joe")],
                                      [], [("a", entry(1, "WARN", ["w"]))], [])
    data = store.load_crontab("plone")
    assert data["version"] == version == store.crontab_version("plone") > 0
    assert data["activated"] is False
    assert [c["uid"] for c in data["crons"]] == ["b", "a"]          # by position
    a = data["crons"][1]
    assert a["environ"] == {"foo": "bar"} and a["periodicity"] == "*/5 * * * *"
    assert a["logs"] == [{"id": ids[0], "date": NOW + timedelta(minutes=1), "status": "WARN",
                          "messages": ["w"]}]
    assert data["crons"][0]["user"] == "joe"
    assert [c["uid"] for c in store.load_crontab("plone", uid="a")["crons"]] == ["a"]


def test_every_save_bumps_the_version_and_edits_in_place(store):
    v1, _ = store.save_crontab("plone", None, [cron("a")], [], [], [])
    v2, _ = store.save_crontab("plone", None, [cron("a", periodicity="@hourly")], [], [], [])
    assert v2 > v1
    [a] = store.load_crontab("plone")["crons"]
    assert a["periodicity"] == "@hourly"
    assert store.load_crontab("plone")["activated"] is True        # None leaves it


def test_deleting_a_cron_deletes_its_logs(store):
    store.save_crontab("plone", None, [cron("a"), cron("b", 2.0)], [],
                       [("a", entry(1)), ("b", entry(1))], [])
    store.save_crontab("plone", None, [], ["a"], [], [])
    data = store.load_crontab("plone")
    assert [c["uid"] for c in data["crons"]] == ["b"]
    store.save_crontab("plone", None, [cron("a")], [], [], [])
    assert store.load_crontab("plone", uid="a")["crons"][0]["logs"] == []


def test_logs_are_newest_first_and_trimmed_to_the_cron_limit(store):
    store.save_crontab("plone", None, [cron("a", logs_limit=3)], [],
                       [("a", entry(i)) for i in range(5)], [])
    [a] = store.load_crontab("plone")["crons"]
    assert [e["date"].minute for e in a["logs"]] == [7, 6, 5]
    log_id, version = store.add_log("plone", "a", entry(10, "FAILURE", ["boom"]), 3)
    assert version == store.crontab_version("plone")
    [a] = store.load_crontab("plone")["crons"]
    assert [e["id"] for e in a["logs"]][0] == log_id
    assert [e["date"].minute for e in a["logs"]] == [13, 7, 6]
    assert a["logs"][0]["messages"] == ["boom"]


def test_a_save_deletes_only_the_logs_it_names(store):
    _, ids = store.save_crontab("plone", None, [cron("a")], [],
                                [("a", entry(1)), ("a", entry(2))], [])
    store.add_log("plone", "a", entry(3), 5)
    store.save_crontab("plone", None, [cron("a")], [], [], [ids[0]])
    [a] = store.load_crontab("plone")["crons"]
    assert [e["date"].minute for e in a["logs"]] == [6, 5]


def test_crontabs_of_two_sites_are_separate(store):
    store.save_crontab("plone", None, [cron("a")], [], [("a", entry(1))], [])
    store.save_crontab("other", None, [cron("a", periodicity="@daily")], [], [], [])
    assert store.load_crontab("plone")["crons"][0]["periodicity"] == "*/5 * * * *"
    assert store.load_crontab("other")["crons"][0]["logs"] == []


# -- sites -------------------------------------------------------------------------------


def test_mark_site_and_marked_sites(store):
    assert store.marked_sites() == []
    store.mark_site("plone")
    store.mark_site("zope")
    store.ensure_site("bare")
    assert store.marked_sites() == ["plone", "zope"]
    store.mark_site("zope", False)
    assert store.marked_sites() == ["plone"]
    assert [s["name"] for s in store.sites()] == ["bare", "plone", "zope"]


def test_marking_keeps_the_crontab(store):
    store.save_crontab("plone", None, [cron("a")], [], [], [])
    version = store.crontab_version("plone")
    store.mark_site("plone")
    assert store.load_crontab("plone")["crons"][0]["uid"] == "a"
    assert store.crontab_version("plone") == version


# -- workers -----------------------------------------------------------------------------


def worker_row(worker_id="h:1", started=NOW, **fields):
    """A worker's row as the worker registers it."""
    data = {"id": worker_id, "host": "h", "pid": 1, "executor": "threads", "concurrency": 4,
            "state": "running", "started_at": started, "heartbeat": started,
            "version": "1.0", "info": {"sites": ["plone"], "claim_ahead": 0}}
    data.update(fields)
    return data


def test_a_registered_worker_reads_back_as_written(store):
    store.register_worker(worker_row())
    [got] = store.list_workers()
    assert got == {**worker_row(), "stopped_at": None}
    assert got["heartbeat"].tzinfo is not None


def test_registering_a_worker_again_replaces_its_row(store):
    store.register_worker(worker_row())
    store.stop_worker("h:1", NOW + timedelta(seconds=1))
    again = worker_row(started=NOW + timedelta(seconds=2), pid=2, info={"sites": []})
    store.register_worker(again)
    store.register_worker(again)   # repeatable
    assert store.list_workers() == [{**again, "stopped_at": None}]


def test_workers_are_listed_newest_first(store):
    for i in range(3):
        store.register_worker(worker_row(f"h:{i}", started=NOW + timedelta(seconds=i)))
    assert [w["id"] for w in store.list_workers()] == ["h:2", "h:1", "h:0"]


def test_a_worker_heartbeat_sets_its_time_and_what_is_given(store):
    store.register_worker(worker_row())
    later = NOW + timedelta(seconds=10)
    assert store.worker_heartbeat("h:1", later) is True
    [got] = store.list_workers()
    assert got["heartbeat"] == later and got["state"] == "running"
    assert store.worker_heartbeat("h:1", later, state="paused", info={"sites": ["x"]}) is True
    [got] = store.list_workers()
    assert got["state"] == "paused" and got["info"] == {"sites": ["x"]}


def test_a_worker_heartbeat_without_a_row_says_so_and_writes_nothing(store):
    assert store.worker_heartbeat("gone:1", NOW) is False
    assert store.stop_worker("gone:1", NOW) is False
    assert store.list_workers() == []


def test_a_stopped_worker_keeps_its_row_with_its_stop_time(store):
    store.register_worker(worker_row())
    at = NOW + timedelta(minutes=1)
    assert store.stop_worker("h:1", at) is True
    [got] = store.list_workers()
    assert got["state"] == "stopped" and got["stopped_at"] == at and got["heartbeat"] == at


def test_delete_workers_removes_the_long_stopped_and_long_lost_ones(store):
    store.register_worker(worker_row("stopped:old"))
    store.stop_worker("stopped:old", NOW)
    store.register_worker(worker_row("stopped:new"))
    store.stop_worker("stopped:new", NOW + timedelta(hours=2))
    store.register_worker(worker_row("lost:old"))      # heartbeat NOW, never stopped
    store.register_worker(worker_row("alive"))
    store.worker_heartbeat("alive", NOW + timedelta(hours=2))
    assert store.delete_workers(NOW + timedelta(hours=1)) == 2
    assert sorted(w["id"] for w in store.list_workers()) == ["alive", "stopped:new"]
    assert store.delete_workers(NOW + timedelta(hours=1)) == 0


def test_a_naive_datetime_for_a_worker_is_a_store_error(store):
    with pytest.raises(cronkit.StoreError):
        store.register_worker(worker_row(started=datetime(2008, 1, 1)))


# -- the contract itself -----------------------------------------------------------------


def test_the_store_provides_the_store_interfaces(store):
    for iface in (IStore, ICrontabStore, IJobStore):
        assert verifyObject(iface, store)
    assert isinstance(store, Store)


def test_every_operation_of_the_contract_is_declared_in_the_interfaces():
    assert OPERATIONS | {"close", "after_fork"} == set(IStore.names(all=True)) - {"url",
                                                                               "read_only"}


def test_every_operation_is_a_read_or_a_write():
    assert READS | WRITES == OPERATIONS and not READS & WRITES
    assert {"claim", "ensure_site", "update_job", "cleanup"} <= WRITES
    assert {"check", "list_jobs", "load_crontab", "next_due", "schema_version"} <= READS


def test_every_operation_of_the_contract_is_exercised_by_this_suite():
    source = Path(__file__).read_text()
    missing = {name for name in OPERATIONS | {"close", "after_fork"}
               if not re.search(rf"\.{name}\(", source)}
    assert missing == set()


def test_the_store_keeps_its_url(store, store_url):
    assert store.url == store_url


def test_close_can_be_called_twice_and_a_new_store_finds_the_data(store, store_url):
    [job_id] = store.add_jobs([row()])
    store.close()
    store.close()
    if store_url != "memory://":   # memory:// keeps nothing past its store
        again = open_store(store_url)
        try:
            assert again.get_job(job_id)["id"] == job_id
        finally:
            again.close()


def test_after_fork_the_store_goes_on_with_connections_of_its_own(store):
    [job_id] = store.add_jobs([row()])
    store.after_fork()
    assert store.get_job(job_id)["status"] == "pending"
    assert [r["id"] for r in claim_all(store)] == [job_id]


@pytest.mark.parametrize("name", ["ensure_site", "mark_site", "update_job", "cancel_job",
                                  "heartbeat", "renew_leases", "release_leases"])
def test_a_repeatable_write_done_twice_gives_what_it_gives_once(store, name):
    assert name in REPEATABLE
    [job_id] = store.add_jobs([row()])
    claim_all(store)
    calls = {"ensure_site": lambda: store.ensure_site("plone"),
             "mark_site": lambda: store.mark_site("plone"),
             "update_job": lambda: store.update_job(job_id, progress=5),
             "cancel_job": lambda: store.cancel_job(job_id, NOW),
             "heartbeat": lambda: store.heartbeat([job_id], NOW + timedelta(seconds=1)),
             "renew_leases": lambda: store.renew_leases([job_id], "w:1", NOW),
             "release_leases": lambda: store.release_leases([job_id], "w:1")}
    first = calls[name]()
    state = (store.get_job(job_id), store.sites())
    assert calls[name]() == first
    assert (store.get_job(job_id), store.sites()) == state


# -- more of the jobs --------------------------------------------------------------------


def test_add_jobs_of_nothing_returns_nothing(store):
    assert store.add_jobs([]) == [] and store.count_jobs() == 0


def test_list_jobs_pages_with_limit_and_offset(store):
    ids = store.add_jobs([row(name=f"j{i}") for i in range(5)])
    assert [j["id"] for j in store.list_jobs(limit=2, offset=1)] == [ids[3], ids[2]]
    assert [j["id"] for j in store.list_jobs(limit=2, offset=4)] == [ids[0]]


def test_list_jobs_oldest_first(store):
    ids = store.add_jobs([row(name=f"j{i}") for i in range(3)])
    assert [j["id"] for j in store.list_jobs(oldest_first=True)] == ids
    assert [j["id"] for j in store.list_jobs(oldest_first=True, limit=1, offset=1)] == [ids[1]]


def test_update_job_of_an_unknown_id_changes_nothing(store):
    store.update_job(12345, progress=5)
    assert store.count_jobs() == 0


def test_is_canceled_of_an_unknown_job_is_false(store):
    assert store.is_canceled(12345) is False


def test_canceled_among_names_the_jobs_whose_cancel_was_asked(store):
    a, b, c = store.add_jobs([row(name="a"), row(name="b"), row(name="c")])
    claim_all(store)
    store.cancel_job(b, NOW)
    assert store.canceled_among([a, b, c, 12345]) == {b}
    assert store.canceled_among([]) == set()


def test_history_of_a_job_without_records_is_empty(store):
    [job_id] = store.add_jobs([row()])
    assert store.history(job_id) == [] and store.history(12345) == []


def test_claim_without_a_pid_records_none(store):
    store.add_jobs([row()])
    [claimed] = store.claim(NOW, 1, "w:1")
    assert claimed["pid"] is None and claimed["worker"] == "w:1"


def test_next_due_ignores_jobs_that_are_not_pending(store):
    store.add_jobs([row()])
    claim_all(store)
    assert store.next_due() is None


def test_pending_cron_jobs_gives_the_oldest_of_a_cron_with_several(store):
    first, _ = store.add_jobs([firing("c1", NOW), firing("c1", NOW + timedelta(minutes=1))])
    assert store.pending_cron_jobs("plone")["c1"]["id"] == first


def test_pending_and_running_cron_jobs_are_the_two_reads_at_one_instant(store):
    store.add_jobs([firing("c1", NOW), firing("c2", NOW + timedelta(minutes=1)), row()])
    store.add_jobs([firing("c9", NOW, site="other")])
    store.claim(NOW, 1, "w:1", 1)
    pending, running = store.pending_and_running_cron_jobs("plone")
    assert pending == store.pending_cron_jobs("plone") and set(pending) == {"c2"}
    assert running == store.running_cron_uids("plone") == {"c1"}


def test_a_cron_between_two_firings_shows_its_next_one_or_its_run(store):
    """The next firing is queued before the run ends: read at once, the cron always
    shows one of them."""
    [first] = store.add_jobs([firing("c1", NOW)])
    claim_all(store)
    store.add_jobs([firing("c1", NOW + timedelta(minutes=1))])
    store.finish_job(first, "success", NOW)
    pending, running = store.pending_and_running_cron_jobs("plone")
    assert set(pending) == {"c1"} and running == set()


def test_cron_job_statuses_of_a_cron_without_jobs_is_empty(store):
    assert store.cron_job_statuses("plone", "nothing") == set()


def test_stale_jobs_leaves_out_finished_jobs(store):
    [job_id] = store.add_jobs([row()])
    claim_all(store)
    store.finish_job(job_id, "success", NOW)
    assert store.stale_jobs(NOW + timedelta(hours=1)) == []
    assert store.running_jobs() == []


# -- finish and requeue by attempt -------------------------------------------------------


def second_attempt(store):
    """A job claimed, requeued (attempt 1 failed), and claimed again: attempt 2 runs."""
    [job_id] = store.add_jobs([row()])
    claim_all(store)
    store.requeue_job(job_id, NOW, "attempt 1 failed")
    claim_all(store)
    assert store.get_job(job_id)["attempts"] == 2
    return job_id


def test_finish_by_the_attempt_that_runs_the_job_ends_it(store):
    job_id = second_attempt(store)
    assert store.finish_job(job_id, "success", NOW, "done", attempt=2) == "success"
    assert store.get_job(job_id)["status"] == "success"


def test_a_late_finish_of_an_older_attempt_never_ends_the_newer_one(store):
    job_id = second_attempt(store)
    assert store.finish_job(job_id, "failed", NOW, "attempt 1 timed out", attempt=1) is None
    got = store.get_job(job_id)
    assert got["status"] == "running" and got["message"] == "attempt 1 failed"


def test_finish_by_attempt_holds_even_when_not_only_running(store):
    job_id = second_attempt(store)
    assert store.finish_job(job_id, "failed", NOW, only_running=False, attempt=1) is None
    assert store.finish_job(job_id, "failed", NOW, only_running=False, attempt=2) == "failed"


def test_finish_by_attempt_of_a_canceled_job_ends_canceled(store):
    job_id = second_attempt(store)
    store.cancel_job(job_id, NOW)
    assert store.finish_job(job_id, "success", NOW, attempt=2) == "canceled"


def test_finish_takes_message_and_progress_by_position(store):
    [job_id] = store.add_jobs([row()])
    claim_all(store)
    assert store.finish_job(job_id, "success", NOW, "done", 100) == "success"
    got = store.get_job(job_id)
    assert (got["message"], got["progress"]) == ("done", 100)


def test_finish_keeps_a_json_result_and_a_canceled_run_keeps_its_progress(store):
    a, b = store.add_jobs([row(), row()])
    claim_all(store)
    value = {"rows": 3, "names": ["é", None], "ok": True, "ratio": 0.5}
    assert store.finish_job(a, "success", NOW, "done", 100, result=value) == "success"
    assert store.get_job(a)["result"] == value
    assert store.finish_job(a, "failed", NOW, only_running=False) == "failed"
    assert store.get_job(a)["result"] == value          # kept unless another is given
    store.update_job(b, progress=40)
    store.cancel_job(b, NOW)                             # asked while it runs
    assert store.finish_job(b, "success", NOW, progress=100) == "canceled"
    assert store.get_job(b)["progress"] == 40


def test_requeue_by_the_attempt_that_runs_the_job_puts_it_back(store):
    job_id = second_attempt(store)
    assert store.requeue_job(job_id, NOW + timedelta(seconds=9), "attempt 2 failed", attempt=2)
    got = store.get_job(job_id)
    assert got["status"] == "pending" and got["run_after"] == NOW + timedelta(seconds=9)


def test_a_late_requeue_of_an_older_attempt_changes_nothing(store):
    job_id = second_attempt(store)
    assert store.requeue_job(job_id, NOW, "attempt 1 lost", attempt=1) is False
    got = store.get_job(job_id)
    assert got["status"] == "running" and got["worker"] == "w:1"


# -- adoption by a remote executor -------------------------------------------------------


def test_adopt_hands_a_running_job_from_its_claimer_to_another_worker(store):
    [job_id] = store.add_jobs([row()])
    store.claim(NOW, 1, "owner", 1)
    later = NOW + timedelta(seconds=3)
    adopted = store.adopt_job(job_id, 1, "owner", "celery:7", 7, later)
    assert (adopted["worker"], adopted["pid"], adopted["heartbeat"]) == ("celery:7", 7, later)
    assert store.get_job(job_id)["worker"] == "celery:7"


@pytest.mark.parametrize("attempt, owner", [(2, "owner"), (1, "someone else")])
def test_adopt_of_a_claim_that_is_not_that_one_changes_nothing(store, attempt, owner):
    [job_id] = store.add_jobs([row()])
    store.claim(NOW, 1, "owner", 1)
    assert store.adopt_job(job_id, attempt, owner, "celery:7", 7, NOW) is None
    assert store.get_job(job_id)["worker"] == "owner"


def test_adopt_of_a_finished_job_changes_nothing(store):
    [job_id] = store.add_jobs([row()])
    store.claim(NOW, 1, "owner", 1)
    store.finish_job(job_id, "success", NOW)
    assert store.adopt_job(job_id, 1, "owner", "celery:7", 7, NOW) is None


# -- more of the crontabs and sites ------------------------------------------------------


def test_ensure_site_makes_a_site_known_unmarked_at_version_0(store):
    store.ensure_site("bare")
    store.ensure_site("bare")
    assert store.sites() == [{"name": "bare", "marked": False, "activated": True, "version": 0}]


def test_sites_show_each_site_with_its_flags_and_version(store):
    store.save_crontab("plone", False, [cron("a")], [], [], [])
    store.mark_site("zope")
    got = {s["name"]: s for s in store.sites()}
    assert (got["plone"]["activated"], got["plone"]["marked"]) == (False, False)
    assert got["plone"]["version"] == store.crontab_version("plone")
    assert (got["zope"]["marked"], got["zope"]["version"]) == (True, 0)


def test_load_crontab_of_an_unknown_uid_has_no_crons(store):
    store.save_crontab("plone", None, [cron("a")], [], [], [])
    assert store.load_crontab("plone", uid="nothing")["crons"] == []


def test_add_log_bumps_the_version(store):
    v1, _ = store.save_crontab("plone", None, [cron("a")], [], [], [])
    _, v2 = store.add_log("plone", "a", entry(1), 5)
    assert v2 > v1


# -- read-only stores --------------------------------------------------------------------


def _with_mode_ro(url):
    return url + ("&" if "?" in url else "?") + "mode=ro"


def _filled(store):
    """A pending job, a running one (with history), a cron with a log, a marked site."""
    pending, running = store.add_jobs([row(name="pending"), row(name="running")])
    store.update_job(pending, run_after=NOW + timedelta(hours=1))
    claim_all(store)
    store.add_history(running, NOW, "started")
    store.save_crontab("plone", True, [cron("c1")], [], [("c1", entry(0))], [])
    store.add_jobs([firing("c1", at=NOW + timedelta(minutes=1))])
    store.mark_site("plone")
    store.pause("zope", "mail", NOW)
    store.register_worker(worker_row())
    return {"pending": pending, "running": running}


READ_CALLS = {
    "check": lambda s, ids: s.check(),
    "count_jobs": lambda s, ids: s.count_jobs(site="plone"),
    "cron_job_statuses": lambda s, ids: s.cron_job_statuses("plone", "c1"),
    "crontab_version": lambda s, ids: s.crontab_version("plone"),
    "get_job": lambda s, ids: s.get_job(ids["running"]),
    "history": lambda s, ids: s.history(ids["running"]),
    "is_canceled": lambda s, ids: s.is_canceled(ids["running"]),
    "canceled_among": lambda s, ids: s.canceled_among([ids["running"], ids["pending"]]),
    "list_jobs": lambda s, ids: s.list_jobs(site="plone"),
    "load_crontab": lambda s, ids: s.load_crontab("plone"),
    "marked_sites": lambda s, ids: s.marked_sites(),
    "next_due": lambda s, ids: s.next_due(),
    "paused_sites": lambda s, ids: s.paused_sites(),
    "pauses": lambda s, ids: s.pauses("zope"),
    "pending_and_running_cron_jobs": lambda s, ids: s.pending_and_running_cron_jobs("plone"),
    "pending_cron_jobs": lambda s, ids: s.pending_cron_jobs("plone"),
    "running_cron_uids": lambda s, ids: s.running_cron_uids("plone"),
    "running_jobs": lambda s, ids: s.running_jobs(),
    "continuations": lambda s, ids: s.continuations(),
    "schema_version": lambda s, ids: s.schema_version(),
    "sites": lambda s, ids: s.sites(),
    "stale_jobs": lambda s, ids: s.stale_jobs(NOW + timedelta(days=1)),
    "list_workers": lambda s, ids: s.list_workers(),
    "count_ends": lambda s, ids: s.count_ends(NOW - timedelta(hours=1), NOW + timedelta(hours=1),
                                              timedelta(minutes=10)),
    "job_timings": lambda s, ids: s.job_timings(NOW - timedelta(days=1), NOW + timedelta(days=1),
                                                [1, 60]),
}

WRITE_CALLS = {
    "add_history": lambda s, ids: s.add_history(ids["pending"], NOW, "note"),
    "add_jobs": lambda s, ids: s.add_jobs([row()]),
    "add_log": lambda s, ids: s.add_log("plone", "c1", entry(2, "WARN"), 5),
    "add_unique_job": lambda s, ids: s.add_unique_job(row(unique_key="k")),
    "adopt_job": lambda s, ids: s.adopt_job(ids["running"], 1, "w:1", "w:2", 2, NOW),
    "append_text": lambda s, ids: s.append_text(ids["running"], "more"),
    "cancel_job": lambda s, ids: s.cancel_job(ids["pending"], NOW),
    "cancel_pending": lambda s, ids: s.cancel_pending(ids["pending"], NOW),
    "claim": lambda s, ids: s.claim(NOW + timedelta(days=1), 10, "w:ro", 1),
    "cleanup": lambda s, ids: s.cleanup(NOW + timedelta(days=9), NOW + timedelta(days=9)),
    "delete_jobs": lambda s, ids: s.delete_jobs([ids["pending"]]),
    "delete_pending_cron_jobs": lambda s, ids: s.delete_pending_cron_jobs("plone", ["c1"]),
    "ensure_site": lambda s, ids: s.ensure_site("another"),
    "finish_job": lambda s, ids: s.finish_job(ids["running"], "success", NOW),
    "finish_jobs": lambda s, ids: s.finish_jobs([{"job_id": ids["running"],
                                                  "status": "success", "now": NOW}]),
    "lease": lambda s, ids: s.lease(NOW, NOW + timedelta(days=1), 5, "w:9", 9, NOW),
    "start_leased": lambda s, ids: s.start_leased([ids["running"]], NOW, "w:9", 9),
    "renew_leases": lambda s, ids: s.renew_leases([ids["running"]], "w:9", NOW),
    "release_leases": lambda s, ids: s.release_leases([ids["running"]], "w:9"),
    "heartbeat": lambda s, ids: s.heartbeat([ids["running"]], NOW + timedelta(seconds=5)),
    "mark_site": lambda s, ids: s.mark_site("plone", False),
    "pause": lambda s, ids: s.pause("plone", None, NOW),
    "remove_job": lambda s, ids: s.remove_job(ids["pending"]),
    "requeue_job": lambda s, ids: s.requeue_job(ids["running"], NOW, "again"),
    "resume": lambda s, ids: s.resume("zope", "mail"),
    "save_crontab": lambda s, ids: s.save_crontab("plone", False, [], ["c1"], [], []),
    "update_job": lambda s, ids: s.update_job(ids["pending"], progress=5),
    "register_worker": lambda s, ids: s.register_worker(worker_row("h:ro")),
    "worker_heartbeat": lambda s, ids: s.worker_heartbeat("h:1", NOW),
    "stop_worker": lambda s, ids: s.stop_worker("h:1", NOW),
    "delete_workers": lambda s, ids: s.delete_workers(NOW + timedelta(days=9)),
}


def _state(store, ids):
    return (store.list_jobs(), store.sites(), store.load_crontab("plone"),
            store.history(ids["running"]), store.history(ids["pending"]),
            store.pauses("plone"), store.pauses("zope"), store.list_workers())


def test_the_contract_lists_every_read_and_write_of_a_read_only_store():
    assert set(READ_CALLS) == READS and set(WRITE_CALLS) == WRITES


def test_a_store_is_writable_unless_opened_read_only(store):
    assert store.read_only is False


@pytest.mark.parametrize("how", ["argument", "url"])
def test_a_read_only_store_answers_every_read_as_the_store_does(store, store_url, how):
    ids = _filled(store)
    ro = open_store(store_url, read_only=True) if how == "argument" \
        else open_store(_with_mode_ro(store_url))
    # memory:// is private: a read-only one is empty, and answers as an empty one does.
    same = open_store("memory://") if store_url == "memory://" else store
    try:
        assert ro.read_only is True
        for name, call in READ_CALLS.items():
            assert _answer(call, ro, ids) == _answer(call, same, ids), name
    finally:
        ro.close()
        if same is not store:
            same.close()


def _answer(call, store, ids):
    try:
        return call(store, ids)
    except cronkit.CronkitError as exc:
        return type(exc)


def test_a_read_only_store_refuses_every_write_and_changes_nothing(store, store_url):
    ids = _filled(store)
    before = _state(store, ids)
    ro = open_store(store_url, read_only=True)
    try:
        for name, call in WRITE_CALLS.items():
            with pytest.raises(ReadOnlyStore, match="read-only") as refused:
                call(ro, ids)
            assert store_url in str(refused.value), name
        assert _state(store, ids) == before
        assert ro.schema_version() == SCHEMA_VERSION   # it still reads after the refusals
    finally:
        ro.close()


def test_a_read_only_store_keeps_its_url_with_its_mode(store, store_url):
    url = _with_mode_ro(store_url)
    ro = open_store(url)
    try:
        assert ro.url == url and ro.read_only
    finally:
        ro.close()


def test_an_unknown_mode_in_the_url_is_a_store_error(store_url):
    with pytest.raises(cronkit.StoreError, match="mode"):
        open_store(store_url + ("&" if "?" in store_url else "?") + "mode=readonly")


# -- the store's identity ----------------------------------------------------------------


def test_check_passes_while_the_store_is_the_one_opened(store, open_another):
    store.add_jobs([row()])
    assert store.check() is None
    open_another(store).check()
    store.after_fork()
    assert store.check() is None
