"""ICronManager: the queue seen from one cron, and the cron job wrapper (DESIGN rules 2, 3)."""

from __future__ import annotations

from datetime import datetime

from zope.component import adapter
from zope.interface import implementer

from ..events import (
    FinishedCronJobEvent,
    JobFinishedEvent,
    JobStartedEvent,
    StartedCronJobEvent,
    notify,
)
from ..interfaces import ICron, ICronManager, IQueueManager, ISite
from ..jobs import Job, Status
from ..model import Crontab, Log, LogStatus
from ..runner import call_runner, messages_of
from .crontab_registry_manager import cron_from_row


@implementer(ICronManager)
@adapter(ISite, ICron)
class CronManager:
    def __init__(self, site, cron):
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
        return bool(self.queue.register_cron_jobs([(self.cron, nxt, nxt)]))

    register_job = register  # collective.cron's name

    def remove(self) -> bool:
        """Delete the cron's pending job; True if there was one."""
        return self.store.delete_pending_cron_jobs(self.site.name, [self.cron.uid]) > 0

    def register_or_remove(self) -> bool:
        return self.register() if self._active() else self.remove()

    # -- the cron job wrapper -------------------------------------------------

    def _load(self) -> tuple[object | None, bool]:
        data = self.store.load_crontab(self.site.name, uid=self.cron.uid)
        if not data["crons"]:
            return None, data["activated"]
        crontab = Crontab(activated=data["activated"])
        crontab.site = self.site
        cron = cron_from_row(data["crons"][0])
        crontab.add_cron(cron)
        crontab._mark_saved(data["version"])
        return cron, data["activated"]

    def run_job(self, job: Job) -> Job:
        """Run a claimed firing: StartedCronJobEvent; NOTRUN if the cron or crontab is off,
        the firing was missed, or no runner has the name; else run() -> OK / WARN /
        FAILURE. Then the log, FinishedCronJobEvent, and the next firing, always."""
        site, store = self.site, self.store
        cron, crontab_on = self._load()
        if cron is None:
            store.finish_job(job.id, Status.CANCELED, self.clock.now(),
                             f"cron {self.cron.uid!r} no longer exists")
            notify(JobFinishedEvent(site=site, job=job.refresh()))
            return job
        job.cron = cron
        notify(StartedCronJobEvent(site=site, cron=cron))
        notify(JobStartedEvent(site=site, job=job))
        start = self.clock.now()
        scheduled = job.fire_at
        missed = False
        if scheduled is not None:
            late = (start - scheduled).total_seconds()
            if cron.misfire_grace is not None and late > cron.misfire_grace:
                missed = True
            elif cron.misfire == "skip" and cron.next_after(scheduled) <= start:
                missed = True
        status, messages, job_status, job_message = LogStatus.NOTRUN, [], Status.CANCELED, None
        if not crontab_on:
            messages = [f"not run: the crontab of site {site.name!r} is deactivated"]
        elif not cron.activated:
            messages = [f"not run: cron {cron.name!r} is deactivated"]
        elif missed:
            messages = [f"missed: due at {scheduled.isoformat()}, {late:.0f} s late"]
        else:
            out = call_runner(site, job)
            if out.unknown:
                messages = [f"not run: no runner named {cron.name!r}"]
                job_message = messages[0]
            elif out.status == Status.FAILED:
                status, messages, job_status = LogStatus.FAILURE, [out.error], Status.FAILED
                job_message = out.error if out.trace is None else f"{out.error}\n{out.trace}"
            elif out.status == Status.CANCELED:
                messages = ["not run to its end: canceled"]
            else:
                messages = messages_of(out.result)
                status = LogStatus.WARN if messages else LogStatus.OK
                job_status = Status.SUCCESS
                job_message = "\n".join(messages) or None
        if job_message is None and status == LogStatus.NOTRUN:
            job_message = messages[0]
        log = Log(start, status, messages)
        log.id, version = store.add_log(site.name, cron.uid, log.to_dict() | {"date": start},
                                        cron.logs_limit)
        site._log_added(cron.uid, log, version)
        # The next firing is queued while this one still runs: at no instant has the
        # cron neither a running nor a pending job, or another worker's restore or
        # register would queue a firing of its own and those in between would be lost.
        self._reschedule(scheduled if cron.misfire == "all" and not missed else None)
        store.finish_job(job.id, job_status, self.clock.now(), job_message,
                         progress=100 if job_status == Status.SUCCESS else None)
        notify(FinishedCronJobEvent(site=site, cron=cron, log=log))
        notify(JobFinishedEvent(site=site, job=job.refresh()))
        return job

    def _reschedule(self, base: datetime | None) -> None:
        cron, crontab_on = self._load()   # the cron may have been edited during the run
        if cron is None or not (crontab_on and cron.activated):
            return
        if self.store.cron_job_statuses(self.site.name, cron.uid) & {"pending"}:
            return
        nxt = cron.next_after(base or self.clock.now())
        self.queue.register_cron_jobs([(cron, nxt, nxt)])
