"""The five components of a site's crontab machinery, each a zope.component adapter
in its own module named after its interface, and the wiring of their events."""

from __future__ import annotations

from ..events import CrontabSynchronisationEvent, ModifiedCrontabEvent, ServerRestartEvent, notify
from ..interfaces import ICrontabManager
from .cron_manager import CronManager
from .crontab_manager import CrontabManager
from .crontab_registry_manager import CrontabRegistryManager
from .queue_manager import QueueManager
from .queue_marker import QueueMarker

COMPONENTS = (CronManager, CrontabManager, CrontabRegistryManager, QueueManager, QueueMarker)


def register_components(registry) -> None:
    """Register the five adapters in a kit's registry."""
    for factory in COMPONENTS:
        registry.registerAdapter(factory)


def _core(fn):
    fn._cronkit_core = True  # errors of the core flow propagate (see events.notify)
    return fn


@_core
def on_modified_crontab(event: ModifiedCrontabEvent) -> None:
    site = getattr(event.crontab, "site", None)
    if site is not None:
        notify(CrontabSynchronisationEvent(site=site, crontab=event.crontab))


@_core
def on_synchronisation(event: CrontabSynchronisationEvent) -> None:
    event.site.registry.getMultiAdapter((event.site, event.crontab), ICrontabManager).synchronize()


@_core
def on_server_restart(event: ServerRestartEvent) -> None:
    """Restore the cron jobs of the event's site, or of every marked site of its kit."""
    site = event.site
    if site is None:
        return
    crontab = event.crontab if event.crontab is not None else site.crontab
    site.registry.getMultiAdapter((site, crontab), ICrontabManager).synchronize()


_wired = False


def wire_events() -> None:
    """Connect the core flow once per process (strong references)."""
    global _wired
    if _wired:
        return
    ModifiedCrontabEvent.signal.connect(on_modified_crontab, weak=False)
    CrontabSynchronisationEvent.signal.connect(on_synchronisation, weak=False)
    ServerRestartEvent.signal.connect(on_server_restart, weak=False)
    _wired = True
