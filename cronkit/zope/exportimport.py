"""GenericSetup's steps for ``crons.xml``, collective.cron's format, and cronkit's profile.

The import step ``cronkit.crons`` reads the profile's ``crons.xml`` (nothing happens
when the profile has none) into the crontab of the site that holds ``portal_setup``,
with cronkit's own reader (:func:`cronkit.profiles.cronsxml.import_crons`): entries add,
edit or remove crons by uid, in document order, and the import applies whole or not at
all. A bad file raises :class:`~cronkit.ProfileError` naming the profile's
``crons.xml`` and the line, and changes nothing (neither the crontab nor the store).
The export step ``cronkit.crons`` writes the site's crontab as ``crons.xml``, which
imports back to the same crontab.

collective.cron's step names (``collective.cron.setupCrons``,
``collective.cron.exportCrons``) are registered too, with the same handlers, so that
profiles and upgrade steps that name them keep working. When GenericSetup runs both
names on one profile (``runAllImportStepsFromProfile`` runs every step), the file is
imported, or written, once: the first step of the two does it, the other notes that
it was done.

The crontab lives in cronkit's store, not in the ZODB: an import is saved when its
step runs (the site's queue follows at once), and it follows the ZODB transaction that
ran the step as far as a store outside the ZODB can: when that transaction aborts
(another step or the add-on's install failed) or its commit fails, the crontab is put
back as it was before the transaction's first import (:class:`ImportUndo`), unless
someone else saved it meanwhile (then it is left alone, with an error logged).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import transaction

from cronkit.exceptions import ProfileError
from cronkit.interfaces import IQueueMarker, ISite
from cronkit.profiles import CRON_ATTRIBUTES, CronEntry, apply_entries

#: The file both steps read and write, at the top of a profile.
FILENAME = "crons.xml"
#: The logger name of the steps' notes (``context.getLogger``).
LOGGER = "cronkit.crons"
# Set on a GenericSetup context whose crons.xml one of the two step names has done.
_DONE = "_cronkit_crons_done"

__all__ = ["FILENAME", "ImportUndo", "export_crons", "import_crons", "install",
           "profile_file"]

log = logging.getLogger(__name__)


def profile_file(context: Any, filename: str = FILENAME) -> str:
    """How errors name ``filename`` of the profile ``context`` imports: its path for a
    profile directory, else the file in the kind of import (a tarball, a snapshot)."""
    path = getattr(context, "_profile_path", None)
    if isinstance(path, str):
        return os.path.join(path, filename)
    snapshot = getattr(context, "_snapshot_id", None)
    if isinstance(snapshot, str):
        return f"{filename} of snapshot {snapshot!r}"
    return f"{filename} of the imported tarball"


def _site(context: Any) -> Any:
    """The cronkit site of the GenericSetup context's site."""
    return ISite(context.getSite())


def _once(context: Any, what: str) -> bool:
    """True the first time for ``context`` and ``what`` (import or export); later
    calls (the step under its other name) get False."""
    done = getattr(context, _DONE, None)
    if done is None:
        done = set()
        setattr(context, _DONE, done)
    if what in done:
        return False
    done.add(what)
    return True


def import_crons(context: Any) -> str:
    """Import step ``cronkit.crons`` (and ``collective.cron.setupCrons``): apply the
    profile's crons.xml to the site's crontab; return the step's message.

    :raises ProfileError: the file is bad (naming the profile's crons.xml and the
        line); nothing of it was applied.
    """
    data = context.readDataFile(FILENAME)
    if data is None:
        return f"cronkit: no {FILENAME} in this profile"
    if not _once(context, "import"):
        return f"cronkit: {FILENAME} already imported by the other name of this step"
    site = _site(context)
    undo = ImportUndo.of(site, profile_file(context))
    try:
        # bytes, always: cronkit's reader takes a str that is not XML text for a path.
        crontab = site.import_crons(data.encode("utf-8") if isinstance(data, str)
                                    else bytes(data))
    except ProfileError as exc:
        file = profile_file(context)
        context.getLogger(LOGGER).error(f"{file}: not imported: {exc.message}")
        # The reader names the file "<string>" (it read bytes): name the profile's.
        raise ProfileError(exc.message, file=file, line=exc.line) from None
    undo.imported()
    count = len(crontab.crons)
    message = (f"cronkit: {FILENAME} imported into {site.name}: the crontab has {count} "
               f"cron{'' if count == 1 else 's'}")
    context.getLogger(LOGGER).info(message)
    return message


def _attributes(definition: dict[str, Any]) -> dict[str, Any]:
    return {key: definition[key] for key in CRON_ATTRIBUTES}


class ImportUndo:
    """What puts a site's crontab back as it was before the crons.xml imports of the
    current ZODB transaction, should that transaction abort or its commit fail.

    One per site and transaction (:meth:`of`): it remembers the crontab before the
    first import, and the store's crontab version after the last one; the undo does
    nothing when the version has moved since (someone else saved the crontab: theirs
    is kept), and never raises (a transaction's abort cannot fail on it): it logs."""

    def __init__(self, site: Any, file: str):
        crontab = site.crontab
        self.site = site
        self.file = file
        self.activated = crontab.activated
        self.crons = {uid: _attributes(cron.definition())
                      for uid, cron in crontab.crons.items()}
        self.version: int | None = None
        self.done = False

    @classmethod
    def of(cls, site: Any, file: str) -> ImportUndo:
        """The undo of ``site``'s imports in the current transaction (made, and hooked
        to the transaction's abort and failed commit, by the first import)."""
        txn = transaction.get()
        try:
            found: ImportUndo = txn.data(site)
        except KeyError:
            found = cls(site, file)
            txn.set_data(site, found)
            txn.addAfterAbortHook(found.undo)
            txn.addAfterCommitHook(found.after_commit)
        return found

    def imported(self) -> None:
        """An import was saved: the crontab the undo expects to find is this one."""
        self.version = self.site.kit.store.crontab_version(self.site.name)

    def after_commit(self, committed: bool) -> None:
        if not committed:
            self.undo()

    def undo(self) -> None:
        """Put the crontab back as it was before the first import, once."""
        if self.done or self.version is None:
            return
        self.done = True
        name = self.site.name
        try:
            if self.site.kit.store.crontab_version(name) != self.version:
                log.error("the crons.xml import into %s (%s) was not undone when its "
                          "transaction aborted: the crontab was saved again since",
                          name, self.file)
                return
            entries = [CronEntry(uid, remove=True) for uid in self.site.crontab.crons
                       if uid not in self.crons]
            entries += [CronEntry(uid, dict(attrs)) for uid, attrs in self.crons.items()]
            apply_entries(self.site.crontab, entries, default_activated=False,
                          activated=self.activated, source=f"the undo of {self.file}")
        except Exception:
            log.exception("the crons.xml import into %s (%s) could not be undone when its "
                          "transaction aborted", name, self.file)
        else:
            log.info("the crons.xml import into %s (%s) was undone: its transaction "
                     "aborted", name, self.file)


def export_crons(context: Any) -> str:
    """Export step ``cronkit.crons`` (and ``collective.cron.exportCrons``): write the
    site's crontab as crons.xml (UTF-8); return the step's message."""
    if not _once(context, "export"):
        return f"cronkit: {FILENAME} already exported by the other name of this step"
    site = _site(context)
    context.writeDataFile(FILENAME, site.export_crons().encode("utf-8"), "text/xml")
    message = f"cronkit: {FILENAME} exported from {site.name}"
    context.getLogger(LOGGER).info(message)
    return message


def install(tool: Any) -> None:
    """Post-handler of the ``cronkit.zope:default`` profile: mark the site's cronkit
    site, so that a restart of Zope restores its cron jobs (its crontab may be empty
    yet)."""
    from Acquisition import aq_inner, aq_parent

    site = ISite(aq_parent(aq_inner(tool)))
    site.registry.getAdapter(site, IQueueMarker).mark()
