"""The dashboard's HTML pages: sites, crontabs, crons and logs, jobs, job types, login.

Every form posts a CSRF token; every value reaches the page through Jinja2 with
autoescape on; the progress bars are updated by static/cronkit.js polling ``/live``.

``base`` holds what every page shares, ``login``, ``crons`` and ``jobs`` the pages
themselves; ``routes`` maps them to their URLs.
"""

from __future__ import annotations

from starlette.routing import Route

from ..paths import SITE_PATH
from .base import TEMPLATES, checked_form, error_page, flash, page, redirect, render, templates
from .charts import charts
from .crons import (
    cron_action,
    cron_page,
    cron_preview,
    dashboard,
    delete_log,
    edit_cron,
    new_cron,
    pause_site,
    site_page,
    switch_crontab,
)
from .jobs import (
    MAX_LIVE,
    PAGE_SIZE,
    bulk_jobs,
    job_action,
    job_page,
    jobs_page,
    live,
)
from .login import login, logout
from .submit import submit_page, types_page
from .workers import workers_page

S = SITE_PATH
routes = [
    Route("/", dashboard, methods=["GET"]),
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/jobs", jobs_page, methods=["GET"]),
    Route("/jobs/bulk", bulk_jobs, methods=["POST"]),
    Route("/live", live, methods=["GET"]),
    Route("/charts", charts, methods=["GET"]),
    Route("/workers", workers_page, methods=["GET"]),
    Route(S, site_page, methods=["GET"]),
    Route(S + "/crontab", switch_crontab, methods=["POST"]),
    Route(S + "/pause", pause_site, methods=["POST"]),
    Route(S + "/resume", pause_site, methods=["POST"]),
    Route(S + "/crons/new", new_cron, methods=["GET", "POST"]),
    Route(S + "/cron-preview", cron_preview, methods=["GET"]),
    Route(S + "/crons/{uid:seg}", cron_page, methods=["GET"]),
    Route(S + "/crons/{uid:seg}/edit", edit_cron, methods=["GET", "POST"]),
    Route(S + "/crons/{uid:seg}/logs/{index:int}/delete", delete_log, methods=["POST"]),
    Route(S + "/crons/{uid:seg}/{action}", cron_action, methods=["POST"]),
    Route(S + "/jobs/{job_id:int}", job_page, methods=["GET"]),
    Route(S + "/jobs/{job_id:int}/{action}", job_action, methods=["POST"]),
    Route(S + "/types", types_page, methods=["GET"]),
    Route(S + "/types/{name:seg}", submit_page, methods=["GET", "POST"]),
]

__all__ = [
    "MAX_LIVE", "PAGE_SIZE", "TEMPLATES", "bulk_jobs", "charts", "checked_form", "cron_action",
    "cron_page",
    "dashboard", "delete_log", "edit_cron", "error_page", "flash", "job_action", "job_page",
    "jobs_page", "live", "login", "logout", "new_cron", "page", "pause_site", "redirect",
    "render", "routes", "site_page", "submit_page", "switch_crontab", "templates", "types_page",
    "workers_page",
]
