"""Plone sites and plain Zope folders as cronkit sites (named after their physical
path), runners registered the collective.cron way, and the plain Zope application."""

from __future__ import annotations

import pytest
import transaction
from plone.app.testing import SITE_OWNER_NAME, login, logout
from plone.testing import zca
from zope.component.hooks import setSite
from zope.configuration import xmlconfig

import cronkit
import cronkit.zope
from cronkit import Status
from cronkit.interfaces import ISite
from cronkit.zope import ZopeRunnerError, crontab, site_of

from .conftest import layered
from .layers import CRONKIT_PLONE_FUNCTIONAL_TESTING, CRONKIT_ZOPE_FUNCTIONAL_TESTING
from .test_zope_runner import Whoami, connection

# Plone first, then the plain Zope application: one switch of layer stacks.
layer = layered(CRONKIT_PLONE_FUNCTIONAL_TESTING)
zope_layer = layered(CRONKIT_ZOPE_FUNCTIONAL_TESTING)


class MyCronJob(crontab.Runner):
    """As a collective.cron add-on writes it."""

    def run(self) -> str:
        return "/".join(self.context.getPhysicalPath())


class MakeFolder(cronkit.zope.Runner):
    def run(self) -> None:
        from OFS.Folder import manage_addFolder
        manage_addFolder(self.context, self.environ["id"])


def test_a_plone_site_is_the_cronkit_site_of_its_physical_path(layer):
    site = ISite(layer["portal"])
    assert site.name == "/plone"
    assert site is layer["cronkit"].site("/plone")
    assert ISite(layer["app"]["plone2"]).name == "/plone2"


def test_site_of_finds_the_site_of_any_object_inside_it(layer):
    portal = layer["portal"]
    setSite(portal)
    login(layer["app"], SITE_OWNER_NAME)
    portal.invokeFactory("Folder", "f")
    portal["f"].invokeFactory("Document", "d")
    logout()
    setSite(None)
    assert site_of(portal["f"]["d"]).name == "/plone"
    assert site_of(portal).name == "/plone"


def test_site_of_falls_back_to_the_current_site(layer):
    setSite(layer["portal"])
    try:
        assert site_of(object()).name == "/plone"
    finally:
        setSite(None)


def test_site_of_an_object_in_no_site_says_so(layer):
    setSite(None)
    with pytest.raises(ZopeRunnerError, match="is in no cronkit site"):
        site_of(layer["app"])
    with pytest.raises(ZopeRunnerError, match="object at"):
        site_of(object())


def test_the_crontab_module_is_collective_crons_name_of_the_runner():
    assert crontab.Runner is cronkit.zope.Runner
    assert issubclass(crontab.Runner, cronkit.Runner)


@pytest.mark.parametrize("directive", [
    '<adapter factory="tests_zope.test_zope_sites.MyCronJob" name="mycronjob"/>',
    '<cron:runner name="mycronjob" factory="tests_zope.test_zope_sites.MyCronJob"/>',
])
def test_a_runner_registered_in_zcml_as_collective_cron_did_runs_on_its_site(layer,
                                                                             directive):
    zca.pushGlobalRegistry()
    try:
        xmlconfig.string(
            '<configure xmlns="http://namespaces.zope.org/zope" '
            'xmlns:cron="http://namespaces.cronkit.org/cron">'
            f'<include package="cronkit.profiles" file="meta.zcml"/>{directive}</configure>',
            context=layer["configurationContext"])
        # A kit's site registries are based on the global registry of their making.
        kit = cronkit.Cronkit(store="memory://", clock=layer["clock"])
        cronkit.zope.set_kit(kit)
        site = ISite(layer["portal"])
        assert "mycronjob" in cronkit.available_jobs(site)
        job = site.submit("mycronjob")
        kit.run_pending()
        job = site.jobs.get(job.id)
        assert (job.status, job.result) == (Status.SUCCESS, "/plone")
    finally:
        zca.popGlobalRegistry()


# -- a plain Zope application ----------------------------------------------------


def test_a_marked_zope_folder_is_a_cronkit_site(zope_layer):
    app = zope_layer["app"]
    assert ISite(app["zopesite"]).name == "/zopesite"
    app["zopesite"].manage_addFolder("inner")
    assert site_of(app["zopesite"]["inner"]).name == "/zopesite"
    app.manage_addFolder("unmarked")
    with pytest.raises(ZopeRunnerError, match="/unmarked is in no cronkit site"):
        site_of(app["unmarked"])
    with pytest.raises(TypeError):
        ISite(app["unmarked"])


def test_a_cron_runs_in_a_plain_zope_application_as_its_user(zope_layer):
    app = zope_layer["app"]
    app.acl_users.userFolderAddUser("zadmin", "secret", ["Manager"], [])
    transaction.commit()
    site = ISite(app["zopesite"])
    site.register_runner(MakeFolder, name="make-folder")
    site.register_runner(Whoami, name="whoami")
    site.crontab.add_cron(cronkit.Cron(uid="folders", name="make-folder", user="zadmin",
                                       periodicity="@hourly", environ={"id": "hourly"}))
    site.crontab.save()
    zope_layer["clock"].advance(hours=1)
    [job] = zope_layer["cronkit"].run_pending()
    assert job.status == Status.SUCCESS, job.message
    who = site.submit("whoami", user="zadmin")
    zope_layer["cronkit"].run_pending()
    assert site.jobs.get(who.id).result == "zadmin"
    with connection(zope_layer["zodbDB"]) as root:
        folder = root["zopesite"]["hourly"]
        assert folder.getOwner().getId() == "zadmin"


def test_an_unknown_user_in_a_plain_zope_application_fails_naming_it(zope_layer):
    site = ISite(zope_layer["app"]["zopesite"])
    site.register_runner(Whoami, name="whoami")
    job = site.submit("whoami", user="ghost")
    zope_layer["cronkit"].run_pending()
    job = site.jobs.get(job.id)
    assert job.status == Status.FAILED
    assert "no user 'ghost' in /zopesite/acl_users" in job.message


def test_a_plain_zope_site_restores_its_cron_jobs_at_start(zope_layer, monkeypatch):
    from zope.event import notify
    from zope.processlifetime import DatabaseOpenedWithRoot, ProcessStarting

    from cronkit.zope import lifetime

    monkeypatch.delenv("CRONKIT_ZOPE_WORKER", raising=False)
    site = ISite(zope_layer["app"]["zopesite"])
    site.register_runner(MakeFolder, name="make-folder")
    cron = cronkit.Cron(uid="nightly", name="make-folder", periodicity="0 3 * * *",
                        environ={"id": "n"})
    site.crontab.add_cron(cron)
    site.crontab.save()
    [job] = site.jobs.list(status=Status.PENDING)
    site.jobs.remove(job.id)
    new = cronkit.Cronkit(store=zope_layer["cronkit"].store.url, clock=zope_layer["clock"])
    cronkit.zope.set_kit(new)
    try:
        notify(DatabaseOpenedWithRoot(zope_layer["zodbDB"]))
        notify(ProcessStarting())
        assert lifetime.worker() is not None
        again = new.site("/zopesite")
        assert again.jobs.is_job_pending(again.crontab.by_uid("nightly"))
    finally:
        lifetime.stop_worker()
        new.close()


