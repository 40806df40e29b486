"""The REST API under /api/v1: crontabs, pauses, crons, logs, jobs and job types.

Bodies are JSON objects (``Content-Type: application/json``), nothing else. Errors are
``{"error": message, "field": field-or-null}`` with 400 (unreadable request), 401 (no or
wrong token), 403 (cross-site), 404 (no such site, cron, log or job), 409 (conflicts with
the current state), 415 (not JSON), 422 (a value cronkit refuses) or 503 (the store
failed: busy, unreachable); an InvalidParameters error adds ``"errors": {field: message}``.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..components.queue_manager import batch_index
from ..exceptions import (
    CronkitError,
    InvalidCron,
    InvalidCrontab,
    InvalidParameters,
    NoSuchCron,
    NoSuchJob,
    ReadOnlyCrontab,
    StoreError,
    UnknownRunner,
)
from ..jobs import Job, Status
from ..model import Cron
from ..preview import in_site, preview, preview_json, set_fields
from .common import (
    MAX_DB_INT,
    MAX_DELAY,
    MAX_PRIORITY,
    Endpoint,
    Handler,
    WebError,
    all_pauses,
    cancel_job,
    check_cron_fields,
    cron_json,
    crontab_json,
    delete_log_at,
    get_cron,
    get_job,
    get_site,
    job_json,
    log_json,
    off_the_loop,
    parse_json,
    pause_type,
    pauses_json,
    retry_job,
    save_crontab,
    search_text,
    site_names,
    types_json,
)
from .openapi import openapi_document
from .paths import SITE_PATH
from .security import json_error

if TYPE_CHECKING:
    from ..kit import Cronkit
    from ..site import Site

MAX_LIMIT = 500
#: The most jobs one POST .../jobs/batch takes (every one queued, or none).
MAX_BATCH = 10_000
SUBMIT_FIELDS = ("type", "payload", "name", "priority", "delay", "unique", "user", "run_after",
                 "timeout", "after")


def error_response(exc: Exception) -> JSONResponse:
    """The JSON error for a cronkit error."""
    if isinstance(exc, WebError):
        return json_error(exc.status, exc.message, exc.field)
    if isinstance(exc, InvalidParameters):
        field = next(iter(exc.errors), None)
        return JSONResponse({"error": str(exc), "field": field, "errors": exc.errors}, 422)
    if isinstance(exc, InvalidCron):
        return json_error(422, str(exc), exc.field)
    if isinstance(exc, UnknownRunner):
        return json_error(422, str(exc), "type")
    if isinstance(exc, (NoSuchCron, NoSuchJob)):
        return json_error(404, str(exc))
    if isinstance(exc, ReadOnlyCrontab):
        return json_error(409, str(exc))
    if isinstance(exc, InvalidCrontab):
        return json_error(422, str(exc), "activated")
    if isinstance(exc, StoreError):   # the store, not the request: try again later
        return json_error(503, str(exc))
    return json_error(400, str(exc))


def endpoint(fn: Handler) -> Endpoint:
    """Run ``fn(request, kit)``; turn cronkit errors into JSON errors."""

    @functools.wraps(fn)
    async def wrapped(request: Request) -> Response:
        try:
            return await off_the_loop(fn, request, request.app.state.kit)
        except CronkitError as exc:
            return error_response(exc)

    return wrapped


async def body_object(request: Request, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The request body: a JSON object, with only ``allowed`` keys."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise WebError(415, "the body must be JSON (Content-Type: application/json)", "body")
    data = parse_json(await request.body())
    if not isinstance(data, dict):
        raise WebError(400, "the body must be a JSON object", "body")
    if allowed is not None:
        for key in data:
            if key not in allowed:
                raise WebError(422, f"unknown field {key!r}", key)
    return data


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise WebError(400, f"{name} must be an integer, got {text!r}", name) from None
    if not low <= value <= high:
        raise WebError(400, f"{name} must be from {low} to {high}, got {value}", name)
    return value


def query_bool(request: Request, name: str) -> bool:
    """A boolean query parameter: ``true`` or ``false`` (``1`` or ``0``), false when
    absent; WebError 400 naming it otherwise."""
    text = request.query_params.get(name)
    if text is None:
        return False
    value = {"true": True, "1": True, "false": False, "0": False}.get(text.lower())
    if value is None:
        raise WebError(400, f"{name} must be true or false, got {text!r}", name)
    return value


def query_status(request: Request) -> str | None:
    text = request.query_params.get("status")
    if text in (None, ""):
        return None
    try:
        return Status(text).value
    except ValueError:
        raise WebError(400, f"unknown status {text!r}: expected one of "
                       f"{', '.join(s.value for s in Status)}", "status") from None


def _site(request: Request, kit: Cronkit) -> Site:
    return get_site(kit, request.path_params["site"])


def _cron(request: Request, kit: Cronkit) -> tuple[Site, Cron]:
    site = _site(request, kit)
    return site, get_cron(site, request.path_params["uid"])


# -- sites and crontabs ---------------------------------------------------------


@endpoint
async def openapi(request: Request, kit: Cronkit) -> Response:
    return JSONResponse(openapi_document())


@endpoint
async def list_sites(request: Request, kit: Cronkit) -> Response:
    out = []
    paused = all_pauses(kit)
    for name in site_names(kit):
        crontab = kit.site(name).crontab
        out.append({"name": name, "activated": crontab.activated, "crons": len(crontab.crons),
                    "paused": paused.get(name, [])})
    return JSONResponse(out)


@endpoint
async def get_crontab(request: Request, kit: Cronkit) -> Response:
    return JSONResponse(crontab_json(_site(request, kit)))


@endpoint
async def patch_crontab(request: Request, kit: Cronkit) -> Response:
    site = _site(request, kit)
    data = await body_object(request, ("activated",))
    if not isinstance(data.get("activated"), bool):
        raise WebError(422, "activated must be true or false", "activated")
    if site.crontab.read_only:
        raise WebError(409, f"the crontab of site {site.name!r} is read-only")
    site.crontab.activated = data["activated"]
    save_crontab(site)
    return JSONResponse(crontab_json(site))


async def _pause_body(request: Request) -> str | None:
    """The job type an optional ``{"type": ...}`` body names; None for the whole site
    (no body, or no type)."""
    if not await request.body() and not request.headers.get("content-type"):
        return None
    return pause_type((await body_object(request, ("type",))).get("type"))


def _pauses(site: Site) -> Response:
    return JSONResponse({"site": site.name, "paused": pauses_json(site)})


@endpoint
async def pause(request: Request, kit: Cronkit) -> Response:
    site = _site(request, kit)
    site.pause(await _pause_body(request))
    return _pauses(site)


@endpoint
async def resume(request: Request, kit: Cronkit) -> Response:
    site = _site(request, kit)
    site.resume(await _pause_body(request))
    return _pauses(site)


# -- crons --------------------------------------------------------------------


@endpoint
async def list_crons(request: Request, kit: Cronkit) -> Response:
    return JSONResponse(crontab_json(_site(request, kit))["crons"])


def _dry_run(kit: Cronkit, site: Site, cron: Cron) -> Response:
    """``?dry_run=true``: the cron as it would be, and its preview; nothing saved."""
    cron = in_site(cron, site)
    return JSONResponse({"cron": cron_json(cron, logs=True),
                         "preview": preview_json(preview(cron, kit.clock.now()))})


@endpoint
async def create_cron(request: Request, kit: Cronkit) -> Response:
    site = _site(request, kit)
    dry_run = query_bool(request, "dry_run")
    data = await body_object(request)
    clean, errors = check_cron_fields(data)
    if errors:
        field = next(iter(errors))
        return JSONResponse({"error": errors[field], "field": field, "errors": errors}, 422)
    if "uid" in clean and clean["uid"] in site.crontab.crons:
        raise WebError(409, f"a cron with uid {clean['uid']!r} exists already", "uid")
    if dry_run:   # writes nothing: a read-only crontab or store allows it
        return _dry_run(kit, site, Cron(**clean))
    if site.crontab.read_only:
        raise WebError(409, f"the crontab of site {site.name!r} is read-only")
    cron = site.crontab.add_cron(Cron(**clean))
    save_crontab(site)
    return JSONResponse(cron_json(cron, logs=True), 201)


@endpoint
async def read_cron(request: Request, kit: Cronkit) -> Response:
    return JSONResponse(cron_json(_cron(request, kit)[1], logs=True))


@endpoint
async def patch_cron(request: Request, kit: Cronkit) -> Response:
    site, cron = _cron(request, kit)
    dry_run = query_bool(request, "dry_run")
    data = await body_object(request)
    clean, errors = check_cron_fields(data, base=cron)
    if errors:
        field = next(iter(errors))
        return JSONResponse({"error": errors[field], "field": field, "errors": errors}, 422)
    if dry_run:
        return _dry_run(kit, site, set_fields(Cron.load(cron.to_dict()), clean))
    return JSONResponse(cron_json(_apply(site, cron, clean), logs=True))


def _apply(site: Site, cron: Cron, values: dict[str, Any]) -> Cron:
    if site.crontab.read_only:
        raise WebError(409, f"the crontab of site {site.name!r} is read-only")
    set_fields(cron, values)
    save_crontab(site)
    return cron


@endpoint
async def delete_cron(request: Request, kit: Cronkit) -> Response:
    site, cron = _cron(request, kit)
    if site.crontab.read_only:
        raise WebError(409, f"the crontab of site {site.name!r} is read-only")
    del site.crontab.crons[cron.uid]
    save_crontab(site)
    return Response(status_code=204)


@endpoint
async def enable_cron(request: Request, kit: Cronkit) -> Response:
    site, cron = _cron(request, kit)
    return JSONResponse(cron_json(_apply(site, cron, {"activated": True}), logs=True))


@endpoint
async def disable_cron(request: Request, kit: Cronkit) -> Response:
    site, cron = _cron(request, kit)
    return JSONResponse(cron_json(_apply(site, cron, {"activated": False}), logs=True))


@endpoint
async def run_cron(request: Request, kit: Cronkit) -> Response:
    site, cron = _cron(request, kit)
    queued = site.cron_manager(cron).register(force=True)
    pending = site.jobs.list(cron=cron, status=Status.PENDING.value, limit=1)
    return JSONResponse({"queued": bool(queued), "job": job_json(pending[0]) if pending else None},
                        202)


# -- logs ---------------------------------------------------------------------


@endpoint
async def list_logs(request: Request, kit: Cronkit) -> Response:
    cron = _cron(request, kit)[1]
    return JSONResponse([log_json(entry, i) for i, entry in enumerate(cron.logs)])


@endpoint
async def delete_log(request: Request, kit: Cronkit) -> Response:
    site, cron = _cron(request, kit)
    delete_log_at(site, cron, request.path_params["index"])
    return Response(status_code=204)


# -- jobs ---------------------------------------------------------------------


@endpoint
async def list_jobs(request: Request, kit: Cronkit) -> Response:
    site = _site(request, kit)
    status = query_status(request)
    type_ = request.query_params.get("type") or None
    limit = query_int(request, "limit", 50, 1, MAX_LIMIT)
    offset = query_int(request, "offset", 0, 0, MAX_DB_INT)
    search = search_text(request.query_params.get("q"))
    found = kit.store.list_jobs(site=site.name, status=status, type=type_, limit=limit,
                                offset=offset, search=search)
    jobs = [Job(site, row) for row in found]
    total = kit.store.count_jobs(site=site.name, status=status, type=type_, search=search)
    return JSONResponse({"total": total, "limit": limit, "offset": offset,
                         "jobs": [job_json(j) for j in jobs]})


def submit_options(data: dict[str, Any]) -> dict[str, Any]:
    """Check the optional submit fields the queue manager takes as they are."""
    options: dict[str, Any] = {}
    name = data.get("name")
    if name is not None:
        if not isinstance(name, str):
            raise WebError(422, "name must be a string", "name")
        options["name"] = name
    priority = data.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > MAX_PRIORITY:
        raise WebError(422, f"priority must be an integer from {-MAX_PRIORITY} to "
                       f"{MAX_PRIORITY}", "priority")
    options["priority"] = priority
    delay = data.get("delay", 0)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) \
            or not 0 <= delay <= MAX_DELAY:
        raise WebError(422, f"delay must be seconds from 0 to {MAX_DELAY}", "delay")
    options["delay"] = delay
    unique = data.get("unique", False)
    if not isinstance(unique, bool):
        raise WebError(422, "unique must be true or false", "unique")
    options["unique"] = unique
    user = data.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise WebError(422, "user must be a string", "user")
        options["user"] = user
    if data.get("run_after") is not None:
        if data.get("delay", 0) != 0:
            raise WebError(422, "give delay or run_after, not both", "run_after")
        options["run_after"] = _run_after(data["run_after"])
    timeout = data.get("timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                or not 0 < timeout <= MAX_DELAY:
            raise WebError(422, f"timeout must be seconds over 0, up to {MAX_DELAY}", "timeout")
        options["timeout"] = timeout
    after = data.get("after")
    if after is not None:
        options["after"] = _after(after)
    return options


def _run_after(value: Any) -> datetime:
    """An ISO-8601 date and time with its offset, as an aware UTC datetime."""
    if not isinstance(value, str):
        raise WebError(422, "run_after must be an ISO-8601 date and time with an offset",
                       "run_after")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise WebError(422, f"run_after is not an ISO-8601 date and time: {value!r}",
                       "run_after") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise WebError(422, f"run_after needs an offset (+00:00, Z): {value!r} is naive",
                       "run_after")
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise WebError(422, f"run_after is out of range: {value!r}", "run_after") from None


def _after(value: Any) -> list[int]:
    """A job id or a list of them: the jobs a continuation waits for."""
    ids = value if isinstance(value, list) else [value]
    if not ids or any(isinstance(i, bool) or not isinstance(i, int) or not 0 < i <= MAX_DB_INT
                      for i in ids):
        raise WebError(422, "after must be a job id or a list of job ids", "after")
    return ids


@endpoint
async def submit_job(request: Request, kit: Cronkit) -> Response:
    site = _site(request, kit)
    data = await body_object(request, SUBMIT_FIELDS)
    type_, payload = _type_and_payload(data)
    job = site.submit(type_, payload, **submit_options(data))
    return JSONResponse(job_json(job, history=True), 201)


def _type_and_payload(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A submission's job type and payload, as a body gives them; WebError (422)."""
    type_ = data.get("type")
    if not isinstance(type_, str) or not type_:
        raise WebError(422, "type (the job type's name) is required", "type")
    payload = data.get("payload", {})
    if not isinstance(payload, dict):
        raise WebError(422, "payload must be a JSON object", "payload")
    return type_, payload


def batch_spec(index: int, data: Any) -> dict[str, Any]:
    """The ``index``-th job of a batch as a spec of ``site.submit_many``, checked as the
    one-job endpoint checks its body; WebError naming "job 3: ..." and field "3.priority"."""
    try:
        if not isinstance(data, dict):
            raise WebError(422, "a job must be a JSON object", None)
        for key in data:
            if key not in SUBMIT_FIELDS:
                raise WebError(422, f"unknown field {key!r}", key)
        type_, payload = _type_and_payload(data)
        options = submit_options(data)
    except WebError as exc:
        field = str(index) if exc.field is None else f"{index}.{exc.field}"
        raise WebError(exc.status, f"job {index}: {exc.message}", field) from None
    return {"type": type_, "payload": payload, **options}   # unique=True: refused, named


@endpoint
async def submit_jobs(request: Request, kit: Cronkit) -> Response:
    site = _site(request, kit)
    data = await body_object(request, ("jobs",))
    items = data.get("jobs")
    if not isinstance(items, list) or not items:
        raise WebError(422, "jobs must be a list of jobs to submit, at least one", "jobs")
    if len(items) > MAX_BATCH:
        raise WebError(422, f"at most {MAX_BATCH:,} jobs per request, got {len(items):,}: "
                       "split them", "jobs")
    specs = [batch_spec(i, item) for i, item in enumerate(items)]
    try:
        jobs = site.submit_many(specs)
    except UnknownRunner as exc:
        found = batch_index(exc)
        return json_error(422, str(exc), "type" if found is None else f"{found[0]}.type")
    return JSONResponse({"jobs": [job_json(job) for job in jobs]}, 201)


@endpoint
async def read_job(request: Request, kit: Cronkit) -> Response:
    job = get_job(_site(request, kit), request.path_params["job_id"])
    return JSONResponse(job_json(job, history=True))


@endpoint
async def cancel(request: Request, kit: Cronkit) -> Response:
    site = _site(request, kit)
    return JSONResponse(job_json(cancel_job(site, request.path_params["job_id"]), history=True))


@endpoint
async def retry(request: Request, kit: Cronkit) -> Response:
    site = _site(request, kit)
    return JSONResponse(job_json(retry_job(site, request.path_params["job_id"]), history=True), 201)


@endpoint
async def list_workers(request: Request, kit: Cronkit) -> Response:
    """The workers of the store (``cronkit.workers``); ``all=true``: the stopped ones too."""
    from ..workers import list_workers as workers_json
    stopped = query_bool(request, "all")
    return JSONResponse(workers_json(kit.store, kit.clock.now(), kit.error_timeout,
                                     include_stopped=stopped))


@endpoint
async def list_types(request: Request, kit: Cronkit) -> Response:
    return JSONResponse(types_json(_site(request, kit)))


S = SITE_PATH
C = S + "/crons/{uid:seg}"
J = S + "/jobs/{job_id:int}"

routes = [
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/sites", list_sites, methods=["GET"]),
    Route("/workers", list_workers, methods=["GET"]),
    Route(S + "/crontab", get_crontab, methods=["GET"]),
    Route(S + "/crontab", patch_crontab, methods=["PATCH"]),
    Route(S + "/pause", pause, methods=["POST"]),
    Route(S + "/resume", resume, methods=["POST"]),
    Route(S + "/crons", list_crons, methods=["GET"]),
    Route(S + "/crons", create_cron, methods=["POST"]),
    Route(C, read_cron, methods=["GET"]),
    Route(C, patch_cron, methods=["PATCH"]),
    Route(C, delete_cron, methods=["DELETE"]),
    Route(C + "/enable", enable_cron, methods=["POST"]),
    Route(C + "/disable", disable_cron, methods=["POST"]),
    Route(C + "/run", run_cron, methods=["POST"]),
    Route(C + "/logs", list_logs, methods=["GET"]),
    Route(C + "/logs/{index:int}", delete_log, methods=["DELETE"]),
    Route(S + "/jobs", list_jobs, methods=["GET"]),
    Route(S + "/jobs", submit_job, methods=["POST"]),
    Route(S + "/jobs/batch", submit_jobs, methods=["POST"]),
    Route(J, read_job, methods=["GET"]),
    Route(J + "/cancel", cancel, methods=["POST"]),
    Route(J + "/retry", retry, methods=["POST"]),
    Route(S + "/types", list_types, methods=["GET"]),
]
