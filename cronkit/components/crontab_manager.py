"""ICrontabManager: keeps a site's queue in line with its crontab (DESIGN rule 1)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from zope.component import adapter
from zope.interface import implementer

from ..events import JobQueuedEvent
from ..interfaces import ICrontab, ICrontabManager, ICrontabRegistryManager, IQueueManager, ISite
from ..model import Cron, Crontab
from .crontab_registry_manager import collector_paused
from .lifecycle import _listened as listened

if TYPE_CHECKING:
    from ..site import Site

#: How many firings are queued in one call when someone listens to JobQueuedEvent (the
#: lifecycle then holds the rows of a call, and their Jobs, for the events): a crontab of
#: 100,000 crons never has every job row in memory at once. Unheard, the firings of a
#: sync are queued in one call, one transaction: the rows are made as they are inserted,
#: and an index page is written once, not once per batch.
_BATCH = 2000


@implementer(ICrontabManager)
@adapter(ISite, ICrontab)
class CrontabManager:
    def __init__(self, site: Site, crontab: Crontab):
        self.site = site
        self.crontab = crontab

    def synchronize(self) -> None:
        """Every activated cron of an activated crontab gets exactly one pending job due at
        its next time; deactivated or deleted crons get none; an edited cron's job is
        replaced. A cron that is running gets its next job when the run ends."""
        with collector_paused(len(self.crontab.crons)):
            self._synchronize()

    def _synchronize(self) -> None:
        store = self.site.kit.store
        now = self.site.kit.clock.now()
        crontab = self.crontab
        if crontab.dirty or crontab.version != store.crontab_version(self.site.name):
            # Unsaved edits, or writes by others this crontab does not show: the queue
            # follows the store, which is what the runs read.
            crontab = self.site.registry.getAdapter(self.site, ICrontabRegistryManager).load()
        # One read, one snapshot: a cron whose run is ending shows its running job or
        # its next pending one, never neither (two reads could see neither, and a
        # firing of our own would then be queued beside the one the run queues).
        pending, running = store.pending_and_running_cron_jobs(self.site.name)
        stale: list[str] = []
        wanted: list[tuple[Cron, datetime, datetime]] = []
        active = crontab.activated
        # Many crons share an expression: each (expression, time zone) is worked out once
        # for this ``now``, which every cron here counts from.
        nexts: dict[tuple[str, str | None], datetime | None] = {}
        for uid, cron in crontab.crons.items():
            job = pending.pop(uid, None)
            if not (active and cron.activated):
                if job is not None:
                    stale.append(uid)
                continue
            if job is not None:
                if job["signature"] == cron.signature:
                    continue
                stale.append(uid)
            if uid not in running:
                key = (cron.expanded, cron.timezone)   # None: the site's, as for all here
                if key in nexts:
                    nxt = nexts[key]
                else:
                    nxt = nexts[key] = cron.next_after(now)
                if nxt is not None:     # None: no more firings (a year field has ended)
                    wanted.append((cron, nxt, nxt))
        stale.extend(pending)  # jobs of crons no longer in the crontab
        del pending
        if stale:
            store.delete_pending_cron_jobs(self.site.name, stale)
        if len(nexts) > 1:
            in_due_order(wanted, nexts.values())
        queue = self.site.registry.getAdapter(self.site, IQueueManager)
        if not listened(self.site, JobQueuedEvent):
            queue.register_cron_jobs(wanted)
            return
        for start in range(0, len(wanted), _BATCH):   # the job rows of one batch at a time
            queue.register_cron_jobs(wanted[start:start + _BATCH])


def in_due_order(wanted: list[tuple[Cron, datetime, datetime]],
                 times: Iterable[datetime | None]) -> None:
    """Sort the firings ``wanted`` (whose due times are among ``times``, the very
    objects) by due time, in place; firings due at the same instant keep their order
    (the crontab's). They are claimed in that order whatever order they are queued in
    (due time, then id), but queued so, each index of the queue by due time grows at
    its end rather than all over: a sync of 100,000 crons writes a fifth less."""
    distinct = {id(t): t for t in times if t is not None}
    rank = {t: i for i, t in enumerate(sorted(set(distinct.values())))}
    by_id = {key: rank[t] for key, t in distinct.items()}
    wanted.sort(key=lambda entry: by_id[id(entry[1])])
