"""A log line per job event, and the logging setup of the commands that serve.

The job lifecycle writes one INFO line through the standard :mod:`logging` module for
each event of a job's life, to the logger ``cronkit.jobs``: queued, started, retried
(with the reason and when it is due again) and finished (with its status, how long it
ran and the message of a failure); each cron firing's Log goes to ``cronkit.crons``.
Every record carries ``FIELDS`` as attributes (``extra``): a JSON formatter writes them
as fields, and the text of the line names them too::

    job 12 (export, site plone) finished SUCCESS in 0.25 s

A batch (``site.submit_many``, a crontab's sync) is one line at INFO ("queued 5000
jobs"); its jobs, one line each, at DEBUG. A line is made only when its logger is
enabled for its level: nothing is formatted otherwise.

:func:`setup` is what ``cronkit worker``, ``cronkit run`` and ``cronkit web`` call
with ``--log-level`` and ``--log-format``: text lines (as before) or one JSON object
per line (python-json-logger, the ``ops`` extra).
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from .exceptions import CronkitError

if TYPE_CHECKING:
    from .jobs import Job
    from .model import Cron, Log

#: The logger of job events.
jobs_log = logging.getLogger("cronkit.jobs")
#: The logger of cron firings' Logs.
crons_log = logging.getLogger("cronkit.crons")

#: The attributes of every job event's record (None when they do not apply).
FIELDS = ("event", "site", "job_id", "job_type", "cron_uid", "attempt")
#: The text lines' format (the commands' format before JSON came).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The formats :func:`setup` takes.
FORMATS = ("text", "json")
#: Record attributes a JSON line leaves out (uvicorn's copy of its message in colours).
_NOT_FIELDS = ("color_message",)

_INFO, _DEBUG = logging.INFO, logging.DEBUG
#: The handler :func:`setup` installed on the root logger, if any.
_installed: logging.Handler | None = None


def _fields(event: str, job: Job, **more: Any) -> dict[str, Any]:
    return {"event": event, "site": job.site.name, "job_id": job.id, "job_type": job.type,
            "cron_uid": job.cron_uid, "attempt": job.attempts or None, **more}


def _who(job: Job) -> str:
    return f"job {job.id} ({job.type}, site {job.site.name})"


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


# -- job events: called by the lifecycle when the logger is enabled --------------------------

def queued(job: Job, level: int = _INFO) -> None:
    due = job.run_after if job.after_ids is None else None
    text = f"{_who(job)} queued"
    if job.after_ids:
        text += " to run after job " + ", ".join(map(str, job.after_ids))
    elif due is not None and job.created_at is not None and due > job.created_at:
        text += f", due {due.isoformat()}"
    jobs_log.log(level, text, extra=_fields("queued", job, run_after=_iso(due)))


def queued_batch(site_name: str, count: int) -> None:
    jobs_log.info("queued %d jobs (site %s)", count, site_name,
                  extra={"event": "queued", "site": site_name, "count": count})


def started(job: Job) -> None:
    attempt = job.attempts or 1
    text = f"{_who(job)} started" + (f" (attempt {attempt})" if attempt > 1 else "")
    jobs_log.info(text, extra=_fields("started", job))


def retried(job: Job, attempt: int, reason: str, run_after: datetime, delay: float) -> None:
    jobs_log.info("%s attempt %d failed: %s; retry in %g s (due %s)", _who(job), attempt,
                  reason, delay, run_after.isoformat(),
                  extra=_fields("retried", job, attempt=attempt, reason=reason,
                                run_after=run_after.isoformat(), delay=delay))


def finished(job: Job, now: datetime) -> None:
    status = job.status.name
    duration = None     # None: it never started (canceled while pending)
    if job.started_at is not None:
        duration = max(0.0, (now - job.started_at).total_seconds())
    text = f"{_who(job)} finished {status}"
    if duration is not None:
        text += f" in {duration:.3g} s"
    if job.message and status != "SUCCESS":
        text += f": {job.message}"
    jobs_log.info(text, extra=_fields("finished", job, status=status, duration=duration,
                                      job_message=job.message))


def cron_logged(site_name: str, cron: Cron, log: Log, job_id: int | None) -> None:
    text = f"cron {cron.name!r} ({cron.uid}, site {site_name}) logged {log.status}"
    if log.messages:
        text += ": " + "; ".join(log.messages)
    crons_log.info(text, extra={"event": "cron", "site": site_name, "job_id": job_id,
                                "job_type": cron.name, "cron_uid": cron.uid,
                                "status": str(log.status), "messages": list(log.messages)})


# -- setup --------------------------------------------------------------------------------

def formatter(format: str = "text") -> logging.Formatter:
    """The formatter of ``format``: "text" (``TEXT_FORMAT``) or "json" (one JSON object
    per line: ``timestamp``, ``level``, ``logger``, ``message``, then the record's
    ``extra`` fields, and ``exc_info`` for an error's traceback). CronkitError for
    another format, or for "json" without python-json-logger (the ``ops`` extra)."""
    if format == "text":
        return logging.Formatter(TEXT_FORMAT)
    if format != "json":
        raise CronkitError(f"unknown log format {format!r} (expected one of "
                           f"{', '.join(FORMATS)})")
    try:
        from pythonjsonlogger.core import RESERVED_ATTRS
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:
        raise CronkitError("JSON logs need python-json-logger: "
                           "pip install 'cronkit[ops]'") from None
    return JsonFormatter("%(levelname)s %(name)s %(message)s",
                         rename_fields={"levelname": "level", "name": "logger"},
                         reserved_attrs=[*RESERVED_ATTRS, *_NOT_FIELDS], timestamp=True)


def setup(level: str | int = "info", format: str = "text",
          stream: TextIO | None = None) -> bool:
    """Log at ``level`` ("debug", "info", "warning", "error") in ``format`` (see
    :func:`formatter`) to ``stream`` (stderr): what the commands that serve call with
    ``--log-level`` and ``--log-format``. As :func:`logging.basicConfig`, it leaves a
    process whose logging is configured already (the root logger has a handler that
    is not this function's) as it is, and returns False; True once configured.
    CronkitError for an unknown level or format."""
    global _installed
    if isinstance(level, str):
        value = logging.getLevelName(level.upper())
        if not isinstance(value, int):
            raise CronkitError(f"unknown log level {level!r} (expected debug, info, "
                               "warning or error)")
        level = value
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(format))
    root = logging.getLogger()
    if _installed is not None and _installed in root.handlers:
        root.removeHandler(_installed)
    logging.basicConfig(level=level, handlers=[handler])
    _installed = handler if handler in root.handlers else None
    return _installed is not None


def configured() -> bool:
    """Whether :func:`setup` configured this process's logging (the root logger's
    handler is its own): the dashboard then lets uvicorn's loggers go through it."""
    return _installed is not None and _installed in logging.getLogger().handlers


def through_root(*names: str) -> None:
    """Send the records of the loggers ``names`` (uvicorn's) to the root's handler
    only: their own handlers (a logging config applied before) are removed."""
    for name in names:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
