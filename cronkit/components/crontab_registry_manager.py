"""ICrontabRegistryManager: persists a site's crontab through the store."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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


#: A crontab of this many crons is saved with the cyclic garbage collector paused.
PAUSE_AT = 1000
_paused = 0
_resume = False
_pausing = threading.Lock()


@contextmanager
def collector_paused(size: int = PAUSE_AT) -> Iterator[None]:
    """Pause Python's cyclic garbage collector meanwhile when ``size`` (the crons the
    work goes through) is at least PAUSE_AT: reading, saving or syncing a crontab of
    100,000 crons keeps some hundreds of thousands of new objects alive (none of them
    garbage), and the collector walked every object of the process several times
    meanwhile, a tenth of a save's time. Nested and concurrent pauses end with the
    last one; a collector that was off stays off. Memory freed by reference counts (most
    of it) is freed at once as ever; only cycles wait for the end."""
    global _paused, _resume
    if size < PAUSE_AT:
        yield
        return
    with _pausing:
        if _paused == 0:
            _resume = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _pausing:
            _paused -= 1
            if _paused == 0 and _resume:
                gc.enable()


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
        with collector_paused():
            return Crontab.from_store(self.store.load_crontab(self.site.name), self.site,
                                      consume=True)

    def refresh(self, crontab: Crontab, data: Mapping[str, Any] | None = None) -> None:
        """Make ``crontab`` show what the store holds, in place, keeping Cron objects."""
        crontab.site = self.site
        with collector_paused():
            if data:
                crontab.refresh_from(data)
            else:
                crontab.refresh_from(self.store.load_crontab(self.site.name), consume=True)

    def save(self, crontab: Crontab, only: str | None = None) -> None:
        """Write what changed (everything, or the cron ``only``); emit ModifiedCrontabEvent."""
        if crontab.read_only:
            raise ReadOnlyCrontab(f"the crontab of site {self.site.name!r} is read-only: "
                                  "nothing was saved")
        with collector_paused(len(crontab.crons) if only is None else 1):
            self._save(crontab, only)

    def _save(self, crontab: Crontab, only: str | None) -> None:
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
