"""The five components, step by step as collective.cron's API walk-through does it
(docs/api.rst tells the same story as a doctest), then each component on its own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from zope.component import getGlobalSiteManager

import cronkit
from cronkit import Cron, LogStatus, Status
from cronkit.interfaces import (
    ICronManager,
    ICrontabManager,
    ICrontabRegistryManager,
    IQueueManager,
    IQueueMarker,
)

UTC = UTC


def at(h, m):
    return datetime(2008, 1, 1, h, m, tzinfo=UTC)


class MyCronJob(cronkit.Runner):
    """Collects what it was given."""

    environs: list = []

    def run(self):
        self.environs.append(dict(self.cron.environ))
        if "raise" in self.environ:
            raise ValueError(self.environ["raise"])
        return self.environ.get("say")


@pytest.fixture(autouse=True)
def runners():
    MyCronJob.environs = []
    gsm = getGlobalSiteManager()
    gsm.registerAdapter(MyCronJob, name="mycronjob")    # zope.component works too
    cronkit.register_runner(MyCronJob, name="myfoojob")


@pytest.fixture
def cron(site):
    crontab = site.crontab
    cron = Cron(name="mycronjob", periodicity="*/1 * * * *", environ={"foo": "bar"})
    crontab.add_cron(cron)
    crontab.save()
    return cron


def pending(site, cron=None):
    return site.jobs.list(cron=cron, status=Status.PENDING)


# -- the walk-through --------------------------------------------------------------


def test_saving_queues_exactly_one_pending_job_at_the_next_minute(site, cron):
    jobs = pending(site)
    assert len(jobs) == 1
    assert (jobs[0].name, jobs[0].cron_uid, jobs[0].run_after) == ("mycronjob", cron.uid, at(1, 4))
    assert jobs[0].payload == {"foo": "bar"}


def test_nothing_runs_before_its_time(site, kit, cron):
    assert kit.run_pending() == []
    assert MyCronJob.environs == []


def test_when_time_passes_it_runs_with_its_environ_logs_ok_and_is_rescheduled(site, kit, clock,
                                                                             cron):
    clock.advance(minutes=1)
    done = kit.run_pending()
    assert [j.status for j in done] == [Status.SUCCESS]
    assert MyCronJob.environs == [{"foo": "bar"}]
    assert [(e.status, e.date) for e in cron.logs] == [(LogStatus.OK, at(1, 4))]
    assert [j.run_after for j in pending(site, cron)] == [at(1, 5)]
    assert site.jobs.is_job_finished(cron) is False        # a new firing is pending
    assert site.jobs.is_job_pending(cron)


def test_returned_messages_give_warn(site, kit, clock, cron):
    cron.environ = {"say": ["a", "b"]}
    site.crontab.save()
    clock.advance(minutes=1)
    kit.run_pending()
    assert (cron.last.status, cron.last.messages) == (LogStatus.WARN, ["a", "b"])


def test_an_exception_gives_failure_with_its_text(site, kit, clock, cron):
    cron.environ = {"raise": "no more coffee"}
    site.crontab.save()
    clock.advance(minutes=1)
    kit.run_pending()
    assert cron.last.status == LogStatus.FAILURE
    assert "no more coffee" in " ".join(cron.last.messages)


def test_toggling_the_cron_makes_its_job_vanish_and_come_back(site, cron):
    cron.activated = False
    site.crontab.save()
    assert pending(site) == []
    cron.activated = True
    site.crontab.save()
    assert len(pending(site)) == 1


def test_toggling_the_crontab_makes_the_jobs_vanish_and_come_back(site, cron):
    site.crontab.activated = False
    site.crontab.save()
    assert pending(site) == []
    site.crontab.activated = True
    site.crontab.save()
    assert len(pending(site)) == 1


def test_renaming_and_changing_periodicity_replaces_the_old_job(site, cron):
    old = pending(site)[0]
    cron.name = "myfoojob"
    cron.periodicity = "*/10 * * * *"
    site.crontab.save()
    jobs = pending(site)
    assert [(j.name, j.run_after) for j in jobs] == [("myfoojob", at(1, 10))]
    assert jobs[0].id != old.id
    with pytest.raises(cronkit.NoSuchJob):
        site.jobs.get(old.id)


def test_forcing_a_run_runs_now_and_keeps_the_schedule(site, kit, clock, cron):
    cron.periodicity = "*/10 * * * *"
    site.crontab.save()
    clock.set(at(2, 4))
    assert site.cron_manager(cron).register(force=True) is True
    assert [j.run_after for j in pending(site)] == [at(2, 4)]
    done = kit.run_pending()
    assert len(done) == 1
    assert MyCronJob.environs == [{"foo": "bar"}]
    assert [j.run_after for j in pending(site)] == [at(2, 10)]
    assert [e.date for e in cron.logs] == [at(2, 4)]


def test_forcing_a_run_at_a_given_time(site, cron):
    site.cron_manager(cron).register(begin_after=at(3, 0), force=True)
    assert [j.run_after for j in pending(site)] == [at(3, 0)]


def test_viewing_and_deleting_a_log(site, kit, clock, cron):
    clock.advance(minutes=1)
    kit.run_pending()
    assert repr(cron.logs) == "[log: 2008-01-01 01:04:00/OK]"
    del cron.logs[0]
    site.crontab.save()
    assert cron.logs == []
    assert kit.store.load_crontab(site.name)["crons"][0]["logs"] == []


def test_popping_a_log_and_saving_the_cron(site, kit, clock, cron):
    clock.advance(minutes=1)
    kit.run_pending()
    cron.logs.pop(0)
    cron.save()
    assert kit.store.load_crontab(site.name)["crons"][0]["logs"] == []


def test_deleting_the_cron_leaves_no_job(site, cron):
    del site.crontab.crons[cron.uid]
    site.crontab.save()
    assert pending(site) == []
    assert list(site.crontab.crons) == []


def test_replicating_crons_between_crontabs_by_dump(cron):
    copy = cronkit.Crontab()
    copy.add_cron(Cron.load(cron.dump()))
    assert copy.by_name("mycronjob")[0].similar(cron)


# -- cron manager ----------------------------------------------------------------


def test_cron_manager_is_a_multi_adapter(site, cron):
    manager = site.cron_manager(cron)
    assert ICronManager.providedBy(manager)
    assert type(site.registry.getMultiAdapter((site, cron), ICronManager)) is type(manager)


def test_register_does_nothing_while_a_job_is_pending(site, cron):
    assert site.cron_manager(cron).register() is False
    assert len(pending(site)) == 1


def test_register_after_a_given_instant(site, cron):
    manager = site.cron_manager(cron)
    assert manager.remove() is True
    assert manager.remove() is False
    assert manager.register(begin_after=at(5, 30)) is True
    assert [j.run_after for j in pending(site)] == [at(5, 31)]


def test_register_refuses_a_deactivated_cron(site, cron):
    cron.activated = False
    site.crontab.save()
    assert site.cron_manager(cron).register() is False
    assert pending(site) == []


def test_register_or_remove_follows_activation(site, cron):
    manager = site.cron_manager(cron)
    cron.activated = False
    assert manager.register_or_remove() is True
    assert pending(site) == []
    cron.activated = True
    assert manager.register_or_remove() is True
    assert len(pending(site)) == 1


def test_register_job_is_collective_crons_name(site, cron):
    site.cron_manager(cron).remove()
    assert site.cron_manager(cron).register_job() is True


# -- queue manager ---------------------------------------------------------------


def test_queue_manager_reports_the_state_of_a_crons_job(site, kit, clock, cron):
    jobs = site.jobs
    assert IQueueManager.providedBy(jobs)
    assert (jobs.is_job_present(cron), jobs.is_job_pending(cron), jobs.is_job_running(cron),
            jobs.is_job_finished(cron)) == (True, True, False, False)
    clock.advance(minutes=1)
    kit.store.claim(clock.now(), 1, "w", None)
    assert (jobs.is_job_present(cron.uid), jobs.is_job_pending(cron.uid),
            jobs.is_job_running(cron.uid)) == (True, False, True)
    cron.activated = False
    site.crontab.save()
    row = kit.store.list_jobs(site=site.name, status="running")[0]
    kit.execute(row)
    assert (jobs.is_job_present(cron), jobs.is_job_finished(cron)) == (False, True)


def test_queue_manager_lists_and_removes(site, cron):
    job = pending(site)[0]
    assert [j.id for j in site.jobs.list(type="mycronjob")] == [job.id]
    assert site.jobs.count(cron=cron) == 1
    site.jobs.remove(job.id)
    assert site.jobs.list() == []
    with pytest.raises(cronkit.NoSuchJob):
        site.jobs.remove(job.id)


def test_queue_manager_keeps_sites_apart(kit, site, cron):
    job = pending(site)[0]
    with pytest.raises(cronkit.NoSuchJob, match="other"):
        kit.site("other").jobs.get(job.id)


# -- the other components ----------------------------------------------------------


def test_crontab_registry_manager_loads_a_new_crontab_from_the_store(site, cron):
    manager = site.registry.getAdapter(site, ICrontabRegistryManager)
    loaded = manager.load()
    assert loaded is not site.crontab
    assert loaded.by_uid(cron.uid).similar(cron)


def test_crontab_manager_synchronize_restores_a_missing_job(site, kit, cron):
    kit.store.delete_pending_cron_jobs(site.name, [cron.uid])
    site.registry.getMultiAdapter((site, site.crontab), ICrontabManager).synchronize()
    assert len(pending(site)) == 1


def test_modified_crontab_event_on_save(site):
    seen = []

    def on_save(event):
        seen.append(event.crontab)

    cronkit.subscribe(cronkit.ModifiedCrontabEvent)(on_save)
    try:
        site.crontab.save()
    finally:
        cronkit.unsubscribe(cronkit.ModifiedCrontabEvent, on_save)
    assert seen == [site.crontab]


def test_queue_marker_is_per_site(kit, site, cron):
    assert site.registry.getAdapter(site, IQueueMarker).is_marked()
    other = kit.site("other")
    assert not other.registry.getAdapter(other, IQueueMarker).is_marked()


# -- runners on sites -----------------------------------------------------------------


class SiteOnly(cronkit.Runner):
    """Runs on one site only."""

    def run(self):
        return "site"


class Global(cronkit.Runner):
    """Runs everywhere."""

    def run(self):
        return "global"


def test_a_site_runner_is_found_on_its_site_only(kit):
    a, b = kit.site("a"), kit.site("b")
    a.register_runner(SiteOnly, name="siteonly")
    assert cronkit.available_jobs(a)["siteonly"] == "Runs on one site only."
    assert "siteonly" not in cronkit.available_jobs(b)


def test_a_site_runner_overrides_a_global_one_for_that_site_only(kit, clock):
    a, b = kit.site("a"), kit.site("b")
    cronkit.register_runner(Global, name="job")
    a.register_runner(SiteOnly, name="job")
    assert cronkit.available_jobs(a)["job"] == "Runs on one site only."
    assert cronkit.available_jobs(b)["job"] == "Runs everywhere."
    for site in (a, b):
        crontab = site.crontab
        crontab.add_cron(Cron(name="job", periodicity="*/1 * * * *"))
        crontab.save()
    clock.advance(minutes=1)
    kit.run_pending()
    assert [c.last.messages for c in a.crontab.crons.values()] == [["site"]]
    assert [c.last.messages for c in b.crontab.crons.values()] == [["global"]]


def test_unregistering_a_site_runner_brings_back_the_global_one(kit):
    a = kit.site("a")
    cronkit.register_runner(Global, name="job")
    a.register_runner(SiteOnly, name="job")
    assert a.unregister_runner("job") is True
    assert cronkit.available_jobs(a)["job"] == "Runs everywhere."
    assert kit.site("b").unregister_runner("nosuch") is False


def test_an_unknown_runner_on_another_site_gives_notrun(kit, clock):
    a, b = kit.site("a"), kit.site("b")
    a.register_runner(SiteOnly, name="siteonly")
    crontab = b.crontab
    cron = crontab.add_cron(Cron(name="siteonly", periodicity="*/1 * * * *"))
    crontab.save()
    clock.advance(minutes=1)
    kit.run_pending()
    assert cron.last.status == LogStatus.NOTRUN
    assert "siteonly" in cron.last.messages[0]


def test_crontab_registry_manager_saves_one_cron(site, kit, cron):
    cron.environ = {"only": "this"}
    site.registry.getAdapter(site, ICrontabRegistryManager).save_cron(cron)
    assert kit.store.load_crontab(site.name)["crons"][0]["environ"] == {"only": "this"}
    assert not site.crontab.dirty
