"""GenericSetup on a real Plone 6 site: an add-on's crons.xml (collective.cron's format)
imports into the site's crontab, a bad one changes nothing, the export writes the same
format, and collective.cron's step names still work (cronkit.zope.exportimport)."""

from __future__ import annotations

import io
import os
import tarfile
from typing import Any

import pytest
import transaction
from plone.app.testing import TEST_USER_ID, PloneSandboxLayer, setRoles
from zope.component import getSiteManager
from zope.component.hooks import setSite

import cronkit
from cronkit.interfaces import ISite
from cronkit.zope.interfaces import ICronkitLayer
from tests_zope import gsaddon
from tests_zope.conftest import layered
from tests_zope.layers import (
    CRONKIT_PLONE_FIXTURE,
    SECOND_SITE,
    CronkitPloneFunctionalTesting,
)

ADDON = "profile-tests_zope.gsaddon:default"
ADDON_DIR = os.path.join(os.path.dirname(gsaddon.__file__), "profiles")


class AddonFixture(PloneSandboxLayer):
    """The Plone sites with cronkit's profile, and the test add-on's ZCML loaded."""

    defaultBases = (CRONKIT_PLONE_FIXTURE,)

    def setUpZope(self, app: Any, configurationContext: Any) -> None:
        self.loadZCML(package=gsaddon)


ADDON_FIXTURE = AddonFixture(name="CronkitGSAddonFixture")
ADDON_TESTING = CronkitPloneFunctionalTesting(bases=(ADDON_FIXTURE,),
                                              name="CronkitGSAddon:Functional")
layer = layered(ADDON_TESTING)


def crons_of(site: cronkit.Site) -> dict[str, tuple[str, str, bool, dict]]:
    return {uid: (cron.name, cron.periodicity, cron.activated, cron.environ)
            for uid, cron in site.crontab.crons.items()}


def members(tarball: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        return {info.name: archive.extractfile(info).read()  # type: ignore[union-attr]
                for info in archive.getmembers() if info.isfile()}


def test_an_addons_crons_xml_imports_unchanged_into_the_sites_crontab(layer: Any) -> None:
    portal = layer["portal"]
    portal.portal_setup.runAllImportStepsFromProfile(ADDON)
    site = layer["cronkit"].site("/plone")
    assert ISite(portal) is site
    # collective.cron's documented outcome: entries applied in document order
    assert crons_of(site) == {
        "foogsuid": ("foo", "*/1 * * * *", True, {"foo": "bar"}),
        "foogsuid2": ("foo2changed", "*/3 * * * *", False, {}),
    }
    # saved: the store holds it, and the activated cron's firing is queued
    assert crons_of(layer["cronkit"].site("/plone")) == crons_of(site)
    assert site.jobs.is_job_pending(site.crontab.by_uid("foogsuid"))
    assert not site.jobs.is_job_pending(site.crontab.by_uid("foogsuid2"))


def test_the_import_step_reports_what_it_did(layer: Any) -> None:
    result = layer["portal"].portal_setup.runImportStepFromProfile(ADDON, "cronkit.crons")
    assert result["messages"]["cronkit.crons"].startswith(
        "cronkit: crons.xml imported into /plone: the crontab has 2 crons")


@pytest.mark.parametrize("profile, line, says", [
    ("bad", 5, "61 * * * *"),
    ("malformed", 5, "malformed XML: mismatched tag"),
])
def test_a_bad_crons_xml_fails_the_import_naming_file_and_line_and_changes_nothing(
        layer: Any, profile: str, line: int, says: str) -> None:
    portal = layer["portal"]
    setup = portal.portal_setup
    setup.runAllImportStepsFromProfile(ADDON)
    site = ISite(portal)
    before, jobs = crons_of(site), [(j.id, j.status) for j in site.jobs.list()]
    version = layer["cronkit"].store.crontab_version("/plone")
    with pytest.raises(cronkit.ProfileError) as raised:
        setup.runAllImportStepsFromProfile(f"profile-tests_zope.gsaddon:{profile}")
    error = raised.value
    assert error.file == os.path.join(ADDON_DIR, profile, "crons.xml")
    assert error.line == line
    assert f"{error.file}, line {line}: " in str(error) and says in str(error)
    assert crons_of(site) == before
    assert "fine" not in site.crontab.crons
    assert layer["cronkit"].store.crontab_version("/plone") == version
    assert [(j.id, j.status) for j in site.jobs.list()] == jobs


def test_a_profile_without_crons_xml_leaves_the_crontab_alone(layer: Any) -> None:
    portal = layer["portal"]
    setup = portal.portal_setup
    setup.runAllImportStepsFromProfile(ADDON)
    before = crons_of(ISite(portal))
    result = setup.runImportStepFromProfile("profile-cronkit.zope:default", "cronkit.crons")
    assert result["messages"]["cronkit.crons"] == "cronkit: no crons.xml in this profile"
    assert crons_of(ISite(portal)) == before


def test_the_export_writes_collective_crons_format(layer: Any) -> None:
    portal = layer["portal"]
    setup = portal.portal_setup
    setup.runAllImportStepsFromProfile(ADDON)
    result = setup.runExportStep("cronkit.crons")
    exported = members(result["tarball"])["crons.xml"].decode("utf-8")
    # collective.cron's own export of this crontab (its do_export), byte for byte
    assert exported.strip() == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<crons>\n"
        '  <cron uid="foogsuid" name="foo" activated="True" periodicity="*/1 * * * *">\n'
        "    <environ><![CDATA[\n"
        '{"foo": "bar"}\n'
        "]]>\n"
        "    </environ>\n"
        "  </cron>\n"
        '  <cron uid="foogsuid2" name="foo2changed" activated="False"'
        ' periodicity="*/3 * * * *">\n'
        "  </cron>\n"
        "</crons>")


def test_the_export_imports_back_to_the_same_crontab(layer: Any) -> None:
    app, portal = layer["app"], layer["portal"]
    portal.portal_setup.runAllImportStepsFromProfile(ADDON)
    tarball = portal.portal_setup.runExportStep("cronkit.crons")["tarball"]
    second = app[SECOND_SITE]
    setSite(second)
    try:
        second.portal_setup.runAllImportStepsFromProfile(None, archive=tarball)
    finally:
        setSite(portal)
    assert crons_of(ISite(second)) == crons_of(ISite(portal))
    assert ISite(second).export_crons() == ISite(portal).export_crons()


def test_a_full_export_holds_one_crons_xml(layer: Any) -> None:
    portal = layer["portal"]
    portal.portal_setup.runAllImportStepsFromProfile(ADDON)
    setRoles(portal, TEST_USER_ID, ["Manager"])    # the other steps' export needs it
    result = portal.portal_setup.runAllExportSteps()
    assert {"cronkit.crons", "collective.cron.exportCrons"} <= set(result["steps"])
    with tarfile.open(fileobj=io.BytesIO(result["tarball"]), mode="r:gz") as archive:
        assert archive.getnames().count("crons.xml") == 1
        data = archive.extractfile("crons.xml").read()  # type: ignore[union-attr]
    assert data.decode("utf-8") == ISite(portal).export_crons()


def test_collective_crons_import_step_name_imports_the_profile(layer: Any) -> None:
    portal = layer["portal"]
    portal.portal_setup.runImportStepFromProfile(ADDON, "collective.cron.setupCrons",
                                                 run_dependencies=False)
    assert set(crons_of(ISite(portal))) == {"foogsuid", "foogsuid2"}


def test_collective_crons_export_step_name_writes_crons_xml(layer: Any) -> None:
    portal = layer["portal"]
    portal.portal_setup.runAllImportStepsFromProfile(ADDON)
    tarball = portal.portal_setup.runExportStep("collective.cron.exportCrons")["tarball"]
    assert members(tarball)["crons.xml"].decode("utf-8") == ISite(portal).export_crons()


def test_both_step_names_in_one_run_import_the_file_once(layer: Any) -> None:
    portal = layer["portal"]
    messages = portal.portal_setup.runAllImportStepsFromProfile(ADDON)["messages"]
    said = sorted(messages[step].split("\n")[0]
                  for step in ("cronkit.crons", "collective.cron.setupCrons"))
    assert said == ["cronkit: crons.xml already imported by the other name of this step",
                    "cronkit: crons.xml imported into /plone: the crontab has 2 crons"]


def test_two_sites_imports_stay_separate(layer: Any) -> None:
    app, portal = layer["app"], layer["portal"]
    second = app[SECOND_SITE]
    portal.portal_setup.runAllImportStepsFromProfile(ADDON)
    assert crons_of(ISite(second)) == {}
    setSite(second)
    try:
        second.portal_setup.runAllImportStepsFromProfile("profile-tests_zope.gsaddon:other")
    finally:
        setSite(portal)
    assert ISite(second).name == f"/{SECOND_SITE}"
    assert set(crons_of(ISite(second))) == {"other"}
    assert set(crons_of(ISite(portal))) == {"foogsuid", "foogsuid2"}


def test_cronkits_profile_marks_the_site_for_restarts(layer: Any) -> None:
    store = layer["cronkit"].store
    assert "/plone" not in store.marked_sites()    # the test's kit is a fresh one
    layer["portal"].portal_setup.runAllImportStepsFromProfile("profile-cronkit.zope:default")
    assert "/plone" in store.marked_sites()
    assert f"/{SECOND_SITE}" not in store.marked_sites()


def test_the_uninstall_profile_removes_the_configlet_and_the_layer(layer: Any) -> None:
    from plone.browserlayer.utils import registered_layers

    portal = layer["portal"]
    assert ICronkitLayer in registered_layers()
    assert portal.portal_controlpanel.getActionObject("Products/cronkit") is not None
    portal.portal_setup.runAllImportStepsFromProfile("profile-cronkit.zope:uninstall")
    assert ICronkitLayer not in registered_layers()
    assert portal.portal_controlpanel.getActionObject("Products/cronkit") is None
    assert getSiteManager(portal) is not None


def tarball_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_a_bad_crons_xml_in_an_uploaded_tarball_is_named_so(layer: Any) -> None:
    portal = layer["portal"]
    bad = b'<?xml version="1.0"?>\n<crons>\n  <cron uid="x" name="foo"/>\n</crons>\n'
    with pytest.raises(cronkit.ProfileError) as raised:
        portal.portal_setup.runAllImportStepsFromProfile(
            None, archive=tarball_of({"crons.xml": bad}))
    assert raised.value.file == "crons.xml of the imported tarball"
    assert raised.value.line == 3
    assert crons_of(ISite(portal)) == {}


def test_a_snapshots_crons_xml_is_named_after_the_snapshot(layer: Any) -> None:
    from Products.GenericSetup.context import SnapshotImportContext

    from cronkit.zope.exportimport import profile_file

    context = SnapshotImportContext(layer["portal"].portal_setup, "before-upgrade")
    assert profile_file(context) == "crons.xml of snapshot 'before-upgrade'"


def test_a_profile_declaring_collective_crons_step_still_imports(layer: Any) -> None:
    # Its import_steps.xml names collective.cron's handler, which is not there any
    # more: GenericSetup reports that step invalid, and cronkit.crons imports the file.
    portal = layer["portal"]
    result = portal.portal_setup.runAllImportStepsFromProfile(
        "profile-tests_zope.gsaddon:legacy")
    assert result["messages"]["cronkit.crons"].startswith(
        "cronkit: crons.xml imported into /plone: the crontab has 1 cron")
    assert set(crons_of(ISite(portal))) == {"other"}


# -- the import follows the ZODB transaction that ran it ---------------------------


def state_of(site: cronkit.Site) -> tuple[bool, list[dict[str, Any]]]:
    """The crontab's switch and its crons' definitions, in order."""
    return site.crontab.activated, [cron.definition() for cron in site.crontab.crons.values()]


def test_an_aborted_transaction_undoes_its_import(layer: Any) -> None:
    portal = layer["portal"]
    site = ISite(portal)
    portal.portal_setup.runAllImportStepsFromProfile(ADDON)
    assert site.jobs.list(status=cronkit.Status.PENDING)
    transaction.abort()
    assert crons_of(site) == {}
    assert crons_of(layer["cronkit"].site("/plone")) == {}
    assert site.jobs.list(status=cronkit.Status.PENDING) == []


def test_a_committed_import_stays(layer: Any) -> None:
    portal = layer["portal"]
    portal.portal_setup.runAllImportStepsFromProfile(ADDON)
    transaction.commit()
    transaction.abort()
    assert set(crons_of(ISite(portal))) == {"foogsuid", "foogsuid2"}


def test_the_undo_puts_back_edited_removed_and_added_crons(layer: Any) -> None:
    portal = layer["portal"]
    site = ISite(portal)
    portal.portal_setup.runAllImportStepsFromProfile(ADDON)
    transaction.commit()
    before = state_of(site)
    portal.portal_setup.runAllImportStepsFromProfile("profile-tests_zope.gsaddon:edit")
    assert state_of(site) != before and site.crontab.activated is False
    transaction.abort()
    assert state_of(site) == before
    assert site.jobs.is_job_pending(site.crontab.by_uid("foogsuid"))


def test_two_imports_in_one_transaction_are_undone_together(layer: Any) -> None:
    portal = layer["portal"]
    portal.portal_setup.runAllImportStepsFromProfile(ADDON)
    portal.portal_setup.runAllImportStepsFromProfile("profile-tests_zope.gsaddon:edit")
    transaction.abort()
    assert state_of(ISite(portal)) == (True, [])


def test_a_failed_commit_undoes_the_import_once(
        layer: Any, caplog: pytest.LogCaptureFixture) -> None:
    class Refuses:
        """A resource manager of the transaction that votes no (as a conflict does)."""

        transaction_manager = transaction.manager

        def sortKey(self) -> str:
            return "~refuses"

        def tpc_vote(self, txn: Any) -> None:
            raise RuntimeError("no")

        def abort(self, txn: Any) -> None: ...
        tpc_begin = commit = tpc_finish = tpc_abort = abort

    portal = layer["portal"]
    portal.portal_setup.runAllImportStepsFromProfile(ADDON)
    transaction.get().join(Refuses())
    caplog.set_level("INFO", logger="cronkit.zope.exportimport")
    with pytest.raises(RuntimeError):
        transaction.commit()
    assert crons_of(ISite(portal)) == {}
    transaction.abort()
    assert [r.message for r in caplog.records].count(
        f"the crons.xml import into /plone ({ADDON_DIR}/default/crons.xml) was undone: "
        "its transaction aborted") == 1


def test_the_undo_leaves_a_crontab_saved_since_alone(
        layer: Any, caplog: pytest.LogCaptureFixture) -> None:
    portal = layer["portal"]
    site = ISite(portal)
    portal.portal_setup.runAllImportStepsFromProfile(ADDON)
    site.crontab.add_cron(cronkit.Cron(uid="by-hand", name="x", periodicity="@hourly"))
    site.crontab.save()     # e.g. on the dashboard, by someone else
    transaction.abort()
    assert set(crons_of(site)) == {"foogsuid", "foogsuid2", "by-hand"}
    assert any("was not undone" in r.getMessage() and r.levelname == "ERROR"
               for r in caplog.records)


def test_a_bad_import_registers_nothing_to_undo(layer: Any) -> None:
    portal = layer["portal"]
    portal.portal_setup.runAllImportStepsFromProfile(ADDON)
    transaction.commit()
    with pytest.raises(cronkit.ProfileError):
        portal.portal_setup.runAllImportStepsFromProfile("profile-tests_zope.gsaddon:bad")
    transaction.abort()
    assert set(crons_of(ISite(portal))) == {"foogsuid", "foogsuid2"}


def test_an_undo_that_cannot_be_done_is_logged_and_the_abort_goes_on(
        layer: Any, caplog: pytest.LogCaptureFixture) -> None:
    portal = layer["portal"]
    site = ISite(portal)
    portal.portal_setup.runAllImportStepsFromProfile(ADDON)
    site.crontab.read_only = True
    transaction.abort()
    assert set(crons_of(site)) == {"foogsuid", "foogsuid2"}
    assert any("could not be undone" in r.getMessage() and r.levelname == "ERROR"
               and "read-only" in r.getMessage() + str(r.exc_info and r.exc_info[1])
               for r in caplog.records)
    site.crontab.read_only = False
