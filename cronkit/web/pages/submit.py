"""The job types of a site and the submit forms generated from their parameter format:
the fields, the defaults, the values read back (a delay, or a run-at time in the
site's time zone), each refusal shown on its field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from ...exceptions import InvalidParameters, UnknownRunner
from ...jobs import Param
from ...runner import available_jobs, job_types
from ..common import MAX_DELAY, MAX_PRIORITY, WebError, get_site, parse_json
from ..paths import segment
from .base import as_text, checked_form, flash, page, redirect, render

if TYPE_CHECKING:
    from ...kit import Cronkit


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
