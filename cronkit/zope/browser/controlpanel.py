"""The Plone control panel of cronkit: ``@@cronkit-controlpanel`` on a Plone site.

It shows the site's crontab (its switch, and each cron's uid, name, periodicity, state,
next and last run, and the status of its last logs) and, when ``dashboard-url`` is set
(:mod:`cronkit.zope.config`), links to cronkit's dashboard page of the site, where the
crons and jobs are edited. Its one form turns the crontab on or off: a POST that carries
plone.protect's authenticator (the change goes to cronkit's store, not to the ZODB,
so plone.protect's automatic protection would not see it). The view needs "Manage
portal" (``cmf.ManagePortal``); its template escapes every value.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any
from urllib.parse import quote

from Products.Five.browser import BrowserView
from zExceptions import BadRequest

from cronkit.interfaces import ISite

from ..config import settings

#: How many of a cron's logs the panel shows (most recent first).
SHOWN_LOGS = 5
_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


def _when(instant: datetime | None) -> str | None:
    return instant.strftime(_FORMAT) if instant is not None else None


def dashboard_link(base: str | None, site_name: str) -> str | None:
    """The dashboard's page of the site ``site_name`` under the dashboard at ``base``
    (``<base>/sites/<name as one URL segment>``), or None without a base."""
    if not base:
        return None
    return f"{base.rstrip('/')}/sites/{quote(site_name, safe='')}"


class ControlPanel(BrowserView):
    """``@@cronkit-controlpanel``: the site's crontab (see the module's docstring)."""

    status: str | None = None

    def __call__(self) -> Any:
        if self.request.get("REQUEST_METHOD", "GET") == "POST":
            self.handle_switch()
        return self.index()

    @cached_property
    def site(self) -> Any:
        """The cronkit site of this Plone site (looked up once per request)."""
        return ISite(self.context)

    def handle_switch(self) -> None:
        """Turn the crontab on (``activated=on``) or off (``activated=off``).

        :raises zExceptions.Forbidden: no valid authenticator (plone.protect).
        :raises zExceptions.BadRequest: ``activated`` is neither ``on`` nor ``off``.
        """
        from plone.protect import CheckAuthenticator

        CheckAuthenticator(self.request)
        value = self.request.form.get("activated")
        if value not in ("on", "off"):
            raise BadRequest(f"activated must be 'on' or 'off', not {value!r}")
        crontab = self.site.crontab
        crontab.activated = value == "on"
        crontab.save()
        self.status = f"The crontab is {value}."

    def crontab(self) -> dict[str, Any]:
        """The crontab's switch and size."""
        crontab = self.site.crontab
        return {"activated": crontab.activated, "read_only": crontab.read_only,
                "count": len(crontab.crons), "site": self.site.name}

    def crons(self) -> list[dict[str, Any]]:
        """Each cron of the crontab, in its order, as the template shows it."""
        shown = []
        for cron in self.site.crontab.crons.values():
            logs = list(cron.logs)[:SHOWN_LOGS]
            shown.append({
                "uid": cron.uid,
                "name": cron.name,
                "periodicity": cron.periodicity,
                "expanded": cron.expanded if cron.expanded != cron.periodicity else None,
                "activated": cron.activated,
                "next": _when(cron.next),
                "last": _when(cron.last.date.astimezone(cron.tz)) if cron.last else None,
                "logs": [{"status": log.status.value,
                          "date": _when(log.date.astimezone(cron.tz)),
                          "messages": "; ".join(log.messages)} for log in logs],
            })
        return shown

    def dashboard_url(self) -> str | None:
        """The dashboard's page of this site, when ``dashboard-url`` is set."""
        return dashboard_link(settings().dashboard_url, self.site.name)
