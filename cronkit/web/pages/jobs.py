"""The jobs: the list (filtered, searched, paged; each row with its error, lateness,
duration and cron), bulk retry / cancel / delete of a filtered set (with a confirmation
step), one job with its history, cancel and retry, and the live progress the bars poll
(the job types and their submit forms: submit.py)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...exceptions import InvalidParameters, NoSuchJob
from ...jobs import FINISHED, Job, Status
from ...runner import available_jobs
from ..common import (
    WebError,
    all_pauses,
    cancel_job,
    get_job,
    get_site,
    live_json,
    predecessors,
    result_text,
    retry_job,
    search_text,
    site_names,
    waiting,
)
from ..paths import segment
from ..security import safe_next
from .base import as_text, checked_form, flash, page, redirect, render

if TYPE_CHECKING:
    from ...kit import Cronkit
    from ...site import Site

PAGE_SIZE = 25
MAX_LIVE = 200
#: The most jobs one bulk action acts on: a filter that matches more is refused (narrow it).
BULK_MAX = 1000
#: A failed row's error summary: its message's first line, cut to so many characters.
ERROR_SUMMARY = 120
BULK_ACTIONS = {"retry": "Retry", "cancel": "Cancel", "delete": "Delete"}


def _page_number(text: str | None) -> int:
    try:
        return max(1, min(int(text or 1), 10 ** 9))
    except ValueError:
        return 1


def job_filters(kit: Cronkit, values: Any) -> dict[str, str]:
    """The jobs list's filters from a query string or a posted form, checked: site
    (must exist), status, type, q (the search text); only those given."""
    site_name = as_text(values.get("site") or "") or None
    status = as_text(values.get("status") or "") or None
    if status is not None and status not in {s.value for s in Status}:
        raise WebError(400, f"unknown status {status!r}", "status")
    if site_name is not None:
        get_site(kit, site_name)
    type_ = as_text(values.get("type") or "") or None
    q = search_text(as_text(values.get("q") or ""))
    return {k: v for k, v in (("site", site_name), ("status", status), ("type", type_),
                              ("q", q)) if v}


def _store_filters(filters: dict[str, str]) -> dict[str, Any]:
    return {"site": filters.get("site"), "status": filters.get("status"),
            "type": filters.get("type"), "search": filters.get("q")}


def filter_words(filters: dict[str, str]) -> str:
    """``site plone, status failed, search "disk"``: a filter in words (every job when
    there is none)."""
    words = [f"{k} {v}" for k, v in filters.items() if k != "q"]
    if "q" in filters:
        words.append(f"search \u201c{filters['q']}\u201d")
    return ", ".join(words) or "no filter: every job"


def span(seconds: float) -> str:
    """A duration in words: 0.25 s, 12.5 s, 4 min 05 s, 2 h 03 min, 3 d 04 h."""
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 1 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def error_summary(job: Job) -> str | None:
    """A failed job's error in one line (its message's last non-empty line is the
    exception for a traceback, else its first line), cut to ERROR_SUMMARY characters;
    None for a job that did not fail."""
    if job.status != Status.FAILED or not job.message:
        return None
    lines = [line.strip() for line in job.message.splitlines() if line.strip()]
    if not lines:
        return None
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    return line if len(line) <= ERROR_SUMMARY else line[:ERROR_SUMMARY - 1] + "\u2026"


def timing(job: Job, now: datetime) -> dict[str, str | None]:
    """The row's lateness (started, or still waiting, after its due time) and duration
    (to its end, or to now while it runs), in words; None where there is none."""
    due = None if waiting(job) else job.run_after
    started = job.started_at
    late: float | None = None
    if due is not None:
        if started is not None:
            late = (started - due).total_seconds()
        elif job.status == Status.PENDING:
            late = (now - due).total_seconds()
    duration: float | None = None
    if started is not None:
        end = job.finished_at or (now if job.status == Status.RUNNING else None)
        duration = None if end is None else (end - started).total_seconds()
    return {"lateness": span(late) if late is not None and late > 0 else
            ("on time" if late is not None else None),
            "duration": span(max(duration, 0.0)) if duration is not None else None}


def cron_label(site: Site, uid: str | None) -> dict[str, Any] | None:
    """The cron a firing belongs to: its uid, its name (None when it is gone)."""
    if uid is None:
        return None
    cron = site.crontab.crons.get(uid)
    return {"uid": uid, "name": cron.name if cron is not None else None}


def job_rows(kit: Cronkit, jobs: list[Job]) -> list[dict[str, Any]]:
    """What the jobs list shows of each job, beyond the job itself."""
    now = kit.clock.now()
    return [{"job": job, "error": error_summary(job), "cron": cron_label(job.site, job.cron_uid),
             **timing(job, now)} for job in jobs]


@page
async def jobs_page(request: Request, kit: Cronkit) -> Response:
    filters = job_filters(kit, request.query_params)
    number = _page_number(request.query_params.get("page"))
    offset = (number - 1) * PAGE_SIZE
    where = _store_filters(filters)
    rows = kit.store.list_jobs(**where, limit=PAGE_SIZE, offset=offset)
    total = kit.store.count_jobs(**where)
    site_name, type_ = filters.get("site"), filters.get("type")
    if site_name is not None:
        site = kit.site(site_name)
        jobs = [Job(site, r) for r in rows]
        types = set(available_jobs(site))
        found = site.pauses()
        pauses = {site.name: found} if found else {}
    else:
        jobs = [Job(kit.site(r["site"]), r) for r in rows]
        types = set().union(*(available_jobs(kit.site(n)) for n in site_names(kit)))
        pauses = all_pauses(kit)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    return render(request, "jobs.html", jobs=jobs, rows=job_rows(kit, jobs), total=total,
                  number=number, pages=pages, offset=offset, filters=filters,
                  statuses=[s.value for s in Status],
                  types=sorted(types | ({type_} if type_ else set())),
                  sites=site_names(kit), pauses=pauses, bulk_actions=BULK_ACTIONS,
                  bulk_max=BULK_MAX)


# -- bulk actions ---------------------------------------------------------------


def _bulk_one(site: Site, action: str, job: Job) -> str:
    """Do ``action`` to ``job``; return what came of it: "done", "asked" (a running job
    asked to stop), or why it could not be done."""
    if action == "cancel":
        if job.status in FINISHED:
            return f"already {job.status.value}"
        ended = site.kit.lifecycle.cancel(site, job.id)
        return "done" if ended == Status.CANCELED else (
            "asked" if ended == Status.RUNNING else f"already {ended}")
    if action == "retry":
        if job.status not in (Status.FAILED, Status.CANCELED):
            return f"{job.status.value}: only a failed or canceled job is retried"
        if job.cron_uid is not None:
            return "a cron firing: run its cron instead"
        try:
            site.jobs.retry(job.id)
        except (LookupError, InvalidParameters) as exc:
            return f"not retried: {exc}"
        return "done"
    if job.status == Status.RUNNING:
        return "running: cancel it first"
    try:
        site.jobs.remove(job.id)
    except NoSuchJob:
        return "gone meanwhile"
    return "done"


def bulk_result(action: str, outcomes: dict[str, int]) -> str:
    """The flash of a bulk action: what was done, then each reason a job was not."""
    past = {"retry": "retried", "cancel": "canceled", "delete": "deleted"}[action]
    done = outcomes.pop("done", 0)
    parts = [f"{done} job{'s' if done != 1 else ''} {past}"]
    asked = outcomes.pop("asked", 0)
    if asked:
        parts.append(f"{asked} running: asked to stop at their next check")
    parts += [f"{n} not {past} ({why})" for why, n in sorted(outcomes.items())]
    return "; ".join(parts)


@page
async def bulk_jobs(request: Request, kit: Cronkit) -> Response:
    """Retry, cancel or delete the jobs of a filter: a first post shows how many and
    which filter, and asks; the post of its Confirm button (``confirmed``) acts. At most
    BULK_MAX jobs: a filter that matches more is refused."""
    form = await checked_form(request)
    action = as_text(form.get("action", ""))
    if action not in BULK_ACTIONS:
        raise WebError(400, f"unknown bulk action {action!r} (expected retry, cancel or "
                       "delete)", "action")
    filters = job_filters(kit, form)
    where = _store_filters(filters)
    back = "/jobs" + (f"?{urlencode(filters)}" if filters else "")
    total = kit.store.count_jobs(**where)
    if form.get("confirmed") != "yes":
        return render(request, "jobs_bulk.html", action=action, label=BULK_ACTIONS[action],
                      filters=filters, words=filter_words(filters), total=total,
                      bulk_max=BULK_MAX, back=back)
    if total > BULK_MAX:
        flash(request, f"{total:,} jobs match ({filter_words(filters)}): over the "
              f"{BULK_MAX:,} one action takes, nothing done. Narrow the filter.", "error")
        return redirect(back)
    outcomes: dict[str, int] = {}
    for row in kit.store.list_jobs(**where, limit=BULK_MAX, oldest_first=True):
        site = kit.site(row["site"])
        outcome = _bulk_one(site, action, Job(site, row))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    flash(request, f"{BULK_ACTIONS[action]} ({filter_words(filters)}): "
          f"{bulk_result(action, outcomes)}")
    return redirect(back)


@page
async def job_page(request: Request, kit: Cronkit) -> Response:
    site = get_site(kit, request.path_params["site"])
    job = get_job(site, request.path_params["job_id"])
    return render(request, "job.html", site=site, job=job, history=job.history,
                  result=result_text(job),
                  cron_name=(cron_label(site, job.cron_uid) or {}).get("name"),
                  after=predecessors(job), dependents=site.jobs.dependents(job.id),
                  waiting=waiting(job))


@page
async def job_action(request: Request, kit: Cronkit) -> Response:
    site = get_site(kit, request.path_params["site"])
    job_id = request.path_params["job_id"]
    form = await checked_form(request)
    if request.path_params["action"] == "cancel":
        job = cancel_job(site, job_id)
        flash(request, f"job {job.id} canceled" if job.status == Status.CANCELED
              else f"job {job.id}: cancel asked, it stops at its next check")
        back = f"/sites/{segment(site.name)}/jobs/{job.id}"
    elif request.path_params["action"] == "retry":
        job = retry_job(site, job_id)
        flash(request, f"job {job_id} submitted again as job {job.id}")
        back = f"/sites/{segment(site.name)}/jobs/{job.id}"
    else:
        raise WebError(404, f"no job action {request.path_params['action']!r}")
    return redirect(safe_next(form.get("next"), back))


@page
async def live(request: Request, kit: Cronkit) -> Response:
    """Progress of the jobs named ``j=site:id`` (repeated), for the progress bars."""
    out = []
    for ref in request.query_params.getlist("j")[:MAX_LIVE]:
        name, _, number = ref.rpartition(":")
        try:
            site = get_site(kit, name)
            out.append(live_json(get_job(site, int(number))))
        except (WebError, ValueError):
            continue
    return JSONResponse(out, headers={"Cache-Control": "no-store"})
