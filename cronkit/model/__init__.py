"""Crontab, Cron and Log: the data, its validation, and its JSON dump/load.

The model knows no store: a crontab attached to a site saves through
``site.save_crontab`` (the crontab registry manager), which reads and writes the
store through the model's persistence API (see :class:`Crontab` and :class:`Cron`).

``validation`` holds the checks of every field; ``log``, ``cron`` and ``crontab``
the classes. Every name is importable from ``cronkit.model``.
"""

from __future__ import annotations

from .cron import Cron
from .crontab import CronMap, CronRecord, Crontab, CrontabChanges
from .log import Log, LogList, LogStatus
from .validation import (
    CRON_FIELDS,
    DATEFMT,
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_LOGS_LIMIT,
    MAX_MISFIRE_GRACE,
    MISFIRE_POLICIES,
    as_bool,
    check_environ,
    check_logs_limit,
    check_misfire,
    check_misfire_grace,
    check_periodicity,
    check_timezone,
    json_bool,
    json_problem,
    new_uid,
    read_json,
    text_bool,
    text_problem,
    zone,
)

__all__ = [
    "CRON_FIELDS",
    "DATEFMT",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_LOGS_LIMIT",
    "MAX_MISFIRE_GRACE",
    "MISFIRE_POLICIES",
    "Cron",
    "CronMap",
    "CronRecord",
    "Crontab",
    "CrontabChanges",
    "Log",
    "LogList",
    "LogStatus",
    "as_bool",
    "check_environ",
    "check_logs_limit",
    "check_misfire",
    "check_misfire_grace",
    "check_periodicity",
    "check_timezone",
    "json_bool",
    "json_problem",
    "new_uid",
    "read_json",
    "text_bool",
    "text_problem",
    "zone",
]
