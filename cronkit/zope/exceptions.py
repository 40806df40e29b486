"""The typed errors of cronkit inside Zope (both are ``cronkit.CronkitError``)."""

from __future__ import annotations

from cronkit.exceptions import CronkitError


class ZopeRunnerError(CronkitError):
    """A Zope runner could not run where it must: no ZODB database, no site of that
    name, an unknown user, an ``async def run``. The message names what was missing."""


class ZopeConfigError(CronkitError):
    """A bad value in zope.conf's ``<product-config cronkit>`` or in a ``CRONKIT_*``
    environment variable; the message names the key (or variable) and the value."""

    def __init__(self, message: str, key: str, value: str):
        super().__init__(message)
        self.key = key
        self.value = value
