"""The dashboard, a site's crontab and its crons: add, edit, enable, disable, delete,
run now, and their logs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ...jobs import Job, Status
from ...model import MISFIRE_POLICIES, Cron
from ...preview import in_site, preview, set_fields
from ...runner import available_jobs
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
from ..security import safe_next
from .base import as_text, checked_form, flash, page, redirect, render

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
    return render(request, "dashboard.html", sites=sites, jobs=recent)


@page
async def site_page(request: Request, kit: Cronkit) -> Response:
    site = get_site(kit, request.path_params["site"])
    crons = [{"cron": c, "next": next_run(c)} for c in site.crontab.crons.values()]
    return render(request, "site.html", site=site, crontab=site.crontab, crons=crons,
                  paused=site.pauses(), types=sorted(available_jobs(site)))


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
    return redirect(safe_next(form.get("next"), f"/sites/{site.name}"))


@page
async def switch_crontab(request: Request, kit: Cronkit) -> Response:
    site = get_site(kit, request.path_params["site"])
    form = await checked_form(request)
    site.crontab.activated = form.get("activated") == "on"
    save_crontab(site)
    flash(request, f"crontab {'activated' if site.crontab.activated else 'deactivated'}")
    return redirect(f"/sites/{site.name}")


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


def _cron_form(request: Request, site: Site, cron: Cron | None, values: dict[str, Any],
               errors: dict[str, str], status: int = 200,
               shown_preview: dict[str, Any] | None = None) -> HTMLResponse:
    return render(request, "cron_form.html", status, site=site, cron=cron, values=values,
                  errors=errors, types=sorted(available_jobs(site)), misfires=MISFIRE_POLICIES,
                  preview=shown_preview)


def _cron_values(cron: Cron | None) -> dict[str, Any]:
    if cron is None:
        return {"name": "", "periodicity": "", "seconds_first": False, "timezone": "",
                "activated": True,
                "environ": "{}", "logs_limit": "5", "user": "", "misfire": "once",
                "misfire_grace": ""}
    return {"name": cron.name, "periodicity": cron.periodicity,
            "seconds_first": cron.seconds_first, "timezone": cron.timezone or "",
            "activated": cron.activated, "environ": json.dumps(cron.environ, indent=2),
            "logs_limit": str(cron.logs_limit), "user": cron.user or "",
            "misfire": cron.misfire,
            "misfire_grace": "" if cron.misfire_grace is None else f"{cron.misfire_grace:g}"}


def _shown(form: FormData) -> dict[str, Any]:
    """What the person typed, to put back into the form."""
    shown: dict[str, Any] = {f: form.get(f, "") for f in CRON_EDITABLE}
    for field in _CHECKBOXES:
        shown[field] = form.get(field) == "on"
    return shown


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
    clean, errors = check_cron_fields(_form_values(form), base=cron)
    if errors:
        return _cron_form(request, site, cron, _shown(form), errors, 422)
    if form.get("action") == "preview":
        scratch = Cron(**clean) if cron is None else set_fields(Cron.load(cron.to_dict()), clean)
        shown = preview(in_site(scratch, site), site.kit.clock.now())
        return _cron_form(request, site, cron, _shown(form), {}, shown_preview=shown)
    if cron is None:
        cron, done = site.crontab.add_cron(Cron(**clean)), "added"
    else:
        set_fields(cron, clean)
        done = "saved"
    save_crontab(site)
    flash(request, f"cron {cron.name} {done}")
    return redirect(f"/sites/{site.name}/crons/{cron.uid}")


# -- a cron and its logs ----------------------------------------------------------


@page
async def cron_page(request: Request, kit: Cronkit) -> Response:
    site = get_site(kit, request.path_params["site"])
    cron = get_cron(site, request.path_params["uid"])
    jobs = site.jobs.list(cron=cron, limit=10)
    return render(request, "cron.html", site=site, cron=cron, next=next_run(cron), jobs=jobs)


@page
async def cron_action(request: Request, kit: Cronkit) -> Response:
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
async def delete_log(request: Request, kit: Cronkit) -> Response:
    site = get_site(kit, request.path_params["site"])
    cron = get_cron(site, request.path_params["uid"])
    await checked_form(request)
    delete_log_at(site, cron, request.path_params["index"])
    flash(request, "log deleted")
    return redirect(f"/sites/{site.name}/crons/{cron.uid}")
