"""The jobs: the list (filtered, searched, paged; each row with its error, lateness,
duration and cron), bulk retry / cancel / delete of a filtered set (with a confirmation
step), one job with its history, cancel and retry, the live progress the bars poll, and
the job types with the submit forms generated from their parameter format."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...exceptions import InvalidParameters, NoSuchJob, UnknownRunner
from ...jobs import FINISHED, Job, Param, Status
from ...runner import available_jobs, job_types
from ..common import (
    MAX_DELAY,
    MAX_PRIORITY,
    WebError,
    all_pauses,
    cancel_job,
    get_job,
    get_site,
    live_json,
    parse_json,
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


# -- job types ----------------------------------------------------------------


def field_specs(params: dict[str, Param], values: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = {"bool": "checkbox", "int": "number", "select": "select", "string": "text"}
    return [{"name": name, "kind": kinds[p.type], "required": p.required, "help": p.help,
             "choices": [str(c) for c in p.choices or ()], "value": values.get(name)}
            for name, p in params.items()]


def form_defaults(params: dict[str, Param]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, p in params.items():
        if p.type == "bool":
            out[name] = bool(p.default)
        else:
            out[name] = "" if p.default is None else str(p.default)
    return out


@page
async def types_page(request: Request, kit: Cronkit) -> Response:
    site = get_site(kit, request.path_params["site"])
    helps = available_jobs(site)
    types = [{"name": n, "help": helps.get(n, ""),
              "params": getattr(f, "parameters", None) or {}}
             for n, f in job_types(site).items()]
    return render(request, "types.html", site=site, types=types)


def read_params(params: dict[str, Param], form: FormData,
                prefix: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """(payload, values to show again) from a generated form (its fields named
    ``prefix`` + the parameter's name)."""
    payload: dict[str, Any] = {}
    shown: dict[str, Any] = {}
    for name, p in params.items():
        if p.type == "bool":
            payload[name] = shown[name] = form.get(prefix + name) == "on"
            continue
        text = as_text(form.get(prefix + name, ""))
        shown[name] = text
        if text.strip() != "" or (p.type == "string" and text != ""):
            payload[name] = p.coerce(text)
    return payload, shown


def read_delay(text: str) -> float | None:
    """The delay field: seconds from 0 to MAX_DELAY (None when empty); ValueError with
    the reason."""
    text = text.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"expected seconds from 0 to {MAX_DELAY}, not {text!r}") from None
    if not 0 <= seconds <= MAX_DELAY:   # NaN too
        raise ValueError(f"expected seconds from 0 to {MAX_DELAY}, not {text!r}")
    return seconds


def read_run_at(text: str, timezone: str) -> datetime | None:
    """The run-at field (None when empty): an ISO-8601 date and time, read in the site's
    time zone ``timezone`` unless it gives its own offset. A wall time the zone skips
    (clocks moved forward) or has twice (moved back) is refused: it names no single
    instant. ValueError with the reason."""
    text = text.strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected a date and time such as 2030-01-31T14:30, not {text!r}") \
            from None
    if when.tzinfo is None:
        try:
            tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):  # pragma: no cover - checked by the site
            tz = ZoneInfo("UTC")
        first, second = when.replace(tzinfo=tz), when.replace(tzinfo=tz, fold=1)
        if first.utcoffset() != second.utcoffset():
            back = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
            if back != when:
                raise ValueError(f"{text} does not exist in {timezone} (the clocks skip it)")
            raise ValueError(f"{text} happens twice in {timezone}: add its offset "
                             "(e.g. +01:00) to say which")
        when = first
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is out of range") from None


def _when_options(common: dict[str, Any], timezone: str,
                  errors: dict[str, str]) -> dict[str, Any]:
    """submit's delay or run_after from the form's fields; their errors into ``errors``."""
    options: dict[str, Any] = {}
    try:
        delay = read_delay(as_text(common["delay"]))
    except ValueError as exc:
        errors["delay"] = str(exc)
        delay = None
    try:
        run_after = read_run_at(as_text(common["run_after"]), timezone)
    except ValueError as exc:
        errors["run_after"] = str(exc)
        run_after = None
    if delay and run_after is not None:
        errors["run_after"] = "give a delay or a run-at time, not both"
    elif delay:
        options["delay"] = delay
    elif run_after is not None:
        options["run_after"] = run_after
    return options


@page
async def submit_page(request: Request, kit: Cronkit) -> Response:
    site = get_site(kit, request.path_params["site"])
    name = request.path_params["name"]
    factory = job_types(site).get(name)
    if factory is None:
        raise WebError(404, f"no job type named {name!r} in site {site.name!r}")
    params = getattr(factory, "parameters", None) or {}
    helps = available_jobs(site)
    errors: dict[str, str] = {}
    common: dict[str, str | UploadFile] = {"job_name": "", "priority": "0", "payload": "{}",
                                           "delay": "", "run_after": ""}
    values = form_defaults(params)
    status = 200
    if request.method == "POST":
        form = await checked_form(request)
        common = {k: form.get(k, "") for k in common}
        payload, values = read_params(params, form)
        options: dict[str, Any] = {"name": as_text(common["job_name"]).strip() or None}
        try:
            priority = int(as_text(common["priority"]).strip() or 0)
            if abs(priority) > MAX_PRIORITY:
                raise ValueError
            options["priority"] = priority
        except ValueError:
            errors["priority"] = f"expected an integer from {-MAX_PRIORITY} to {MAX_PRIORITY}"
        options.update(_when_options(common, site.timezone, errors))
        if not params:
            try:
                payload = parse_json(as_text(common["payload"]).encode())
            except WebError as exc:
                errors["payload"] = exc.message
        if not errors:
            try:
                job = site.submit(name, payload, **options)
            except InvalidParameters as exc:
                errors.update(exc.errors)
            except UnknownRunner as exc:  # pragma: no cover - unregistered meanwhile
                raise WebError(404, str(exc)) from None
            else:
                flash(request, f"job {job.id} submitted")
                return redirect(f"/sites/{segment(site.name)}/jobs/{job.id}")
        status = 422
    return render(request, "submit.html", status, site=site, type_name=name,
                  help=helps.get(name, ""), fields=field_specs(params, values), has_params=bool(params),
                  common=common, errors=errors, timezone=site.timezone)
