"""ICrontabRegistryManager: persists a site's crontab through the store."""

from __future__ import annotations

from collections.abc import Mapping
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from zope.component import adapter
from zope.interface import implementer

from ..events import ModifiedCrontabEvent, notify
from ..exceptions import CronkitError, InvalidCron, InvalidParameters, ReadOnlyCrontab
from ..interfaces import ICrontabRegistryManager, IQueueMarker, ISite
from ..jobs import validate_payload
from ..model import Cron, CronRecord, Crontab
from ..runner import runner_factory

if TYPE_CHECKING:
    from ..site import Site


_ROW = attrgetter("row")
_NAME = CronRecord.KEYS.index("name")


@implementer(ICrontabRegistryManager)
@adapter(ISite)
class CrontabRegistryManager:
    """Reads and writes a site's crontab through the model's persistence API."""

    def __init__(self, site: Site):
        self.site = site
        self.store = site.kit.store

    def load(self) -> Crontab:
        """A new Crontab read from the store (not the site's live one)."""
        return Crontab.from_store(self.store.load_crontab(self.site.name), self.site,
                                  consume=True)

    def refresh(self, crontab: Crontab, data: Mapping[str, Any] | None = None) -> None:
        """Make ``crontab`` show what the store holds, in place, keeping Cron objects."""
        crontab.site = self.site
        if data:
            crontab.refresh_from(data)
        else:
            crontab.refresh_from(self.store.load_crontab(self.site.name), consume=True)

    def save(self, crontab: Crontab, only: str | None = None) -> None:
        """Write what changed (everything, or the cron ``only``); emit ModifiedCrontabEvent."""
        if crontab.read_only:
            raise ReadOnlyCrontab(f"the crontab of site {self.site.name!r} is read-only: "
                                  "nothing was saved")
        changes = crontab.changes(only)
        # Each runner's parameter format looked up once; the environs of the crons of
        # runners with one are checked before anything is written: all or nothing.
        names = {row[_NAME] for row in map(_ROW, changes.upserts)}
        checked = {name for name in names if parameters_of(self.site, name)}
        if checked:
            for record in changes.upserts:
                if record.row[_NAME] in checked:
                    check_environ_of(self.site, record["uid"], record["name"],
                                     record["environ"])
        version, ids = self.store.save_crontab(self.site.name, changes.activated, changes.upserts,
                                               changes.deletes, changes.new_logs,
                                               changes.deleted_logs)
        clean = crontab.saved(changes, version, ids)
        del changes     # the rows of every cron saved: not kept through the sync below
        if not clean and not crontab.dirty:
            # Others wrote meanwhile: show what the store holds at once when nothing is
            # left unsaved (else the first access after the next save does).
            self.refresh(crontab)
        self.site.registry.getAdapter(self.site, IQueueMarker).mark()
        notify(ModifiedCrontabEvent(crontab=crontab))

    def save_cron(self, cron: Cron) -> None:
        if cron.crontab is None:
            raise CronkitError(f"cron {cron.uid!r} is in no crontab: add it to one first")
        self.save(cron.crontab, only=cron.uid)


def check_environ_of(site: Site, uid: str, name: str, environ: dict) -> dict:
    """The environ of cron ``uid`` checked against the parameter format of its runner
    ``name`` (when one is registered and has a format), with the format's defaults
    filled in; InvalidCron naming the cron and each field at fault."""
    parameters = parameters_of(site, name)
    if not parameters:
        return environ
    try:
        return validate_payload(parameters, environ)
    except InvalidParameters as exc:
        fields = ", ".join(f"{k}: {v}" for k, v in exc.errors.items())
        raise InvalidCron(f"invalid environ of cron {uid!r} for runner {name!r}: {fields}",
                          "environ", environ) from None


def parameters_of(site: Site, name: str) -> Any:
    """The parameter format of the runner ``name`` for ``site``; None without one."""
    factory = runner_factory(site, name)
    return getattr(factory, "parameters", None) if factory is not None else None
