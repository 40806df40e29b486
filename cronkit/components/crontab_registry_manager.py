"""ICrontabRegistryManager: persists a site's crontab through the store."""

from __future__ import annotations

from collections import OrderedDict

from zope.component import adapter
from zope.interface import implementer

from ..events import ModifiedCrontabEvent, notify
from ..exceptions import ReadOnlyCrontab
from ..interfaces import ICrontabRegistryManager, IQueueMarker, ISite
from ..model import CRON_FIELDS, Cron, Crontab, Log, LogList


def cron_from_row(data: dict) -> Cron:
    """A Cron from a store row. Rows were validated when saved: they are trusted here,
    which keeps restoring 100,000 crons cheap."""
    cron = Cron.__new__(Cron)
    attrs = cron.__dict__
    attrs["_crontab"] = None
    for field in CRON_FIELDS:
        attrs[field] = data[field]
    attrs["activated"] = bool(data["activated"])
    attrs["logs"] = LogList(cron, [Log(**entry) for entry in data["logs"]])
    attrs["_log_ids"] = tuple(entry["id"] for entry in data["logs"])
    attrs["_position"] = data["position"]
    return cron


@implementer(ICrontabRegistryManager)
@adapter(ISite)
class CrontabRegistryManager:
    def __init__(self, site):
        self.site = site
        self.store = site.kit.store

    def load(self) -> Crontab:
        """A new Crontab read from the store (not the site's live one)."""
        crontab = Crontab()
        self.refresh(crontab)
        return crontab

    def refresh(self, crontab: Crontab, data: dict | None = None) -> None:
        """Make ``crontab`` show what the store holds, in place, keeping Cron objects."""
        data = data or self.store.load_crontab(self.site.name)
        crontab.site = self.site
        crontab._activated = data["activated"]
        old = dict(crontab.crons)
        OrderedDict.clear(crontab.crons)
        gone = set(old) - {row["uid"] for row in data["crons"]}
        for uid in gone:                   # deleted in the store by someone else
            object.__setattr__(old[uid], "_crontab", None)
        for row in data["crons"]:
            fresh = cron_from_row(row)
            cron = old.get(row["uid"])
            if cron is None:
                cron = fresh
            else:
                cron.__dict__.update(fresh.__dict__)
                cron.logs._cron = cron
            object.__setattr__(cron, "_crontab", crontab)
            OrderedDict.__setitem__(crontab.crons, cron.uid, cron)
        crontab._mark_saved(data["version"])

    def save(self, crontab: Crontab, only: str | None = None) -> None:
        """Write what changed (everything, or the cron ``only``); emit ModifiedCrontabEvent."""
        if crontab.read_only:
            raise ReadOnlyCrontab(f"the crontab of site {self.site.name!r} is read-only: "
                                  "nothing was saved")
        changed = [only] if only is not None else [u for u in crontab.crons if u in crontab._changed]
        upserts, new_logs, deleted_logs, fresh = [], [], [], []
        top = max((getattr(c, "_position", 0.0) for c in crontab.crons.values()), default=0.0)
        for uid in changed:
            cron = crontab.crons.get(uid)
            if cron is None:
                continue
            position = getattr(cron, "_position", None)
            if position is None:
                top += 1.0
                position = top
                object.__setattr__(cron, "_position", position)
            row = cron.definition()
            row["position"] = position
            upserts.append(row)
            present = {entry.id for entry in cron.logs if entry.id is not None}
            deleted_logs.extend(i for i in cron._log_ids if i not in present)
            for entry in reversed(cron.logs):          # oldest first, so ids grow with dates
                if entry.id is None:
                    new_logs.append((uid, entry.to_dict() | {"date": entry.date}))
                    fresh.append(entry)
        deletes = list(crontab._deleted) if only is None else []
        activated = crontab.activated if only is None and crontab._activated_changed else None
        version, ids = self.store.save_crontab(self.site.name, activated, upserts, deletes,
                                               new_logs, deleted_logs)
        for entry, log_id in zip(fresh, ids, strict=True):
            entry.id = log_id
        for uid in changed:
            cron = crontab.crons.get(uid)
            if cron is not None:
                object.__setattr__(cron, "_log_ids", tuple(e.id for e in cron.logs))
        previous = crontab._version
        crontab._mark_saved(version, only)
        if previous is None or version != previous + 1:
            # Others wrote meanwhile: show what the store holds, at once when nothing is
            # left unsaved, else at the first access after the next save.
            if crontab.dirty:
                crontab._version = previous
            else:
                self.refresh(crontab)
        self.site.registry.getAdapter(self.site, IQueueMarker).mark()
        notify(ModifiedCrontabEvent(crontab=crontab))

    def save_cron(self, cron: Cron) -> None:
        self.save(cron.crontab, only=cron.uid)
