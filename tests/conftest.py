"""Shared fixtures: a FakeClock, a kit on a real SQLite file, a site, and a clean
global runner registry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from zope.component import getGlobalSiteManager

import cronkit
from cronkit.interfaces import IJobRunner

pytest_plugins = ["tests.servers"]

START = datetime(2008, 1, 1, 1, 3, tzinfo=UTC)


def pytest_collection_finish(session):
    """The buildout test's build starts now, in the background, when it is to run."""
    if any(item.nodeid.startswith("tests/test_buildout.py") for item in session.items):
        from tests.test_buildout import start_in_background
        start_in_background()


def pytest_sessionfinish(session):
    import sys
    module = sys.modules.get("tests.test_buildout")
    if module is not None:
        module.stop_background()


@pytest.fixture
def clock():
    return cronkit.FakeClock(START)


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'cronkit.db'}"


@pytest.fixture
def kit(db_url, clock):
    kit = cronkit.Cronkit(store=db_url, clock=clock)
    yield kit
    kit.close()


@pytest.fixture
def site(kit):
    return kit.site("plone")


@pytest.fixture
def contract_runners():
    """The runners that worker processes get from ``--import tests.contracts.runners``,
    registered globally in this process for one test (clean_global_runners removes them)."""
    from tests.contracts.runner_classes import register_globally
    register_globally()


@pytest.fixture(autouse=True)
def clean_global_runners():
    """Runners registered globally by a test are unregistered after it."""
    gsm = getGlobalSiteManager()
    before = {r.name for r in gsm.registeredAdapters() if r.provided is IJobRunner}
    yield
    for reg in list(gsm.registeredAdapters()):
        if reg.provided is IJobRunner and reg.name not in before:
            gsm.unregisterAdapter(reg.factory, reg.required, reg.provided, reg.name)


@pytest.fixture(autouse=True)
def _no_function_task_left_registered():
    """tests.jobrunners registers its function tasks when imported (at collection, for
    every test): a test that uses them registers them (``jobrunners.register()``), and
    no other test sees them."""
    from tests import jobrunners
    for name in jobrunners.FUNCTION_TASKS:
        cronkit.unregister_runner(name)
    yield
    for name in jobrunners.FUNCTION_TASKS:
        cronkit.unregister_runner(name)
