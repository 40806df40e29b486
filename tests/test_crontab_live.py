"""DESIGN "Live crontab": site.crontab is one object, refreshed in place from the store;
restart restore; read-only crontabs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import cronkit
from cronkit import Cron, LogStatus, ServerRestartEvent, Status

UTC = UTC


class Quiet(cronkit.Runner):
    def run(self):
        return None


@pytest.fixture(autouse=True)
def quiet():
    cronkit.register_runner(Quiet, name="quiet")


@pytest.fixture
def other(db_url, clock):
    """Another kit on the same store: another process."""
    kit = cronkit.Cronkit(store=db_url, clock=clock)
    yield kit
    kit.close()


def add(site, **kw):
    kw.setdefault("name", "quiet")
    kw.setdefault("periodicity", "*/1 * * * *")
    crontab = site.crontab
    cron = crontab.add_cron(Cron(**kw))
    crontab.save()
    return cron


def pending(site, cron=None):
    return site.jobs.list(cron=cron, status=Status.PENDING)


# -- one live object -------------------------------------------------------------


def test_site_crontab_is_the_same_object_on_every_access(site):
    first = site.crontab
    add(site)
    assert site.crontab is first
    assert first.site is site


def test_a_new_site_has_an_empty_activated_crontab(site):
    assert list(site.crontab.crons) == []
    assert site.crontab.activated is True


def test_kit_site_returns_the_same_site(kit):
    assert kit.site("plone") is kit.site("plone")
    assert kit.site("plone").name == "plone"


def test_a_fresh_kit_reads_the_saved_crontab(site, other):
    cron = add(site, environ={"foo": "bar"}, timezone="Europe/Paris", user="bob",
               misfire="all", misfire_grace=5, logs_limit=3)
    loaded = other.site("plone").crontab.by_uid(cron.uid)
    assert loaded.similar(cron)
    assert loaded.crontab is other.site("plone").crontab


def test_crons_keep_their_order_in_the_store(site, other):
    uids = [add(site).uid for _ in range(4)]
    assert list(other.site("plone").crontab.crons) == uids


# -- refreshed in place ----------------------------------------------------------


def test_refreshed_in_place_when_another_kit_saves(site, other):
    mine = site.crontab
    cron = add(site)
    theirs = other.site("plone").crontab
    theirs.by_uid(cron.uid).environ = {"from": "other"}
    new = theirs.add_cron(Cron(name="quiet", periodicity="0 * * * *"))
    theirs.save()
    assert site.crontab is mine
    assert mine.by_uid(cron.uid) is cron
    assert cron.environ == {"from": "other"}
    assert list(mine.crons) == [cron.uid, new.uid]


def test_refreshed_in_place_when_another_kit_deletes_a_cron(site, other):
    cron = add(site)
    theirs = other.site("plone").crontab
    del theirs.crons[cron.uid]
    theirs.save()
    assert list(site.crontab.crons) == []
    assert cron.crontab is None


def test_refreshed_in_place_when_another_kit_switches_the_crontab(site, other):
    add(site)
    theirs = other.site("plone").crontab
    theirs.activated = False
    theirs.save()
    assert site.crontab.activated is False


def test_refreshed_in_place_when_another_kit_logs(site, other, clock):
    cron = add(site)
    clock.advance(minutes=1)
    other.run_pending()
    assert [entry.status for entry in site.crontab.by_uid(cron.uid).logs] == [LogStatus.OK]
    assert cron.last.date == datetime(2008, 1, 1, 1, 4, tzinfo=UTC)


def test_logs_of_this_kits_runs_show_at_once(site, kit, clock):
    cron = add(site)
    clock.advance(minutes=1)
    kit.run_pending()
    assert cron.last.status == LogStatus.OK
    assert not site.crontab.dirty


def test_left_alone_while_dirty(site, other):
    cron = add(site)
    cron.environ = {"mine": True}
    theirs = other.site("plone").crontab
    theirs.by_uid(cron.uid).user = "them"
    theirs.save()
    assert site.crontab.by_uid(cron.uid).environ == {"mine": True}
    assert cron.user is None


def test_saving_a_dirty_crontab_keeps_what_another_kit_saved_meanwhile(site, other):
    cron = add(site)
    cron.environ = {"mine": True}                      # dirty, not saved yet
    theirs = other.site("plone").crontab
    new = theirs.add_cron(Cron(name="quiet", periodicity="0 * * * *"))
    theirs.save()
    site.crontab.save()
    assert list(site.crontab.crons) == [cron.uid, new.uid]
    assert len(pending(site, new)) == 1
    assert len(pending(site, cron)) == 1
    assert other.site("plone").crontab.by_uid(cron.uid).environ == {"mine": True}


def test_saving_one_cron_keeps_the_other_unsaved_changes(site):
    one, two = add(site), add(site)
    two.activated = False                              # not saved
    one.environ = {"x": 1}
    one.save()
    assert site.crontab.dirty
    assert len(pending(site, two)) == 1                # the store still says two is on
    site.crontab.save()
    assert pending(site, two) == []


def test_a_save_never_drops_a_log_it_did_not_delete(site, other, clock):
    cron = add(site)
    clock.advance(minutes=1)
    other.run_pending()                                # a worker logs meanwhile...
    cron.environ = {"changed": True}                   # ...while this crontab is dirty
    site.crontab.save()
    assert [e.date for e in site.crontab.by_uid(cron.uid).logs] == [clock.now()]
    stored = other.site("plone").crontab.by_uid(cron.uid)
    assert [e.status for e in stored.logs] == [LogStatus.OK]


def test_a_save_deletes_only_the_log_it_deleted(site, other, clock):
    cron = add(site)
    for _ in range(2):
        clock.advance(minutes=1)
        other.run_pending()
    assert len(site.crontab.by_uid(cron.uid).logs) == 2
    del cron.logs[0]                                   # the 01:05 one
    clock.advance(minutes=1)
    other.run_pending()                                # 01:06 logged meanwhile
    site.crontab.save()
    dates = [e.date.minute for e in site.crontab.by_uid(cron.uid).logs]
    assert dates == [6, 4]


def test_logs_written_by_the_model_are_saved(site, other):
    cron = add(site)
    cron.log("WARN", ["by hand"], date=datetime(2008, 1, 1, tzinfo=UTC))
    site.crontab.save()
    stored = other.site("plone").crontab.by_uid(cron.uid)
    assert [(e.status, e.messages) for e in stored.logs] == [(LogStatus.WARN, ["by hand"])]


def test_lowering_logs_limit_trims_the_stored_logs(site, other, clock):
    cron = add(site)
    for _ in range(3):
        clock.advance(minutes=1)
        other.run_pending()
    site.crontab.by_uid(cron.uid).logs_limit = 1
    site.crontab.save()
    assert len(other.site("plone").crontab.by_uid(cron.uid).logs) == 1


def test_removing_a_cron_deletes_its_pending_job(site):
    cron = add(site)
    del site.crontab.crons[cron.uid]
    site.crontab.save()
    assert pending(site) == []


def test_deactivating_a_cron_deletes_its_pending_job_and_it_may_come_back(site):
    cron = add(site)
    cron.activated = False
    site.crontab.save()
    assert pending(site, cron) == []
    assert site.jobs.list(cron=cron) == []             # a firing that never ran leaves no trace
    cron.activated = True
    site.crontab.save()
    assert len(pending(site, cron)) == 1


def test_cron_save_persists_that_cron_only(site, other):
    one, two = add(site), add(site)
    one.environ = {"a": 1}
    two.environ = {"b": 2}
    one.save()
    theirs = other.site("plone").crontab
    assert theirs.by_uid(one.uid).environ == {"a": 1}
    assert theirs.by_uid(two.uid).environ == {}


# -- restart restore -------------------------------------------------------------


def test_restore_brings_back_pending_jobs_deleted_behind_the_kits_back(site, kit):
    one, two = add(site), add(site, periodicity="0 * * * *")
    kit.store.delete_pending_cron_jobs(site.name, [one.uid, two.uid])
    assert pending(site) == []
    kit.restore()
    assert sorted(j.cron_uid for j in pending(site)) == sorted([one.uid, two.uid])


def test_restore_twice_still_one_job_per_cron(site, kit):
    cron = add(site)
    kit.store.delete_pending_cron_jobs(site.name, [cron.uid])
    kit.restore()
    kit.restore()
    assert len(pending(site, cron)) == 1


def test_restore_from_a_fresh_kit_covers_every_marked_site(kit, other):
    for name in ("a", "b"):
        add(kit.site(name))
        kit.store.delete_pending_cron_jobs(name, [c for c in kit.site(name).crontab.crons])
    other.restore()
    assert len(pending(kit.site("a"))) == len(pending(kit.site("b"))) == 1


def test_restore_leaves_unmarked_sites_alone(kit):
    assert kit.site("never-saved").crontab.crons == {}
    kit.restore()
    assert kit.store.marked_sites() == []


def test_server_restart_event_for_one_site(site, kit):
    cron = add(site)
    kit.store.delete_pending_cron_jobs(site.name, [cron.uid])
    cronkit.notify(ServerRestartEvent(site=site, crontab=site.crontab))
    assert len(pending(site, cron)) == 1


def test_server_restart_event_without_a_site_does_nothing(site):
    cronkit.notify(ServerRestartEvent())


def test_queue_marker_marks_a_saved_site(site, kit):
    from cronkit.interfaces import IQueueMarker
    marker = site.registry.getAdapter(site, IQueueMarker)
    assert not marker.is_marked()
    add(site)
    assert marker.is_marked()
    marker.unmark()
    assert not marker.is_marked()
    assert kit.store.marked_sites() == []


# -- read-only -------------------------------------------------------------------


def test_read_only_crontab_refuses_to_save_and_the_store_is_unchanged(site, kit):
    cron = add(site)
    version = kit.store.crontab_version(site.name)
    jobs = [(j.id, j.run_after) for j in pending(site)]
    crontab = site.crontab
    crontab.read_only = True
    cron.periodicity = "0 0 * * *"
    crontab.add_cron(Cron(name="quiet", periodicity="* * * * *"))
    with pytest.raises(cronkit.ReadOnlyCrontab, match="read-only"):
        crontab.save()
    with pytest.raises(cronkit.ReadOnlyCrontab):
        cron.save()
    assert kit.store.crontab_version(site.name) == version
    assert [(j.id, j.run_after) for j in pending(site)] == jobs
    stored = kit.store.load_crontab(site.name)["crons"]
    assert [c["periodicity"] for c in stored] == ["*/1 * * * *"]


def test_read_only_is_a_cronkit_error():
    assert issubclass(cronkit.ReadOnlyCrontab, cronkit.CronkitError)


# -- sites -----------------------------------------------------------------------


def test_sites_have_separate_crontabs_and_jobs(kit):
    a, b = kit.site("a"), kit.site("b")
    cron = add(a)
    assert list(b.crontab.crons) == []
    assert pending(b) == []
    assert [j.cron_uid for j in pending(a)] == [cron.uid]


def test_kit_sites_lists_stored_sites(kit, other):
    add(kit.site("a"))
    assert [s.name for s in other.sites()] == ["a"]


def test_a_site_refuses_an_unknown_timezone(kit):
    with pytest.raises(cronkit.InvalidCron, match="Nowhere/Else"):
        kit.site("x", timezone="Nowhere/Else")


def test_site_repr(site):
    assert repr(site) == "<Site 'plone'>"
    assert repr(site.crontab) == "<Crontab ON 0 crons>"


def test_past_time_does_not_refresh_a_busy_crontab_with_old_logs(site, clock, kit):
    cron = add(site, logs_limit=1)
    for _ in range(3):
        clock.advance(timedelta(minutes=1))
        kit.run_pending()
    assert [e.date.minute for e in cron.logs] == [6]


def test_saving_one_cron_after_others_wrote_refreshes_at_the_next_full_save(site, other):
    one, two, three = add(site), add(site), add(site)
    theirs = other.site("plone").crontab
    theirs.by_uid(two.uid).user = "them"
    theirs.save()
    one.environ = {"x": 1}
    three.environ = {"z": 3}            # left unsaved by one.save()
    one.save()
    assert site.crontab.dirty and two.user is None
    site.crontab.save()
    assert site.crontab.by_uid(two.uid).user == "them"
    fresh = other.site("plone").crontab
    assert fresh.by_uid(one.uid).environ == {"x": 1}
    assert fresh.by_uid(three.uid).environ == {"z": 3}


def test_a_cron_deleted_meanwhile_is_not_brought_back_by_a_save(site, other):
    one, two = add(site), add(site)
    theirs = other.site("plone").crontab
    del theirs.crons[two.uid]
    theirs.save()
    one.environ = {"x": 1}
    site.crontab.save()
    assert list(site.crontab.crons) == [one.uid]
    assert pending(site, two) == []


def test_a_uid_deleted_and_added_again_before_a_save_is_a_new_cron(site, other, clock):
    cron = add(site, uid="a")
    clock.advance(minutes=1)
    other.run_pending()                                # the old cron's log is stored
    assert len(site.crontab.by_uid("a").logs) == 1
    crontab = site.crontab
    del crontab.crons["a"]
    crontab.add_cron(Cron(name="quiet", periodicity="*/5 * * * *", uid="a"))
    crontab.save()
    stored = other.site("plone").crontab.by_uid("a")
    assert (stored.periodicity, stored.logs) == ("*/5 * * * *", [])
    assert cron.crontab is None
