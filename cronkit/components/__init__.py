"""The components of a site's crontab and job machinery, each a zope.component adapter
(or, for the lifecycle, a utility of the kit) in its own module named after its
interface, and the core event flow, registered in each kit's own registry."""

from __future__ import annotations

from zope.interface.registry import Components

from ..events import (
    CrontabSynchronisationEvent,
    ModifiedCrontabEvent,
    ServerRestartEvent,
    notify,
)
from ..interfaces import (
    ICrontabManager,
    ICrontabSynchronisationEvent,
    IModifiedCrontabEvent,
    IServerRestartEvent,
)
from .cron_manager import CronManager
from .crontab_manager import CrontabManager
from .crontab_registry_manager import CrontabRegistryManager
from .lifecycle import JobLifecycle
from .queue_manager import QueueManager
from .queue_marker import QueueMarker

COMPONENTS = (CronManager, CrontabManager, CrontabRegistryManager, QueueManager, QueueMarker)

__all__ = ["COMPONENTS", "JobLifecycle", "register_components"]


def on_modified_crontab(event: ModifiedCrontabEvent) -> None:
    site = getattr(event.crontab, "site", None)
    if site is not None:
        notify(CrontabSynchronisationEvent(site=site, crontab=event.crontab))


def on_synchronisation(event: CrontabSynchronisationEvent) -> None:
    assert event.site is not None, "sent by on_modified_crontab with a site"
    event.site.registry.getMultiAdapter((event.site, event.crontab), ICrontabManager).synchronize()


def on_server_restart(event: ServerRestartEvent) -> None:
    """Restore the cron jobs of the event's site."""
    site = event.site
    if site is None:
        return
    crontab = event.crontab if event.crontab is not None else site.crontab
    site.registry.getMultiAdapter((site, crontab), ICrontabManager).synchronize()


#: The core flow: save -> synchronise -> queue, and restore at start.
CORE_HANDLERS = (
    (on_modified_crontab, IModifiedCrontabEvent),
    (on_synchronisation, ICrontabSynchronisationEvent),
    (on_server_restart, IServerRestartEvent),
)


def register_components(registry: Components) -> None:
    """Register the five adapters and the core event flow in a kit's registry."""
    for factory in COMPONENTS:
        registry.registerAdapter(factory)
    for handler, event in CORE_HANDLERS:
        registry.registerHandler(handler, (event,))
