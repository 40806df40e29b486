"""Shared fixtures: a FakeClock, a kit on a real SQLite file, a site, and a clean
global runner registry."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from zope.component import getGlobalSiteManager

import cronkit
from cronkit.interfaces import IJobRunner

pytest_plugins = ["tests.servers"]

START = datetime(2008, 1, 1, 1, 3, tzinfo=UTC)


BUILDOUT_TESTS = "tests/test_buildout.py"
# The build's state lives in the module as pytest imports it (``test_buildout``: tests/
# is no package), so conftest imports it by that same name.


def pytest_configure(config):
    folder = getattr(config, "workerinput", {}).get("cronkit_buildout")
    if folder:                  # an xdist worker: the controller builds
        from test_buildout import follow_background
        follow_background(Path(folder))


def pytest_collection_modifyitems(items):
    """The buildout tests run last: the build, started in the background at the
    session's start, is then done when they ask for it, in one process or under xdist."""
    items.sort(key=lambda item: item.nodeid.startswith(BUILDOUT_TESTS))


def pytest_collection_finish(session):
    """The buildout test's build starts now, in the background, when it is to run."""
    if hasattr(session.config, "workerinput"):
        return
    if any(item.nodeid.startswith(BUILDOUT_TESTS) for item in session.items):
        from test_buildout import start_in_background
        start_in_background()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """The xdist controller: one build folder, named to every worker."""
    config = node.config
    if not hasattr(config, "_cronkit_buildout"):
        config._cronkit_buildout = Path(tempfile.mkdtemp(prefix="cronkit-buildout-"))
    node.workerinput["cronkit_buildout"] = str(config._cronkit_buildout)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """The xdist controller starts the build once a worker has collected its tests."""
    if any(i.startswith(BUILDOUT_TESTS) for i in ids):
        from test_buildout import start_in_background
        start_in_background(node.config._cronkit_buildout)


def pytest_sessionfinish(session):
    import sys
    module = sys.modules.get("test_buildout")
    if module is not None:
        module.stop_background()
    folder = getattr(session.config, "_cronkit_buildout", None)
    if folder is not None:      # the controller's folder, built in or not
        shutil.rmtree(folder, ignore_errors=True)
        Path(str(folder) + "-result.json").unlink(missing_ok=True)


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory):
    """The one folder of the session's screenshots (the browser tests'), under pytest's
    base temporary folder; its path is printed."""
    folder = tmp_path_factory.mktemp("screenshots", numbered=False)
    print(f"\nscreenshots are saved under {folder}")
    return folder


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
    every test), tests.drainrunners its runners: a test that uses them registers them
    (``jobrunners.register()``, ``drainrunners.register()``), and no other test sees
    them."""
    import sys

    from tests import jobrunners
    names = list(jobrunners.FUNCTION_TASKS)
    drain = sys.modules.get("tests.drainrunners")   # registers its runners when imported
    if drain is not None:
        names += list(drain.RUNNERS)
    for name in names:
        cronkit.unregister_runner(name)
    yield
    for name in names:
        cronkit.unregister_runner(name)
