"""IQueueMarker: marks a site crontab-aware, so that restarts restore its cron jobs."""

from __future__ import annotations

from zope.component import adapter
from zope.interface import implementer

from ..interfaces import IQueueMarker, ISite


@implementer(IQueueMarker)
@adapter(ISite)
class QueueMarker:
    def __init__(self, site):
        self.site = site

    def mark(self) -> None:
        if not self.site._marked:
            self.site.kit.store.mark_site(self.site.name, True)
            self.site._marked = True

    def unmark(self) -> None:
        self.site.kit.store.mark_site(self.site.name, False)
        self.site._marked = False

    def is_marked(self) -> bool:
        return self.site.name in self.site.kit.store.marked_sites()
