"""The dashboard's HTML pages: sites, crontabs, crons and logs, jobs, job types, login.

Every form posts a CSRF token; every value reaches the page through Jinja2 with
autoescape on; the progress bars are updated by static/cronkit.js polling ``/live``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..exceptions import CronkitError, InvalidParameters, StoreError, UnknownRunner
from ..jobs import Job, Param, Status
from ..model import MISFIRE_POLICIES, Cron
from ..runner import available_jobs, job_types
from .common import (
    CRON_EDITABLE,
    MAX_PRIORITY,
    WebError,
    cancel_job,
    check_cron_fields,
    describe,
    get_cron,
    get_job,
    get_site,
    live_json,
    next_run,
    off_the_loop,
    parse_json,
    retry_job,
    save_crontab,
    site_names,
)
from .security import check_password, csrf_ok, csrf_token, safe_next

PAGE_SIZE = 25
MAX_LIVE = 200
TEMPLATES = Path(__file__).parent / "templates"


def templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["words"] = describe
    return env


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z") if value is not None else "—"


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    auth = request.app.state.auth
    context.update(
        request=request, csrf_token=csrf_token(request),
        flash=request.session.pop("flash", []),
        auth_enabled=bool(auth["token"] or auth["password"]),
        logged_in=bool(request.session.get("user")),
        nav_sites=site_names(request.app.state.kit))
    html = request.app.state.templates.get_template(name).render(context)
    return HTMLResponse(html, status_code)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status, status=status, message=message)


def flash(request: Request, text: str, kind: str = "info") -> None:
    request.session["flash"] = [*request.session.get("flash", []), [kind, text]]


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, 303)


async def checked_form(request: Request):
    """The posted form, after its CSRF token is checked (403 without it)."""
    form = await request.form()
    if not csrf_ok(request, form.get("csrf_token")):
        raise WebError(403, "missing or wrong CSRF token: reload the page and try again")
    return form


def page(fn: Callable) -> Callable:
    """Run ``fn(request, kit)``; cronkit errors become an error page."""

    @functools.wraps(fn)
    async def wrapped(request: Request) -> Response:
        try:
            return await off_the_loop(fn, request, request.app.state.kit)
        except WebError as exc:
            return error_page(request, exc.status, exc.message)
        except StoreError as exc:
            return error_page(request, 503, str(exc))
        except CronkitError as exc:
            return error_page(request, 409, str(exc))

    return wrapped


# -- login --------------------------------------------------------------------


@page
async def login(request: Request, kit: Any) -> Response:
    target = safe_next(request.query_params.get("next"))
    if request.method == "GET":
        return render(request, "login.html", target=target, error=None)
    form = await checked_form(request)
    target = safe_next(form.get("next"))
    throttle, client = request.app.state.login_throttle, request.client.host if request.client else ""
    wait = throttle.wait(client)
    if wait:
        response = render(request, "login.html", 429, target=target,
                          error=f"too many wrong passwords: try again in {wait} s")
        response.headers["Retry-After"] = str(wait)
        return response
    if not check_password(request.app.state.auth, form.get("password")):
        throttle.failed(client)
        return render(request, "login.html", 401, target=target, error="wrong password")
    throttle.succeeded(client)
    request.session.clear()
    request.session["user"] = "admin"
    csrf_token(request)
    return redirect(target)


@page
async def logout(request: Request, kit: Any) -> Response:
    await checked_form(request)
    request.session.clear()
    return redirect("/login")


# -- dashboard and crontabs -----------------------------------------------------


@page
async def dashboard(request: Request, kit: Any) -> Response:
    sites = []
    active = [Status.PENDING.value, Status.RUNNING.value]
    for name in site_names(kit):
        site = kit.site(name)
        sites.append({"name": name, "crontab": site.crontab,
                      "active": site.jobs.count(status=active),
                      "failed": site.jobs.count(status=Status.FAILED.value)})
    recent = [Job(kit.site(r["site"]), r) for r in kit.store.list_jobs(limit=10)]
    return render(request, "dashboard.html", sites=sites, jobs=recent)


@page
async def site_page(request: Request, kit: Any) -> Response:
    site = get_site(kit, request.path_params["site"])
    crons = [{"cron": c, "next": next_run(c)} for c in site.crontab.crons.values()]
    return render(request, "site.html", site=site, crontab=site.crontab, crons=crons)


@page
async def switch_crontab(request: Request, kit: Any) -> Response:
    site = get_site(kit, request.path_params["site"])
    form = await checked_form(request)
    site.crontab.activated = form.get("activated") == "on"
    save_crontab(site)
    flash(request, f"crontab {'activated' if site.crontab.activated else 'deactivated'}")
    return redirect(f"/sites/{site.name}")


# -- crons --------------------------------------------------------------------


def _form_values(form) -> dict:
    """A cron form's fields as the model reads them ('' means unset)."""
    values = {f: form.get(f, "") for f in CRON_EDITABLE if f != "activated"}
    values["activated"] = form.get("activated") == "on"
    for field in ("timezone", "user", "misfire_grace", "environ"):
        if values[field].strip() == "":
            values[field] = None
    for field in ("misfire", "logs_limit"):  # left empty: the default, or unchanged
        if values[field].strip() == "":
            del values[field]
    return values


def _cron_form(request: Request, site: Any, cron: Cron | None, values: dict, errors: dict,
               status: int = 200) -> HTMLResponse:
    return render(request, "cron_form.html", status, site=site, cron=cron, values=values,
                  errors=errors, types=sorted(available_jobs(site)), misfires=MISFIRE_POLICIES)


def _cron_values(cron: Cron | None) -> dict:
    import json

    if cron is None:
        return {"name": "", "periodicity": "", "timezone": "", "activated": True,
                "environ": "{}", "logs_limit": "5", "user": "", "misfire": "once",
                "misfire_grace": ""}
    return {"name": cron.name, "periodicity": cron.periodicity, "timezone": cron.timezone or "",
            "activated": cron.activated, "environ": json.dumps(cron.environ, indent=2),
            "logs_limit": str(cron.logs_limit), "user": cron.user or "",
            "misfire": cron.misfire,
            "misfire_grace": "" if cron.misfire_grace is None else f"{cron.misfire_grace:g}"}


def _shown(form) -> dict:
    """What the person typed, to put back into the form."""
    shown = {f: form.get(f, "") for f in CRON_EDITABLE}
    shown["activated"] = form.get("activated") == "on"
    return shown


@page
async def new_cron(request: Request, kit: Any) -> Response:
    return await _cron_form_page(request, get_site(kit, request.path_params["site"]), None)


@page
async def edit_cron(request: Request, kit: Any) -> Response:
    site = get_site(kit, request.path_params["site"])
    return await _cron_form_page(request, site, get_cron(site, request.path_params["uid"]))


async def _cron_form_page(request: Request, site: Any, cron: Cron | None) -> Response:
    """The cron form: shown (GET), or checked field by field and saved (POST); ``cron``
    None adds a new one."""
    if request.method == "GET":
        return _cron_form(request, site, cron, _cron_values(cron), {})
    form = await checked_form(request)
    clean, errors = check_cron_fields(_form_values(form), base=cron)
    if errors:
        return _cron_form(request, site, cron, _shown(form), errors, 422)
    if cron is None:
        cron, done = site.crontab.add_cron(Cron(**clean)), "added"
    else:
        for field, value in clean.items():
            setattr(cron, field, value)
        done = "saved"
    save_crontab(site)
    flash(request, f"cron {cron.name} {done}")
    return redirect(f"/sites/{site.name}/crons/{cron.uid}")


@page
async def cron_page(request: Request, kit: Any) -> Response:
    site = get_site(kit, request.path_params["site"])
    cron = get_cron(site, request.path_params["uid"])
    jobs = site.jobs.list(cron=cron, limit=10)
    return render(request, "cron.html", site=site, cron=cron, next=next_run(cron), jobs=jobs)


@page
async def cron_action(request: Request, kit: Any) -> Response:
    site = get_site(kit, request.path_params["site"])
    cron = get_cron(site, request.path_params["uid"])
    await checked_form(request)
    action = request.path_params["action"]
    back = f"/sites/{site.name}/crons/{cron.uid}"
    if action == "delete":
        del site.crontab.crons[cron.uid]
        save_crontab(site)
        flash(request, f"cron {cron.name} deleted")
        return redirect(f"/sites/{site.name}")
    if action == "run":
        site.cron_manager(cron).register(force=True)
        flash(request, f"cron {cron.name} queued to run now")
        return redirect(back)
    if action not in ("enable", "disable"):
        raise WebError(404, f"no cron action {action!r}")
    cron.activated = action == "enable"
    save_crontab(site)
    flash(request, f"cron {cron.name} {action}d")
    return redirect(back)


@page
async def delete_log(request: Request, kit: Any) -> Response:
    from .api import delete_log_at

    site = get_site(kit, request.path_params["site"])
    cron = get_cron(site, request.path_params["uid"])
    await checked_form(request)
    delete_log_at(site, cron, request.path_params["index"])
    flash(request, "log deleted")
    return redirect(f"/sites/{site.name}/crons/{cron.uid}")


# -- jobs ---------------------------------------------------------------------


def _page_number(text: str | None) -> int:
    try:
        return max(1, min(int(text or 1), 10 ** 9))
    except ValueError:
        return 1


@page
async def jobs_page(request: Request, kit: Any) -> Response:
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
    else:
        rows = kit.store.list_jobs(status=status, type=type_, limit=PAGE_SIZE, offset=offset)
        jobs = [Job(kit.site(r["site"]), r) for r in rows]
        total = kit.store.count_jobs(status=status, type=type_)
        types = set().union(*(available_jobs(kit.site(n)) for n in site_names(kit)))
    pages = max(1, math.ceil(total / PAGE_SIZE))
    filters = {k: v for k, v in (("site", site_name), ("status", status), ("type", type_)) if v}
    return render(request, "jobs.html", jobs=jobs, total=total, number=number, pages=pages,
                  offset=offset, filters=filters, statuses=[s.value for s in Status],
                  types=sorted(types | ({type_} if type_ else set())),
                  sites=site_names(kit))


@page
async def job_page(request: Request, kit: Any) -> Response:
    site = get_site(kit, request.path_params["site"])
    job = get_job(site, request.path_params["job_id"])
    return render(request, "job.html", site=site, job=job, history=job.history)


@page
async def job_action(request: Request, kit: Any) -> Response:
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
async def live(request: Request, kit: Any) -> Response:
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


def _fields(params: dict[str, Param], values: dict) -> list[dict]:
    kinds = {"bool": "checkbox", "int": "number", "select": "select", "string": "text"}
    return [{"name": name, "kind": kinds[p.type], "required": p.required, "help": p.help,
             "choices": [str(c) for c in p.choices or ()], "value": values.get(name)}
            for name, p in params.items()]


def _defaults(params: dict[str, Param]) -> dict:
    out = {}
    for name, p in params.items():
        if p.type == "bool":
            out[name] = bool(p.default)
        else:
            out[name] = "" if p.default is None else str(p.default)
    return out


@page
async def types_page(request: Request, kit: Any) -> Response:
    site = get_site(kit, request.path_params["site"])
    helps = available_jobs(site)
    types = [{"name": n, "help": helps.get(n, ""),
              "params": getattr(f, "parameters", None) or {}}
             for n, f in job_types(site).items()]
    return render(request, "types.html", site=site, types=types)


def _read_params(params: dict[str, Param], form) -> tuple[dict, dict]:
    """(payload, values to show again) from a generated form."""
    payload, shown = {}, {}
    for name, p in params.items():
        if p.type == "bool":
            payload[name] = shown[name] = form.get(name) == "on"
            continue
        text = form.get(name, "")
        shown[name] = text
        if text.strip() != "" or (p.type == "string" and text != ""):
            payload[name] = p.coerce(text)
    return payload, shown


@page
async def submit_page(request: Request, kit: Any) -> Response:
    site = get_site(kit, request.path_params["site"])
    name = request.path_params["name"]
    factory = job_types(site).get(name)
    if factory is None:
        raise WebError(404, f"no job type named {name!r} in site {site.name!r}")
    params = getattr(factory, "parameters", None) or {}
    helps = available_jobs(site)
    errors: dict = {}
    common = {"job_name": "", "priority": "0", "payload": "{}"}
    values = _defaults(params)
    status = 200
    if request.method == "POST":
        form = await checked_form(request)
        common = {k: form.get(k, "") for k in common}
        payload, values = _read_params(params, form)
        options: dict = {"name": common["job_name"].strip() or None}
        try:
            priority = int(common["priority"].strip() or 0)
            if abs(priority) > MAX_PRIORITY:
                raise ValueError
            options["priority"] = priority
        except ValueError:
            errors["priority"] = f"expected an integer from {-MAX_PRIORITY} to {MAX_PRIORITY}"
        if not params:
            try:
                payload = parse_json(common["payload"].encode())
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


S = "/sites/{site}"
routes = [
    Route("/", dashboard, methods=["GET"]),
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/jobs", jobs_page, methods=["GET"]),
    Route("/live", live, methods=["GET"]),
    Route(S, site_page, methods=["GET"]),
    Route(S + "/crontab", switch_crontab, methods=["POST"]),
    Route(S + "/crons/new", new_cron, methods=["GET", "POST"]),
    Route(S + "/crons/{uid}", cron_page, methods=["GET"]),
    Route(S + "/crons/{uid}/edit", edit_cron, methods=["GET", "POST"]),
    Route(S + "/crons/{uid}/logs/{index:int}/delete", delete_log, methods=["POST"]),
    Route(S + "/crons/{uid}/{action}", cron_action, methods=["POST"]),
    Route(S + "/jobs/{job_id:int}", job_page, methods=["GET"]),
    Route(S + "/jobs/{job_id:int}/{action}", job_action, methods=["POST"]),
    Route(S + "/types", types_page, methods=["GET"]),
    Route(S + "/types/{name}", submit_page, methods=["GET", "POST"]),
]
