"""ICronManager: the queue seen from one cron, and the cron job wrapper (DESIGN rules 2, 3)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from zope.component import adapter
from zope.interface import implementer

from ..interfaces import ICron, ICronManager, IQueueManager, ISite
from ..jobs import Job
from ..model import Cron, Crontab

if TYPE_CHECKING:
    from ..site import Site

_TICK = timedelta(microseconds=1)


@implementer(ICronManager)
@adapter(ISite, ICron)
class CronManager:
    def __init__(self, site: Site, cron: Cron):
        self.site = site
        self.cron = cron
        self.store = site.kit.store
        self.clock = site.kit.clock

    @property
    def queue(self):
        return self.site.registry.getAdapter(self.site, IQueueManager)

    def _active(self) -> bool:
        crontab = self.cron.crontab
        return bool(self.cron.activated and (crontab is None or crontab.activated))

    def register(self, begin_after: datetime | None = None, force: bool = False) -> bool:
        """Queue the next firing after ``begin_after`` (default now) unless one is pending.
        ``force`` replaces the pending job by a firing of its own due at begin_after or
        now; it does not use up the scheduled firing (the run reschedules it)."""
        now = self.clock.now()
        if force:
            self.remove()
            return bool(self.queue.register_cron_jobs([(self.cron, begin_after or now, None)]))
        if not self._active():
            return False
        statuses = self.store.cron_job_statuses(self.site.name, self.cron.uid)
        if {"pending", "running"} & statuses:
            return False
        nxt = self.cron.next_after(begin_after or now)
        if nxt is None:       # no more firings (a year field has ended)
            return False
        return bool(self.queue.register_cron_jobs([(self.cron, nxt, nxt)]))

    register_job = register  # collective.cron's name

    def remove(self) -> bool:
        """Delete the cron's pending job; True if there was one."""
        return self.store.delete_pending_cron_jobs(self.site.name, [self.cron.uid]) > 0

    def register_or_remove(self) -> bool:
        return self.register() if self._active() else self.remove()

    # -- the cron job wrapper -------------------------------------------------

    def run_job(self, job: Job) -> Job:
        """Run a claimed firing through the kit's lifecycle (DESIGN rules 2 and 3):
        StartedCronJobEvent; NOTRUN if the cron or crontab is off, the firing was
        missed, or no runner has the name; else run() -> OK / WARN / FAILURE. Then the
        log, the next firing and FinishedCronJobEvent, always."""
        return self.site.kit.lifecycle.execute(job)

    def skip_reason(self, job: Job, crontab_on: bool, start: datetime) -> tuple[str | None, bool]:
        """Why the firing ``job`` must not run at ``start``, or None; and whether it was
        missed. Each firing is judged on its own lateness against ``misfire_grace``
        (DESIGN rule 3): under "all" the firing itself; under "once" the firings due
        up to ``start`` run once, so the latest of them (the least late) decides;
        under "skip" only the latest due firing runs, and only within the grace."""
        cron, site = self.cron, self.site
        scheduled = job.fire_at
        missed, late = False, 0.0
        if scheduled is not None and (job.attempts or 1) == 1:   # a retry is late by design
            late = (start - scheduled).total_seconds()
            grace = cron.misfire_grace
            if cron.misfire == "once" and grace is not None and late > grace:
                latest = cron.previous_before(start + _TICK)
                missed = latest is None or (start - latest).total_seconds() > grace
            elif grace is not None and late > grace:
                missed = True
            elif cron.misfire == "skip":
                nxt = cron.next_after(scheduled)
                missed = nxt is not None and nxt <= start
        if not crontab_on:
            return f"not run: the crontab of site {site.name!r} is deactivated", missed
        if not cron.activated:
            return f"not run: cron {cron.name!r} is deactivated", missed
        if missed:
            assert scheduled is not None
            return f"missed: due at {scheduled.isoformat()}, {late:.0f} s late", missed
        return None, False

    def next_base(self, job: Job, start: datetime, missed: bool) -> datetime:
        """What the firing after ``job`` (run, or not run, at ``start``) counts from:
        under "all", the firing itself, or when it was missed the first instant still
        within ``misfire_grace`` (the firings between are missed too, the later ones
        run each); under "once" and "skip", now."""
        cron, now = self.cron, self.clock.now()
        if cron.misfire != "all" or job.fire_at is None:
            return now
        if not missed or cron.misfire_grace is None:
            return job.fire_at
        within = start - timedelta(seconds=cron.misfire_grace) - _TICK
        return max(job.fire_at, within)

    def reschedule(self, base: datetime | None, version: int | None = None) -> bool:
        """Queue the cron's next firing after ``base`` (default now) unless it has a
        pending one; return True if it queued one. The cron is read again from the
        store unless its crontab is still at ``version`` (the cron may have been edited
        during the run)."""
        cron, crontab_on = self.cron, self._active()
        if version is None or self.store.crontab_version(self.site.name) != version:
            fresh, crontab_on, _ = load_cron(self.site, cron.uid)
            if fresh is None:
                return False
            cron = fresh
        if not (crontab_on and cron.activated):
            return False
        nxt = cron.next_after(base or self.clock.now())
        if nxt is None:       # no more firings (a year field has ended)
            return False
        if self.store.cron_job_statuses(self.site.name, cron.uid) & {"pending"} \
                and not (cron.misfire == "all" and self._only_later_pending(cron, nxt)):
            return False
        return bool(self.queue.register_cron_jobs([(cron, nxt, nxt)]))

    def _only_later_pending(self, cron: Cron, nxt: datetime) -> bool:
        """Whether every pending firing of the cron is due after ``nxt``: one queued
        meanwhile by another process that counted from its own now (a worker's restore
        that read the crontab between a save and that save's sync). Under "all" the
        firings between still run: this one is queued too, and the chain goes on from
        it to the later one (the firing index keeps each instant once)."""
        rows = self.store.list_jobs(site=self.site.name, cron_uid=cron.uid, status="pending")
        times = [r["fire_at"] for r in rows]
        return bool(times) and None not in times and min(times) > nxt


#: Missed firings are counted one by one up to this many (then "at least").
MISSED_CAP = 100_000


def missed_note(cron: Cron, after: datetime, until: datetime) -> str | None:
    """The Log message for the firings of ``cron`` due after ``after`` and up to
    ``until`` that will not run (misfire "once" or "skip" counts the next time from
    ``until``), or None when there are none."""
    return missed_firings(cron, after, until)[1]


def missed_firings(cron: Cron, after: datetime, until: datetime) -> tuple[int, str | None]:
    """How many firings of ``cron`` due after ``after`` and up to ``until`` will not run
    (at most MISSED_CAP), and their Log message (see ``missed_note``)."""
    n, first, last, t = 0, None, None, after
    while n < MISSED_CAP:
        nxt = cron.next_after(t)
        if nxt is None or nxt > until:
            break
        t = nxt
        n, first, last = n + 1, first or t, t
    if first is None or last is None:
        return 0, None
    count = f"at least {n}" if n == MISSED_CAP else str(n)
    span = first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"
    return n, f"missed: {count} more firing(s) not run (misfire {cron.misfire!r}), due {span}"


def load_cron(site: Site, uid: str) -> tuple[Cron | None, bool, int]:
    """The cron ``uid`` of ``site`` as the store holds it, in a crontab of its own:
    (cron or None, whether its crontab is activated, the crontab's version)."""
    data = site.kit.store.load_crontab(site.name, uid=uid)
    crontab = Crontab.from_store(data, site)
    return crontab.crons.get(uid), data["activated"], data["version"]
