"""The narrative pages are doctests run after the test suite, in the same process:
each starts with no global runner that a test module registered when it was imported
(their output lists the runners a reader's own code registers, nothing else)."""

import pytest
from zope.component import getGlobalSiteManager

import cronkit
from cronkit.interfaces import IJob, IJobRunner, ISite


@pytest.fixture(autouse=True)
def _no_runner_of_the_test_suite():
    registry = getGlobalSiteManager()
    for name, factory in list(registry.adapters.lookupAll((ISite, IJob), IJobRunner)):
        if name and getattr(factory, "__module__", "").startswith("tests."):
            cronkit.unregister_runner(name)
    yield
