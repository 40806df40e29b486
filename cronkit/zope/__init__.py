"""cronkit inside Zope and Plone (issue 19; docs/howto/plone.rst).

Load it with ``<include package="cronkit.zope"/>``. A Plone (or CMF) site root, or a Zope
folder marked :class:`~cronkit.zope.interfaces.ICronkitSiteRoot`, is a cronkit site named
after its physical path; :class:`Runner` runs a job in the ZODB on its site; the worker
starts inside the instance at Zope start (:mod:`cronkit.zope.lifetime`, configured by
:mod:`cronkit.zope.config`). The queue stays in cronkit's store, never in the ZODB.
"""

from __future__ import annotations

from .config import Settings, database, kit, set_database, set_kit, settings
from .exceptions import ZopeConfigError, ZopeRunnerError
from .runner import Runner
from .sites import site_of

__all__ = [
    "Runner",
    "Settings",
    "ZopeConfigError",
    "ZopeRunnerError",
    "database",
    "kit",
    "set_database",
    "set_kit",
    "settings",
    "site_of",
]
