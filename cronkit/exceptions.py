"""Every error cronkit raises, rooted at :class:`CronkitError`.

Lookup errors also derive from :class:`LookupError`; configuration errors carry
the file and line they come from.
"""

from __future__ import annotations


class CronkitError(Exception):
    """Base of every cronkit error."""


class InvalidCron(CronkitError, ValueError):
    """A cron attribute has a value cronkit refuses; the message names it."""

    def __init__(self, message: str, field: str | None = None, value: object = None):
        super().__init__(message)
        self.field = field
        self.value = value


class InvalidCrontab(CronkitError, ValueError):
    """A crontab (or its dump) is not valid."""


class InvalidLog(CronkitError, ValueError):
    """A log (or its dump) is not valid."""


class NoSuchCron(CronkitError, LookupError):
    """No cron has that uid."""


class NoSuchJob(CronkitError, LookupError):
    """No job has that id."""


class UnknownRunner(CronkitError, LookupError):
    """No runner is registered under that name for the site."""


class InvalidParameters(CronkitError, ValueError):
    """A job payload does not match its runner's parameter format.

    ``errors`` maps each field at fault to what is wrong with it.
    """

    def __init__(self, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.errors = dict(errors or {})


class InvalidResult(CronkitError, ValueError):
    """A runner returned a value that cannot be stored as its job's result (not JSON,
    or over the 1 MiB limit of payloads); the job ends FAILED with this error."""


class Retry(CronkitError):
    """Raised by a runner: run this job again in ``delay`` seconds (default: the
    runner's backoff), for ``reason``. Huey's RetryTask, Celery's ``self.retry()``.
    Counts as an attempt: past the runner's ``retries`` the job ends FAILED."""

    def __init__(self, reason: str = "retry asked", delay: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class ReadOnlyCrontab(CronkitError):
    """The crontab is read-only: saving it changed nothing."""


class StoreError(CronkitError):
    """The store could not do what was asked (bad URL, schema, connection)."""


class DuplicateFiring(StoreError):
    """A job for the same (site, cron uid, scheduled time) is already stored."""


class ReadOnlyStore(StoreError):
    """The store is read-only (opened so, or its file or folder is not writable): a
    write was refused and nothing changed."""


class StoreGone(StoreError):
    """The store's database is no longer the one that was opened: its file was deleted
    or replaced by another since."""


class ProfileError(CronkitError):
    """A profile (ZCML or crons.xml) is invalid; nothing of it was applied."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        self.message = message
        self.file = file
        self.line = line
        where = ""
        if file is not None:
            where = f"{file}, line {line}: " if line is not None else f"{file}: "
        super().__init__(f"{where}{message}")
