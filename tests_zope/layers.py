"""The test layers of cronkit inside Zope and Plone, shared by every tests_zope module.

* ``CRONKIT_PLONE_FIXTURE``: Plone 6 (plone.app.testing's fixture) with ``cronkit.zope``'s
  configure.zcml loaded, a second Plone site ``plone2`` beside ``plone`` and, on both,
  the ``cronkit.zope:default`` profile;
* ``CRONKIT_PLONE_FUNCTIONAL_TESTING``: on it, each test with a DemoStorage of its own
  (jobs' commits are real commits) and a fresh cronkit kit: an SQLite store file in a
  temporary directory and a FakeClock, the process's kit (``cronkit.zope.set_kit``) for
  the test, the test's ZODB its database (``cronkit.zope.set_database``);
* ``CRONKIT_ZOPE_FIXTURE`` / ``CRONKIT_ZOPE_FUNCTIONAL_TESTING``: the same on a plain
  Zope application (no Plone, no CMF site): a folder ``zopesite`` marked
  ``ICronkitSiteRoot`` is the cronkit site ``"/zopesite"``.

A test reaches them as ``layer["portal"]``, ``layer["app"]``, ``layer["zodbDB"]``,
``layer["cronkit"]`` (the kit), ``layer["clock"]`` (its FakeClock) and ``layer["tmpdir"]``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from typing import Any

import transaction
from plone.app.testing import (
    PLONE_FIXTURE,
    SITE_OWNER_NAME,
    TEST_USER_ID,
    TEST_USER_NAME,
    TEST_USER_PASSWORD,
    FunctionalTesting,
    PloneSandboxLayer,
    applyProfile,
)
from plone.testing import Layer, zca, zodb
from plone.testing import zope as zope_testing

import cronkit
import cronkit.zope
from cronkit.zope import lifetime

#: When every test's FakeClock starts.
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
PROFILE = "cronkit.zope:default"
SECOND_SITE = "plone2"
ZOPE_SITE = "zopesite"


class CronkitPloneFixture(PloneSandboxLayer):
    defaultBases = (PLONE_FIXTURE,)

    def setUpZope(self, app: Any, configurationContext: Any) -> None:
        self.loadZCML(package=cronkit.zope)

    def setUpPloneSite(self, portal: Any) -> None:
        from Products.CMFPlone.factory import addPloneSite
        from zope.component.hooks import setSite

        app = portal.getPhysicalRoot()
        zope_testing.login(app["acl_users"], SITE_OWNER_NAME)
        try:
            addPloneSite(app, SECOND_SITE, title="Plone site 2", setup_content=False,
                         extension_ids=PLONE_FIXTURE.extensionProfiles)
        finally:
            zope_testing.logout()
        second = app[SECOND_SITE]
        second["portal_workflow"].setDefaultChain("")
        pas = second["acl_users"]
        pas.source_users.addUser(TEST_USER_ID, TEST_USER_NAME, TEST_USER_PASSWORD)
        pas.portal_role_manager.doAssignRoleToPrincipal(TEST_USER_ID, "Member")
        # The profile marks each site in the kit's store: a kit of the fixture's own
        # (in memory), never the default store file of the process's settings.
        kit = cronkit.Cronkit(store="memory://", clock=cronkit.FakeClock(START))
        cronkit.zope.set_kit(kit)
        try:
            for site in (portal, second):
                setSite(site)
                applyProfile(site, PROFILE)
        finally:
            cronkit.zope.set_kit(None)
            kit.close()
        setSite(portal)


CRONKIT_PLONE_FIXTURE = CronkitPloneFixture(name="CronkitPloneFixture")


class CronkitZopeFixture(Layer):
    """A plain Zope application with cronkit.zope loaded and a folder marked
    ``ICronkitSiteRoot``."""

    defaultBases = (zope_testing.STARTUP,)

    def setUp(self) -> None:
        from OFS.Folder import manage_addFolder
        from zope.configuration import xmlconfig
        from zope.interface import alsoProvides

        from cronkit.zope.interfaces import ICronkitSiteRoot

        self["zodbDB"] = zodb.stackDemoStorage(self.get("zodbDB"), name="CronkitZopeFixture")
        self["configurationContext"] = context = zca.stackConfigurationContext(
            self.get("configurationContext"), name="CronkitZopeFixture")
        zca.pushGlobalRegistry()
        xmlconfig.file("configure.zcml", cronkit.zope, context=context)
        with zope_testing.zopeApp() as app:
            manage_addFolder(app, ZOPE_SITE)
            alsoProvides(app[ZOPE_SITE], ICronkitSiteRoot)

    def tearDown(self) -> None:
        zca.popGlobalRegistry()
        del self["configurationContext"]
        self["zodbDB"].close()
        del self["zodbDB"]


CRONKIT_ZOPE_FIXTURE = CronkitZopeFixture(name="CronkitZopeFixture")


class KitLifecycle:
    """Around each test: a fresh kit on an SQLite file in a temporary directory with a
    FakeClock, made the process's kit, and the test's ZODB the jobs' database."""

    def testSetUp(self) -> None:
        super().testSetUp()  # type: ignore[misc]
        tmpdir = tempfile.mkdtemp(prefix="cronkit-zope-")
        clock = cronkit.FakeClock(START)
        kit = cronkit.Cronkit(store="sqlite:///" + os.path.join(tmpdir, "cronkit.db"),
                              clock=clock)
        self["tmpdir"], self["clock"], self["cronkit"] = tmpdir, clock, kit  # type: ignore[index]
        cronkit.zope.set_kit(kit)
        cronkit.zope.set_database(self["zodbDB"])  # type: ignore[index]

    def testTearDown(self) -> None:
        try:
            # First, while the test's kit is there: an abort may use it (the undo of
            # a crons.xml import that the test did not commit).
            transaction.abort()
            lifetime.stop_worker()
            cronkit.zope.set_kit(None)
            cronkit.zope.set_database(None)
            self["cronkit"].close()  # type: ignore[index]
            shutil.rmtree(self["tmpdir"], ignore_errors=True)  # type: ignore[index]
            for key in ("cronkit", "clock", "tmpdir"):
                del self[key]  # type: ignore[attr-defined]
        finally:
            transaction.abort()
            super().testTearDown()  # type: ignore[misc]


class CronkitPloneFunctionalTesting(KitLifecycle, FunctionalTesting):
    pass


class CronkitZopeFunctionalTesting(KitLifecycle, zope_testing.FunctionalTesting):
    pass


CRONKIT_PLONE_FUNCTIONAL_TESTING = CronkitPloneFunctionalTesting(
    bases=(CRONKIT_PLONE_FIXTURE,), name="CronkitPlone:Functional")
CRONKIT_ZOPE_FUNCTIONAL_TESTING = CronkitZopeFunctionalTesting(
    bases=(CRONKIT_ZOPE_FIXTURE,), name="CronkitZope:Functional")
