"""The SQLite store on real files: schema, WAL, reopening, URLs, the firing key."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

import cronkit
from cronkit import Cron, DuplicateFiring, Status, StoreError
from cronkit.stores import open_store
from cronkit.stores.sql import SCHEMA_VERSION, SQLStore

UTC = UTC
FIRE = datetime(2008, 1, 1, 1, 4, tzinfo=UTC)


def firing(uid="u1", fire_at=FIRE, site="plone", **extra):
    return {"site": site, "type": "quiet", "name": "quiet", "status": "pending", "priority": 0,
            "payload": {}, "run_after": fire_at, "created_at": FIRE, "cron_uid": uid,
            "fire_at": fire_at, "signature": "quiet|* * * * *|UTC", **extra}


def path_of(db_url):
    return db_url.split(":///", 1)[1]


def save_a_cron(kit, **kw):
    crontab = kit.site("plone").crontab
    cron = crontab.add_cron(Cron(name="quiet", periodicity="*/1 * * * *", **kw))
    crontab.save()
    return cron


# -- schema ------------------------------------------------------------------------


def test_schema_version_is_recorded(kit, db_url):
    assert kit.store.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(path_of(db_url)) as conn:
        stored = conn.execute(
            "select value from cronkit_meta where key = 'schema_version'").fetchone()
    assert stored == (str(SCHEMA_VERSION),)


def test_a_newer_schema_is_refused(kit, db_url):
    kit.close()
    with sqlite3.connect(path_of(db_url)) as conn:
        conn.execute("update cronkit_meta set value = '999' where key = 'schema_version'")
    with pytest.raises(StoreError, match="999"):
        SQLStore(db_url)


def test_wal_is_on(kit, db_url):
    with sqlite3.connect(path_of(db_url)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_reopening_an_existing_file_keeps_the_data(db_url, clock):
    kit = cronkit.Cronkit(store=db_url, clock=clock)
    cron = save_a_cron(kit, environ={"k": "v"})
    cron.log("WARN", ["kept"])
    kit.site("plone").crontab.save()
    kit.close()
    again = cronkit.Cronkit(store=db_url, clock=clock)
    try:
        site = again.site("plone")
        assert site.crontab.by_uid(cron.uid).similar(cron)
        assert site.crontab.by_uid(cron.uid).logs[0].messages == ["kept"]
        assert [j.cron_uid for j in site.jobs.list(status=Status.PENDING)] == [cron.uid]
        assert again.store.schema_version() == SCHEMA_VERSION
        assert again.store.marked_sites() == ["plone"]
    finally:
        again.close()


def test_memory_stores_are_private(clock):
    one = cronkit.Cronkit(store="memory://", clock=clock)
    two = cronkit.Cronkit(store="memory://", clock=clock)
    save_a_cron(one)
    assert list(two.site("plone").crontab.crons) == []
    assert len(one.site("plone").crontab.crons) == 1


# -- URLs --------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["nonsense", "ftp://example.org/db", "sqlite:///no/such/folder/x.db"])
def test_a_bad_url_is_a_store_error(url):
    with pytest.raises(StoreError, match="store"):
        cronkit.Cronkit(store=url)


def test_an_unreadable_file_is_a_store_error(tmp_path):
    bad = tmp_path / "garbage.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="garbage.db"):
        open_store(f"sqlite:///{bad}")


def test_cronkit_store_env_var_is_honoured(monkeypatch, db_url, clock):
    monkeypatch.setenv("CRONKIT_STORE", db_url)
    kit = cronkit.Cronkit(clock=clock)
    try:
        assert kit.store.url == db_url
    finally:
        kit.close()


def test_an_explicit_store_wins_over_the_env_var(monkeypatch, db_url, tmp_path, clock):
    monkeypatch.setenv("CRONKIT_STORE", f"sqlite:///{tmp_path / 'other.db'}")
    kit = cronkit.Cronkit(store=db_url, clock=clock)
    try:
        assert kit.store.url == db_url
    finally:
        kit.close()


def test_default_store_is_cronkit_db_in_the_working_folder(monkeypatch, tmp_path, clock):
    monkeypatch.delenv("CRONKIT_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    kit = cronkit.Cronkit(clock=clock)
    try:
        assert kit.store.url == "sqlite:///cronkit.db"
        assert (tmp_path / "cronkit.db").exists()
    finally:
        kit.close()


def test_a_store_object_can_be_given(db_url, clock):
    store = SQLStore(db_url)
    kit = cronkit.Cronkit(store=store, clock=clock)
    assert kit.store is store
    kit.close()


# -- the firing key ----------------------------------------------------------------


def test_the_store_refuses_a_second_row_for_the_same_firing(kit):
    kit.store.add_jobs([firing()])
    with pytest.raises(DuplicateFiring, match="duplicate"):
        kit.store.add_jobs([firing()])
    assert kit.store.count_jobs(site="plone") == 1


def test_a_refused_batch_changes_nothing(kit):
    kit.store.add_jobs([firing()])
    with pytest.raises(DuplicateFiring):
        kit.store.add_jobs([firing("u2"), firing()])
    assert kit.store.count_jobs(site="plone") == 1


def test_the_firing_key_is_unique_whatever_the_status(kit):
    [job_id] = kit.store.add_jobs([firing()])
    kit.store.finish_job(job_id, Status.SUCCESS, FIRE, only_running=False)
    with pytest.raises(DuplicateFiring):
        kit.store.add_jobs([firing()])


def test_duplicate_firing_is_a_store_error():
    assert issubclass(DuplicateFiring, StoreError)


def test_other_site_cron_or_time_is_another_firing(kit):
    kit.store.add_jobs([firing()])
    ids = kit.store.add_jobs([firing(site="other"), firing("u2"),
                              firing(fire_at=FIRE + timedelta(minutes=1))])
    assert len(ids) == 3


def test_ignore_duplicates_skips_the_duplicate(kit):
    [first] = kit.store.add_jobs([firing()])
    ids = kit.store.add_jobs([firing(), firing("u2")], ignore_duplicates=True)
    assert len(ids) == 1 and first not in ids
    assert kit.store.count_jobs(site="plone") == 2


def test_forced_runs_have_no_firing_time_and_never_clash(kit):
    kit.store.add_jobs([firing(fire_at=None, run_after=FIRE), firing(fire_at=None, run_after=FIRE)])
    assert kit.store.count_jobs(site="plone") == 2


def test_a_claim_takes_a_firing_once(kit):
    kit.store.add_jobs([firing()])
    assert len(kit.store.claim(FIRE, 5, "one")) == 1
    assert kit.store.claim(FIRE, 5, "two") == []


def test_naive_datetimes_are_refused(kit):
    with pytest.raises(StoreError, match="naive"):
        kit.store.add_jobs([firing(fire_at=datetime(2008, 1, 1))])


# -- crontab rows ------------------------------------------------------------------


def test_crontab_version_grows_with_every_save(kit):
    site = kit.site("plone")
    assert kit.store.crontab_version("plone") == 0
    save_a_cron(kit)
    first = kit.store.crontab_version("plone")
    site.crontab.save()
    assert kit.store.crontab_version("plone") == first + 1


def test_sites_are_recorded(kit):
    save_a_cron(kit)
    assert [(s["name"], s["marked"]) for s in kit.store.sites()] == [("plone", True)]


def test_datetimes_come_back_aware_and_exact(kit):
    when = datetime(2008, 1, 1, 1, 4, 5, 123456, tzinfo=UTC)
    [job_id] = kit.store.add_jobs([firing(fire_at=when)])
    assert kit.store.get_job(job_id)["fire_at"] == when


def test_store_repr_names_the_url(kit, db_url):
    assert db_url in repr(kit)


def test_another_integrity_error_is_a_store_error_not_a_duplicate_firing(kit):
    row = firing()
    row["name"] = None
    with pytest.raises(StoreError) as info:
        kit.store.add_jobs([row])
    assert not isinstance(info.value, DuplicateFiring)


# -- job rows ------------------------------------------------------------------------

LATER = FIRE + timedelta(minutes=5)


def plain(**extra):
    return {"site": "plone", "type": "quiet", "name": "quiet", "status": "pending",
            "run_after": FIRE, "created_at": FIRE, **extra}


def test_one_claim_never_takes_two_jobs_of_one_cron(kit):
    kit.store.add_jobs([firing(), firing(fire_at=None, run_after=FIRE), firing("u2")])
    claimed = kit.store.claim(LATER, 5, "w")
    assert sorted(r["cron_uid"] for r in claimed) == ["u1", "u2"]
    assert [r["fire_at"] for r in claimed if r["cron_uid"] == "u1"] == [FIRE]


def test_claim_order_priority_then_run_after_then_submission(kit):
    ids = kit.store.add_jobs([plain(name="a"), plain(name="b", priority=5),
                              plain(name="c", run_after=FIRE - timedelta(minutes=1)),
                              plain(name="d")])
    claimed = kit.store.claim(FIRE, 10, "w", 123)
    assert [r["name"] for r in claimed] == ["b", "c", "a", "d"]
    assert {r["id"] for r in claimed} == set(ids)
    assert {(r["status"], r["worker"], r["pid"], r["attempts"]) for r in claimed} == \
        {("running", "w", 123, 1)}
    assert kit.store.claim(FIRE, 0, "w") == []


def test_jobs_not_yet_due_are_not_claimed(kit):
    kit.store.add_jobs([plain(run_after=LATER)])
    assert kit.store.claim(FIRE, 5, "w") == []
    assert kit.store.next_due() == LATER


def test_unique_jobs_merge_while_pending(kit):
    first, created = kit.store.add_unique_job(plain(unique_key="k", payload={"a": 1}))
    again, created_again = kit.store.add_unique_job(plain(unique_key="k"))
    assert (created, created_again, again) == (True, False, first)
    kit.store.claim(FIRE, 5, "w")
    third, created_third = kit.store.add_unique_job(plain(unique_key="k"))
    assert created_third and third != first
    assert kit.store.get_job(first)["payload"] == {"a": 1}


def test_finish_cancel_and_flags(kit):
    [job_id] = kit.store.add_jobs([plain()])
    assert kit.store.finish_job(job_id, "success", FIRE) is None        # not running
    kit.store.claim(FIRE, 1, "w")
    assert kit.store.cancel_job(job_id, FIRE) == "running"
    assert kit.store.is_canceled(job_id)
    assert kit.store.finish_job(job_id, "success", LATER, "done", 100) == "canceled"
    assert kit.store.cancel_job(job_id, LATER) == "canceled"
    row = kit.store.get_job(job_id)
    # a run asked to cancel ends CANCELED with the progress it had reached, not 100
    assert (row["message"], row["progress"], row["finished_at"]) == ("done", 0, LATER)
    with pytest.raises(cronkit.NoSuchJob):
        kit.store.cancel_job(9999, FIRE)


def test_cancel_a_pending_job(kit):
    [job_id] = kit.store.add_jobs([plain()])
    assert kit.store.cancel_job(job_id, FIRE) == "canceled"
    assert kit.store.claim(FIRE, 5, "w") == []


def test_update_append_and_history(kit):
    [job_id] = kit.store.add_jobs([plain()])
    kit.store.update_job(job_id, progress=40, payload={"x": 1})
    kit.store.append_text(job_id, "one ")
    kit.store.append_text(job_id, "two")
    kit.store.add_history(job_id, FIRE, "started")
    kit.store.add_history(job_id, LATER, "oops", "error")
    row = kit.store.get_job(job_id)
    assert (row["progress"], row["payload"], row["status_text"]) == (40, {"x": 1}, "one two")
    assert [(h["status"], h["comment"], h["date"]) for h in kit.store.history(job_id)] == \
        [("info", "started", FIRE), ("error", "oops", LATER)]


def test_heartbeat_stale_running_and_requeue(kit):
    a, b = kit.store.add_jobs([plain(), plain()])
    kit.store.claim(FIRE, 2, "w")
    kit.store.heartbeat([], LATER)
    kit.store.heartbeat([a], LATER)
    assert [r["id"] for r in kit.store.stale_jobs(LATER)] == [b]
    assert sorted(r["id"] for r in kit.store.running_jobs()) == [a, b]
    assert kit.store.requeue_job(b, LATER, "retry") is True
    assert kit.store.requeue_job(b, LATER, "retry") is False
    row = kit.store.get_job(b)
    assert (row["status"], row["run_after"], row["worker"]) == ("pending", LATER, None)


def test_remove_delete_and_cleanup(kit):
    ids = kit.store.add_jobs([plain() for _ in range(4)])
    kit.store.add_history(ids[0], FIRE, "note")
    kit.store.remove_job(ids[0])
    assert kit.store.history(ids[0]) == []
    with pytest.raises(cronkit.NoSuchJob):
        kit.store.remove_job(ids[0])
    with pytest.raises(cronkit.NoSuchJob):
        kit.store.get_job(ids[0])
    kit.store.claim(FIRE, 3, "w")
    kit.store.finish_job(ids[1], "success", FIRE)
    kit.store.finish_job(ids[2], "failed", FIRE)
    assert kit.store.cleanup(None, None) == 0
    assert kit.store.cleanup(LATER, None) == 1                 # the success only
    assert kit.store.cleanup(None, LATER) == 1                 # then the failure
    assert [r["id"] for r in kit.store.list_jobs()] == [ids[3]]
    assert kit.store.delete_jobs([ids[3], 12345]) == 1


def test_list_jobs_filters_and_pages(kit):
    ids = kit.store.add_jobs([plain(type="a"), plain(type="b"), plain(type="a", site="other")])
    assert [r["id"] for r in kit.store.list_jobs(site="plone")] == [ids[1], ids[0]]
    assert [r["id"] for r in kit.store.list_jobs(type="a", oldest_first=True)] == [ids[0], ids[2]]
    assert [r["id"] for r in kit.store.list_jobs(limit=1, offset=1)] == [ids[1]]
    assert kit.store.count_jobs(status=["pending"]) == 3


def test_after_fork_keeps_the_store_usable(kit):
    kit.store.after_fork()
    assert kit.store.schema_version() == SCHEMA_VERSION


# -- the hot path: plain sqlite3 connections for insert, claim, finish ---------------


def test_the_hot_path_and_sqlalchemy_see_the_same_rows(kit, db_url):
    """A job inserted, claimed and finished on the hot path reads back the same through
    SQLAlchemy and through a third, unrelated connection."""
    store = kit.store
    assert store._hot is not None
    [job_id] = store.add_jobs([plain(payload={"n": 1}, priority=3)])
    [row] = store.claim(FIRE, 5, "w:1", 42)
    assert row == store.get_job(job_id)
    assert (row["status"], row["pid"], row["started_at"], row["payload"]) == ("running", 42, FIRE,
                                                                              {"n": 1})
    assert store.finish_job(job_id, Status.SUCCESS, LATER, progress=100) == "success"
    assert store.finish_job(job_id, Status.FAILED, LATER) is None   # only a running job ends
    with sqlite3.connect(path_of(db_url)) as conn:
        assert conn.execute("select status, progress, finished_at from cronkit_jobs").fetchall() \
            == [("success", 100, int((LATER - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()
                                     * 1_000_000))]


def test_a_write_error_on_the_hot_path_is_a_store_error_and_rolls_back(kit, db_url):
    store = kit.store
    [job_id] = store.add_jobs([plain()])
    with sqlite3.connect(path_of(db_url)) as conn:   # a trigger that refuses every finish
        conn.execute("create trigger no_finish before update of finished_at on cronkit_jobs "
                     "begin select raise(fail, 'finishing is refused'); end")
    store.claim(FIRE, 1, "w")
    with pytest.raises(StoreError, match="finishing is refused"):
        store.finish_job(job_id, Status.SUCCESS, LATER)
    assert store.get_job(job_id)["status"] == "running"
    [other] = store.add_jobs([plain()])   # the connection went back clean
    assert store.claim(FIRE, 1, "w")[0]["id"] == other


def test_an_error_of_sqlite_on_the_hot_path_is_a_store_error(kit, db_url):
    with sqlite3.connect(path_of(db_url)) as conn:
        conn.execute("alter table cronkit_jobs rename to gone")
    with pytest.raises(StoreError, match="no such table"):
        kit.store.claim(FIRE, 1, "w")
    with pytest.raises(StoreError, match="no such table"):
        kit.store.next_due()
    with pytest.raises(StoreError, match="no such table"):
        kit.store.is_canceled(1)


def test_the_memory_store_shares_its_one_connection_with_the_hot_path(clock):
    kit = cronkit.Cronkit(store="memory://", clock=clock)
    [job_id] = kit.store.add_jobs([plain()])
    assert kit.store.next_due() == FIRE
    assert kit.store.claim(FIRE, 1, "w")[0]["id"] == job_id
    assert kit.store.list_jobs(status="running")[0]["id"] == job_id
    kit.close()


def test_an_anonymous_sqlite_database_has_no_hot_path():
    store = SQLStore("sqlite://")
    assert store._hot is None
    [job_id] = store.add_jobs([plain()])
    assert store.next_due() == FIRE
    assert not store.is_canceled(job_id)
    assert store.claim(FIRE, 1, "w")[0]["id"] == job_id
    assert store.finish_job(job_id, Status.SUCCESS, LATER) == "success"
    store.close()


def test_without_the_hot_path_finish_and_requeue_go_by_attempt_too():
    store = SQLStore("sqlite://")
    [job_id] = store.add_jobs([plain()])
    store.claim(FIRE, 1, "w")
    assert store.requeue_job(job_id, FIRE, "attempt 1 failed", attempt=2) is False
    assert store.requeue_job(job_id, FIRE, "attempt 1 failed", attempt=1) is True
    store.claim(FIRE, 1, "w")
    assert store.finish_job(job_id, Status.FAILED, LATER, "late", attempt=1) is None
    assert store.finish_job(job_id, Status.SUCCESS, LATER, attempt=2) == "success"
    store.close()


def test_the_hot_path_compiles_finish_by_attempt_apart_from_the_common_finish(kit):
    finish = kit.store._hot_stmts.finish
    assert set(finish) == {(True, False), (True, True), (False, False), (False, True)}
    assert "attempts" not in finish[True, False].sql.split("WHERE", 1)[1]
    assert "attempts" in finish[True, True].sql.split("WHERE", 1)[1]


def test_a_memory_store_keeps_its_data_after_fork():
    """A forked child has its own copy of a memory:// database, on its one connection."""
    store = SQLStore("memory://")
    [job_id] = store.add_jobs([plain()])
    store.after_fork()
    assert store.claim(FIRE, 1, "w")[0]["id"] == job_id
    store.close()


def test_close_and_after_fork_let_go_of_the_hot_connections(kit):
    kit.store.add_jobs([plain()])
    hot = kit.store._hot
    [conn] = hot._idle
    kit.store.after_fork()
    assert hot._idle == []
    assert kit.store.next_due() == FIRE   # a new connection is opened
    assert hot._idle and hot._idle[0] is not conn
    kit.store.close()
    assert hot._idle == []


def test_closing_the_store_never_closes_a_connection_in_use(kit):
    """A job thread still finishing its job when the kit closes (a segfault in SQLite
    if its connection were closed under it): its connection closes when given back."""
    hot = kit.store._hot
    with hot.connection() as busy:
        kit.store.close()
        assert busy.execute("select count(*) from cronkit_jobs").fetchone() == (0,)
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        busy.execute("select 1")
    assert hot._idle == []
