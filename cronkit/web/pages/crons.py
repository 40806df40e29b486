"""The dashboard, a site's crontab and its crons: add, edit, enable, disable, delete,
run now, and their logs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ...exceptions import InvalidCron, InvalidParameters
from ...jobs import Job, Param, Status, validate_payload
from ...model import MISFIRE_POLICIES, Cron
from ...preview import in_site, preview, set_fields
from ...runner import available_jobs, runner_factory
from ..common import (
    CRON_EDITABLE,
    WebError,
    all_pauses,
    check_cron_fields,
    delete_log_at,
    get_cron,
    get_site,
    next_run,
    pause_type,
    save_crontab,
    site_names,
)
from ..paths import segment
from ..security import safe_next
from .base import as_text, checked_form, flash, page, redirect, render, when
from .charts import cron_charts, site_charts
from .jobs import cron_label
from .submit import field_specs, form_defaults, read_params

if TYPE_CHECKING:
    from ...kit import Cronkit
    from ...site import Site


@page
async def dashboard(request: Request, kit: Cronkit) -> Response:
    sites = []
    active = [Status.PENDING.value, Status.RUNNING.value]
    paused = all_pauses(kit)
    for name in site_names(kit):
        site = kit.site(name)
        sites.append({"name": name, "crontab": site.crontab, "paused": paused.get(name, []),
                      "active": site.jobs.count(status=active),
                      "failed": site.jobs.count(status=Status.FAILED.value)})
    recent = [Job(kit.site(r["site"]), r) for r in kit.store.list_jobs(limit=10)]
    crons = {(j.site_name, j.cron_uid): (cron_label(j.site, j.cron_uid) or {}).get("name")
             for j in recent if j.cron_uid is not None}
    chart_type = request.query_params.get("type") or None
    types = set().union(*(available_jobs(kit.site(n)) for n in site_names(kit)))
    return render(request, "dashboard.html", sites=sites, jobs=recent, crons=crons,
                  charts=site_charts(kit, None, chart_type), chart_type=chart_type,
                  types=sorted(types))


@page
async def site_page(request: Request, kit: Cronkit) -> Response:
    site = get_site(kit, request.path_params["site"])
    crons = [{"cron": c, "next": next_run(c)} for c in site.crontab.crons.values()]
    chart_type = request.query_params.get("type") or None
    return render(request, "site.html", site=site, crontab=site.crontab, crons=crons,
                  paused=site.pauses(), types=sorted(available_jobs(site)),
                  chart_type=chart_type, charts=site_charts(kit, site, chart_type))


@page
async def pause_site(request: Request, kit: Cronkit) -> Response:
    """The Pause and Resume buttons: the whole site, or the jobs of the posted type."""
    site = get_site(kit, request.path_params["site"])
    form = await checked_form(request)
    action = request.url.path.rsplit("/", 1)[-1]
    type_ = pause_type(as_text(form.get("type", "")).strip() or None)
    what = f"jobs of type {type_}" if type_ is not None else "the site's queue"
    if action == "pause":
        site.pause(type_)
        flash(request, f"{what} paused: running jobs run on, pending ones wait")
    elif site.resume(type_):
        flash(request, f"{what} resumed")
    else:
        flash(request, f"{what} was not paused")
    return redirect(safe_next(form.get("next"), f"/sites/{segment(site.name)}"))


@page
async def switch_crontab(request: Request, kit: Cronkit) -> Response:
    site = get_site(kit, request.path_params["site"])
    form = await checked_form(request)
    site.crontab.activated = form.get("activated") == "on"
    save_crontab(site)
    flash(request, f"crontab {'activated' if site.crontab.activated else 'deactivated'}")
    return redirect(f"/sites/{segment(site.name)}")


# -- the cron form --------------------------------------------------------------


_CHECKBOXES = ("activated", "seconds_first")


def _form_values(form: FormData) -> dict[str, Any]:
    """A cron form's fields as the model reads them ('' means unset)."""
    values: dict[str, Any] = {f: form.get(f, "") for f in CRON_EDITABLE if f not in _CHECKBOXES}
    for field in _CHECKBOXES:
        values[field] = form.get(field) == "on"
    for field in ("timezone", "user", "misfire_grace", "environ"):
        if values[field].strip() == "":
            values[field] = None
    for field in ("misfire", "logs_limit"):  # left empty: the default, or unchanged
        if values[field].strip() == "":
            del values[field]
    return values


def _params(site: Site, name: str) -> dict[str, Param]:
    """The parameter format of the runner ``name`` ({} when it has none or is unknown)."""
    factory = runner_factory(site, name) if name else None
    return dict(getattr(factory, "parameters", None) or {})


def unknown_runner(site: Site, name: str) -> str:
    """Why a cron named ``name`` would not run here (the CLI's warning)."""
    return (f"no runner named {name!r} for site {site.name!r} in this process (its runs "
            "log NOTRUN unless the worker imports it: --import MODULE)")


def _cron_form(request: Request, site: Site, cron: Cron | None, values: dict[str, Any],
               errors: dict[str, str], status: int = 200,
               shown_preview: dict[str, Any] | None = None) -> HTMLResponse:
    """The form, with the environ as fields of the runner's parameter format when it
    has one (``env_values``: their values as typed), raw JSON otherwise (and when the
    form was posted as raw JSON: ``raw_environ``)."""
    types = sorted(available_jobs(site))
    name = str(values.get("name") or "")
    params = {} if values.get("raw_environ") else _params(site, name)
    env_values = values.get("env_values")
    if env_values is None and params:
        env_values = _env_shown(params, values.get("environ"))
    return render(request, "cron_form.html", status, site=site, cron=cron, values=values,
                  errors=errors, types=types, misfires=MISFIRE_POLICIES,
                  preview=shown_preview, known=name in types or not name,
                  env_fields=field_specs(params, env_values or {}) if params else [],
                  env_for=name if params else "")


def _env_shown(params: dict[str, Param], environ: Any) -> dict[str, Any]:
    """The parameter fields' values for an environ (JSON text or a dict)."""
    values = form_defaults(params)
    try:
        found = json.loads(environ) if isinstance(environ, str) else (environ or {})
    except (ValueError, RecursionError):   # pragma: no cover - a saved cron's is sound
        found = {}
    if isinstance(found, dict):
        for key, value in found.items():
            if key in params:
                values[key] = value if params[key].type == "bool" else str(value)
    return values


def _cron_values(cron: Cron | None) -> dict[str, Any]:
    if cron is None:
        return {"name": "", "uid": "", "periodicity": "", "seconds_first": False,
                "timezone": "", "activated": True,
                "environ": "{}", "logs_limit": "5", "user": "", "misfire": "once",
                "misfire_grace": ""}
    return {"name": cron.name, "uid": cron.uid, "periodicity": cron.periodicity,
            "seconds_first": cron.seconds_first, "timezone": cron.timezone or "",
            "activated": cron.activated, "environ": json.dumps(cron.environ, indent=2),
            "logs_limit": str(cron.logs_limit), "user": cron.user or "",
            "misfire": cron.misfire,
            "misfire_grace": "" if cron.misfire_grace is None else f"{cron.misfire_grace:g}"}


def _posted_name(form: FormData) -> str:
    """The runner the form names: the typed other name, else the one chosen."""
    return (as_text(form.get("other_name", "")).strip()
            or as_text(form.get("name", "")).strip())


def _shown(form: FormData, cron: Cron | None) -> dict[str, Any]:
    """What the person typed, to put back into the form."""
    shown: dict[str, Any] = {f: form.get(f, "") for f in CRON_EDITABLE}
    for field in _CHECKBOXES:
        shown[field] = form.get(field) == "on"
    shown["name"] = _posted_name(form)
    shown["uid"] = cron.uid if cron is not None else as_text(form.get("uid", ""))
    shown["unknown_ok"] = form.get("unknown_ok") == "on"
    shown["raw_environ"] = "env_for" not in form
    return shown


def check_uid(site: Site, text: str) -> str | None:
    """A new cron's uid as typed (None: one is made); InvalidCron naming ``uid`` for one
    the model refuses and one the crontab has already (a "/" is fine: a uid is one
    percent-encoded segment of the cron's address, see cronkit.web.paths)."""
    uid = text.strip()
    if not uid:
        return None
    Cron("x", "* * * * *", uid=uid)   # the model's rule
    if uid in site.crontab.crons:
        raise InvalidCron(f"a cron with uid {uid!r} already exists in site {site.name!r}: "
                          "choose another uid, or edit that cron", "uid", uid)
    return uid


def _form_checks(site: Site, cron: Cron | None, form: FormData, values: dict[str, Any],
                 shown: dict[str, Any]) -> dict[str, str]:
    """The checks the model does not make: the runner is known (or its being unknown
    confirmed), the uid is free, the environ's parameter fields. Sets ``values``' name,
    uid and environ; returns the errors."""
    errors: dict[str, str] = {}
    name = _posted_name(form)
    values["name"] = name
    changed = cron is None or name != cron.name
    if name and changed and runner_factory(site, name) is None \
            and form.get("unknown_ok") != "on":
        errors["name"] = (unknown_runner(site, name) + ": choose a registered runner, "
                          "or tick the box to save it anyway")
    if cron is None:
        try:
            uid = check_uid(site, as_text(form.get("uid", "")))
        except InvalidCron as exc:
            errors["uid"] = str(exc)
        else:
            if uid is not None:
                values["uid"] = uid
    params = _params(site, name)
    env_for = as_text(form.get("env_for", ""))
    if env_for and params:
        if env_for != name:       # the runner changed: its own fields, to fill in
            shown["env_values"] = form_defaults(params)
            errors["environ"] = (f"the runner is now {name}: fill in its parameters "
                                 "below, then save")
            return errors
        environ, shown["env_values"] = read_params(params, form, prefix="env-")
        try:
            values["environ"] = validate_payload(params, environ)
        except InvalidParameters as exc:
            errors.update((f"env-{k}", v) for k, v in exc.errors.items())
            errors.setdefault("environ", "the runner's parameters are not valid: see below")
    elif env_for:   # the fields of a runner that has none now: its environ is empty
        shown["environ"] = "{}"
        values["environ"] = None
    return errors


@page
async def cron_preview(request: Request, kit: Cronkit) -> Response:
    """The cron form's live preview: ``periodicity``, ``timezone`` and ``seconds_first``
    (``on``) from the query, as the form has them; JSON of the periodicity in words,
    its note and the next times as the pages show them, or the errors by field. Nothing
    is saved; it reads no crontab but the site's time zone."""
    site = get_site(kit, request.path_params["site"])
    q = request.query_params
    values = {"name": "preview", "periodicity": q.get("periodicity", ""),
              "seconds_first": q.get("seconds_first") == "on",
              "timezone": (q.get("timezone") or "").strip() or None}
    clean, errors = check_cron_fields(values)
    if errors:
        return JSONResponse({"errors": errors}, headers={"Cache-Control": "no-store"})
    shown = preview(in_site(Cron(**clean), site), site.kit.clock.now())
    return JSONResponse({"description": shown["description"], "note": shown["note"],
                         "timezone": shown["timezone"],
                         "next": [when(t) for t in shown["next"]]},
                        headers={"Cache-Control": "no-store"})


@page
async def new_cron(request: Request, kit: Cronkit) -> Response:
    return await _cron_form_page(request, get_site(kit, request.path_params["site"]), None)


@page
async def edit_cron(request: Request, kit: Cronkit) -> Response:
    site = get_site(kit, request.path_params["site"])
    return await _cron_form_page(request, site, get_cron(site, request.path_params["uid"]))


async def _cron_form_page(request: Request, site: Site, cron: Cron | None) -> Response:
    """The cron form: shown (GET), or checked field by field and saved (POST); ``cron``
    None adds a new one. The Preview button (``action=preview``) shows the form again,
    as typed, with the periodicity in words and the next times: nothing is saved."""
    if request.method == "GET":
        return _cron_form(request, site, cron, _cron_values(cron), {})
    form = await checked_form(request)
    values = _form_values(form)
    shown = _shown(form, cron)
    form_errors = _form_checks(site, cron, form, values, shown)
    clean, errors = check_cron_fields(values, base=cron)
    errors.update(form_errors)
    if errors:
        return _cron_form(request, site, cron, shown, errors, 422)
    if form.get("action") == "preview":
        scratch = Cron(**clean) if cron is None else set_fields(Cron.load(cron.to_dict()), clean)
        shown_preview = preview(in_site(scratch, site), site.kit.clock.now())
        return _cron_form(request, site, cron, shown, {}, shown_preview=shown_preview)
    if cron is None:
        cron, done = site.crontab.add_cron(Cron(**clean)), "added"
    else:
        set_fields(cron, clean)
        done = "saved"
    save_crontab(site)
    flash(request, f"cron {cron.uid} ({cron.name}) {done}")
    return redirect(f"/sites/{segment(site.name)}/crons/{segment(cron.uid)}")


# -- a cron and its logs ----------------------------------------------------------


@page
async def cron_page(request: Request, kit: Cronkit) -> Response:
    site = get_site(kit, request.path_params["site"])
    cron = get_cron(site, request.path_params["uid"])
    jobs = site.jobs.list(cron=cron, limit=10)
    return render(request, "cron.html", site=site, cron=cron, next=next_run(cron), jobs=jobs,
                  charts=cron_charts(kit, site, cron))


@page
async def cron_action(request: Request, kit: Cronkit) -> Response:
    site = get_site(kit, request.path_params["site"])
    cron = get_cron(site, request.path_params["uid"])
    await checked_form(request)
    action = request.path_params["action"]
    back = f"/sites/{segment(site.name)}/crons/{segment(cron.uid)}"
    if action == "delete":
        del site.crontab.crons[cron.uid]
        save_crontab(site)
        flash(request, f"cron {cron.uid} ({cron.name}) deleted")
        return redirect(f"/sites/{segment(site.name)}")
    if action == "run":
        site.cron_manager(cron).register(force=True)
        flash(request, f"cron {cron.uid} ({cron.name}) queued to run now")
        return redirect(back)
    if action not in ("enable", "disable"):
        raise WebError(404, f"no cron action {action!r}")
    cron.activated = action == "enable"
    save_crontab(site)
    flash(request, f"cron {cron.uid} ({cron.name}) {action}d")
    return redirect(back)


@page
async def delete_log(request: Request, kit: Cronkit) -> Response:
    site = get_site(kit, request.path_params["site"])
    cron = get_cron(site, request.path_params["uid"])
    await checked_form(request)
    delete_log_at(site, cron, request.path_params["index"])
    flash(request, "log deleted")
    return redirect(f"/sites/{segment(site.name)}/crons/{segment(cron.uid)}")
