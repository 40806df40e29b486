"""The jobs: the list (filtered, paged), one job with its history, cancel and retry, the
live progress the bars poll, and the job types with the submit forms generated from
their parameter format."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...exceptions import InvalidParameters, UnknownRunner
from ...jobs import Job, Param, Status
from ...runner import available_jobs, job_types
from ..common import (
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
    site_names,
    waiting,
)
from ..security import safe_next
from .base import as_text, checked_form, flash, page, redirect, render

if TYPE_CHECKING:
    from ...kit import Cronkit

PAGE_SIZE = 25
MAX_LIVE = 200


def _page_number(text: str | None) -> int:
    try:
        return max(1, min(int(text or 1), 10 ** 9))
    except ValueError:
        return 1


@page
async def jobs_page(request: Request, kit: Cronkit) -> Response:
    q = request.query_params
    site_name = q.get("site") or None
    status = q.get("status") or None
    if status is not None and status not in {s.value for s in Status}:
        raise WebError(400, f"unknown status {status!r}")
    type_ = q.get("type") or None
    number = _page_number(q.get("page"))
    offset = (number - 1) * PAGE_SIZE
    if site_name is not None:
        site = get_site(kit, site_name)
        jobs = site.jobs.list(status=status, type=type_, limit=PAGE_SIZE, offset=offset)
        total = site.jobs.count(status=status, type=type_)
        types = set(available_jobs(site))
        found = site.pauses()
        pauses = {site.name: found} if found else {}
    else:
        rows = kit.store.list_jobs(status=status, type=type_, limit=PAGE_SIZE, offset=offset)
        jobs = [Job(kit.site(r["site"]), r) for r in rows]
        total = kit.store.count_jobs(status=status, type=type_)
        types = set().union(*(available_jobs(kit.site(n)) for n in site_names(kit)))
        pauses = all_pauses(kit)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    filters = {k: v for k, v in (("site", site_name), ("status", status), ("type", type_)) if v}
    return render(request, "jobs.html", jobs=jobs, total=total, number=number, pages=pages,
                  offset=offset, filters=filters, statuses=[s.value for s in Status],
                  types=sorted(types | ({type_} if type_ else set())),
                  sites=site_names(kit), pauses=pauses)


@page
async def job_page(request: Request, kit: Cronkit) -> Response:
    site = get_site(kit, request.path_params["site"])
    job = get_job(site, request.path_params["job_id"])
    return render(request, "job.html", site=site, job=job, history=job.history,
                  result=result_text(job),
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
        back = f"/sites/{site.name}/jobs/{job.id}"
    elif request.path_params["action"] == "retry":
        job = retry_job(site, job_id)
        flash(request, f"job {job_id} submitted again as job {job.id}")
        back = f"/sites/{site.name}/jobs/{job.id}"
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


def _fields(params: dict[str, Param], values: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = {"bool": "checkbox", "int": "number", "select": "select", "string": "text"}
    return [{"name": name, "kind": kinds[p.type], "required": p.required, "help": p.help,
             "choices": [str(c) for c in p.choices or ()], "value": values.get(name)}
            for name, p in params.items()]


def _defaults(params: dict[str, Param]) -> dict[str, Any]:
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


def _read_params(params: dict[str, Param], form: FormData) -> tuple[dict[str, Any], dict[str, Any]]:
    """(payload, values to show again) from a generated form."""
    payload: dict[str, Any] = {}
    shown: dict[str, Any] = {}
    for name, p in params.items():
        if p.type == "bool":
            payload[name] = shown[name] = form.get(name) == "on"
            continue
        text = as_text(form.get(name, ""))
        shown[name] = text
        if text.strip() != "" or (p.type == "string" and text != ""):
            payload[name] = p.coerce(text)
    return payload, shown


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
    common: dict[str, str | UploadFile] = {"job_name": "", "priority": "0", "payload": "{}"}
    values = _defaults(params)
    status = 200
    if request.method == "POST":
        form = await checked_form(request)
        common = {k: form.get(k, "") for k in common}
        payload, values = _read_params(params, form)
        options: dict[str, Any] = {"name": as_text(common["job_name"]).strip() or None}
        try:
            priority = int(as_text(common["priority"]).strip() or 0)
            if abs(priority) > MAX_PRIORITY:
                raise ValueError
            options["priority"] = priority
        except ValueError:
            errors["priority"] = f"expected an integer from {-MAX_PRIORITY} to {MAX_PRIORITY}"
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
                return redirect(f"/sites/{site.name}/jobs/{job.id}")
        status = 422
    return render(request, "submit.html", status, site=site, type_name=name,
                  help=helps.get(name, ""), fields=_fields(params, values), has_params=bool(params),
                  common=common, errors=errors)
