"""cronkit: cron-like crontabs per site, named job runners, and a job system with
priority, progress, cancel, history and retention, on SQLite, PostgreSQL or Celery."""

from .clock import FakeClock, SystemClock
from .events import (
                     CrontabSynchronisationEvent,
                     FinishedCronJobEvent,
                     JobFinishedEvent,
                     JobProgressEvent,
                     JobQueuedEvent,
                     JobRetriedEvent,
                     JobStartedEvent,
                     ModifiedCrontabEvent,
                     ServerRestartEvent,
                     StartedCronJobEvent,
                     notify,
                     subscribe,
                     unsubscribe,
)
from .exceptions import (
                     CronkitError,
                     DuplicateFiring,
                     InvalidCron,
                     InvalidCrontab,
                     InvalidLog,
                     InvalidParameters,
                     InvalidResult,
                     NoSuchCron,
                     NoSuchJob,
                     ProfileError,
                     ReadOnlyCrontab,
                     ReadOnlyStore,
                     Retry,
                     StoreError,
                     StoreGone,
                     UnknownRunner,
)
from .jobs import Job, Param, Status
from .kit import Cronkit
from .model import Cron, Crontab, Log, LogStatus
from .runner import Runner, available_jobs, register_runner, runner, unregister_runner
from .site import Site

__version__ = "0.1.0"

__all__ = [
    "Cron", "Cronkit", "CronkitError", "Crontab", "CrontabSynchronisationEvent",
    "DuplicateFiring", "FakeClock", "FinishedCronJobEvent", "InvalidCron", "InvalidCrontab",
    "InvalidLog", "InvalidParameters", "InvalidResult", "Job", "JobFinishedEvent", "JobProgressEvent",
    "JobQueuedEvent", "JobRetriedEvent", "JobStartedEvent", "Log", "LogStatus", "ModifiedCrontabEvent",
    "NoSuchCron", "NoSuchJob", "Param", "ProfileError", "ReadOnlyCrontab", "ReadOnlyStore", "Retry", "Runner",
    "ServerRestartEvent", "Site", "StartedCronJobEvent", "Status", "StoreError", "StoreGone",
    "SystemClock", "UnknownRunner", "available_jobs", "notify", "register_runner", "runner",
    "subscribe", "unregister_runner", "unsubscribe",
]
