"""The narrative pages are doctests run after the test suite, in the same process:
each starts with no global runner that a test module registered when it was imported
(their output lists the runners a reader's own code registers, nothing else)."""

import pytest
from zope.component import getGlobalSiteManager

import cronkit
from cronkit.interfaces import IJob, IJobRunner, ISite

try:
    import Products.CMFPlone  # noqa: F401
except ImportError:
    # The Plone how-to runs on a Plone site: `make test-zope` runs it, in .venv-zope.
    collect_ignore = ["howto/plone.rst"]


@pytest.fixture(autouse=True)
def _no_runner_of_the_test_suite():
    registry = getGlobalSiteManager()
    for name, factory in list(registry.adapters.lookupAll((ISite, IJob), IJobRunner)):
        if name and getattr(factory, "__module__", "").startswith("tests."):
            cronkit.unregister_runner(name)
    yield
