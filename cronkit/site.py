"""Site: a named context with its own registry, live crontab and job queue."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from zope.interface import implementer
from zope.interface.registry import Components

from .interfaces import (
    ICronManager,
    ICrontabRegistryManager,
    IJob,
    IJobRunner,
    IQueueManager,
    ISite,
)
from .model import Cron, Crontab, Log, zone
from .runner import register_runner

if TYPE_CHECKING:
    from .components.cron_manager import CronManager
    from .components.crontab_registry_manager import CrontabRegistryManager
    from .components.queue_manager import QueueManager
    from .jobs import Job


@implementer(ISite)
class Site:
    """A tenant. ``site.registry`` is based on the kit's registry (itself based on the
    global one): a runner registered here overrides a global one for this site only."""

    def __init__(self, kit: Any, name: str, timezone: str = "UTC"):
        self.kit = kit
        self.name = name
        zone(timezone)
        self.timezone = timezone
        self.registry = Components(f"cronkit-site-{name}", bases=(kit.registry,))
        self._crontab: Crontab | None = None
        self._lock = threading.RLock()
        self._marked = False
        self._jobs: tuple[int, QueueManager] | None = None

    def __repr__(self) -> str:
        return f"<Site {self.name!r}>"

    # -- crontab ----------------------------------------------------------------

    @property
    def _registry_manager(self) -> CrontabRegistryManager:
        return self.registry.getAdapter(self, ICrontabRegistryManager)

    @property
    def crontab(self) -> Crontab:
        """The live crontab: the same object on every access, refreshed in place from
        the store (a version check) unless it holds unsaved changes."""
        with self._lock:
            if self._crontab is None:
                self._crontab = self._registry_manager.load()
            elif not self._crontab.dirty:
                if self.kit.store.crontab_version(self.name) != self._crontab.version:
                    self._registry_manager.refresh(self._crontab)
            return self._crontab

    def save_crontab(self, crontab: Crontab, only: str | None = None) -> None:
        with self._lock:
            self._registry_manager.save(crontab, only=only)

    def log_added(self, uid: str, log: Log, version: int) -> None:
        """A worker of this kit logged a run: show it in the live crontab at once
        (when the crontab shows everything else the store holds)."""
        with self._lock:
            if self._crontab is not None:
                self._crontab.log_added(uid, log, version)

    def cron_manager(self, cron: Cron) -> CronManager:
        """The ICronManager of ``cron`` in this site."""
        return self.registry.getMultiAdapter((self, cron), ICronManager)

    # -- jobs -------------------------------------------------------------------

    @property
    def jobs(self) -> QueueManager:
        """The site's IQueueManager (looked up again only when a registration changed:
        every submit asks for it)."""
        generation = self.registry.adapters._generation
        found = self._jobs
        if found is None or found[0] != generation:
            found = self._jobs = (generation, self.registry.getAdapter(self, IQueueManager))
        return found[1]

    def submit(self, type: str, payload: Any = None, **options: Any) -> Job:
        """Queue a job (see IQueueManager.submit); returns it at once, PENDING."""
        return self.jobs.submit(type, payload, **options)

    def submit_many(self, specs: Iterable[Mapping[str, Any]]) -> list[Job]:
        """Queue many jobs at once, all or none (see IQueueManager.submit_many); returns
        them in the order of ``specs``, PENDING."""
        return self.jobs.submit_many(specs)

    # -- paused queues ----------------------------------------------------------

    def pause(self, type: str | None = None) -> None:
        """Stop the claiming of this site's jobs (``type`` None), or of its jobs of
        ``type``, by every worker on the store, as soon as this returns. Running jobs
        run on; pending ones, cron firings included, wait (none is lost) until
        :meth:`resume`. Pausing what is paused changes nothing."""
        self.kit.store.pause(self.name, type, self.kit.clock.now())

    def resume(self, type: str | None = None) -> bool:
        """End the pause of the site (``type`` None) or of that type, and wake this
        process's workers (PostgreSQL wakes every worker); return True if it was
        paused. Resuming the site leaves its paused types paused, and the other way
        round."""
        resumed = self.kit.store.resume(self.name, type)
        if resumed:
            self.kit.wake()
        return resumed

    def pauses(self) -> list[str | None]:
        """What of this site is paused: None for the whole queue (first), then the
        paused job types, sorted; [] when nothing is."""
        return self.kit.store.pauses(self.name)

    def paused(self, type: str | None = None) -> bool:
        """Whether the site's queue is paused, or (``type`` given) its jobs of ``type``
        are not claimed: the whole site or that type is paused."""
        found = self.pauses()
        return None in found or (type is not None and type in found)

    def register_runner(self, factory: Any, name: str | None = None) -> Any:
        """Register a runner for this site only."""
        return register_runner(factory, name, registry=self.registry)

    def unregister_runner(self, name: str) -> bool:
        factory = self.registry.adapters.lookup((ISite, IJob), IJobRunner, name)
        return factory is not None and self.registry.unregisterAdapter(
            factory, (ISite, IJob), IJobRunner, name)

    # -- profiles ---------------------------------------------------------------

    def import_crons(self, source: Any) -> Crontab:
        """Apply a crons.xml (path, XML text or bytes), whole or not at all."""
        from .profiles.cronsxml import import_crons
        return import_crons(self, source)

    def export_crons(self) -> str:
        """The site's crontab as crons.xml text."""
        from .profiles.cronsxml import export_crons
        return export_crons(self)
