"""What the pages and the REST API share: site lookup, JSON views of crons, logs and
jobs, strict JSON reading, and cron field validation that names every field at fault."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from ..exceptions import CronkitError, InvalidCron, ReadOnlyStore
from ..interfaces import ICrontabRegistryManager
from ..jobs import FINISHED, Job, Status
from ..model import Cron, Log
from ..model.validation import json_bool, read_json, text_problem
from ..preview import describe as describe  # the pages' words: never raises
from ..preview import set_fields
from ..runner import available_jobs, job_types
from ..stores.base import WAITING

if TYPE_CHECKING:
    from ..kit import Cronkit
    from ..site import Site

#: A page or an API handler: ``fn(request, kit)``, run by :func:`off_the_loop`.
Handler = Callable[[Request, "Cronkit"], Coroutine[Any, Any, Response]]
#: What Starlette routes to: ``fn(request)``.
Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]

# Fields a person or a client may set on a cron (uid is chosen at creation only).
CRON_EDITABLE = ("name", "periodicity", "seconds_first", "timezone", "activated", "environ",
                 "logs_limit", "user", "misfire", "misfire_grace")
#: Fields that are strict booleans (JSON true or false; the pages give one too).
_BOOLEAN = ("activated", "seconds_first")
#: Fields checked together: each is read with the other.
_SCHEDULE = ("periodicity", "seconds_first")
MAX_DB_INT = 2 ** 63 - 1
MAX_PRIORITY = 2 ** 31 - 1
MAX_DELAY = 10 * 365 * 86400


class WebError(CronkitError):
    """An error shown to a client: HTTP status, message and the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


# -- handlers ----------------------------------------------------------------


async def off_the_loop(fn: Handler, request: Request, kit: Cronkit) -> Response:
    """Run the handler ``fn(request, kit)`` on a worker thread, in an event loop of its
    own: its store calls block (a busy SQLite file, a slow PostgreSQL), and must never
    stop the server answering the other requests meanwhile. The body is read first, in
    the server's loop; the handler gets it cached (``request.body()``, ``form()``).

    A write refused by a read-only store is a 409 with the store's message, for a page
    and for the API alike: the request is sound, the store's state refuses it (it is
    no failure to retry, as the 503 of any other StoreError says)."""
    await request.body()
    try:
        return await to_thread.run_sync(asyncio.run, fn(request, kit))
    except ReadOnlyStore as exc:
        raise WebError(409, str(exc)) from None


# -- sites --------------------------------------------------------------------


def site_names(kit: Cronkit) -> list[str]:
    """Sites that exist: in the store, or already made in this kit, or paused."""
    return sorted(set(kit.site_names()) | set(kit.store.paused_sites()))


def all_pauses(kit: Cronkit) -> dict[str, list[str | None]]:
    """The pauses of every site that has one (one store read per paused site)."""
    return {name: kit.store.pauses(name) for name in kit.store.paused_sites()}


def site_exists(kit: Cronkit, name: str) -> bool:
    """Whether ``name`` is a site: one the store or this kit knows (a saved crontab), or
    one that has submitted jobs (a site need never save a crontab to queue jobs)."""
    return (name in kit.site_names() or bool(kit.store.list_jobs(site=name, limit=1))
            or name in kit.store.paused_sites())


def get_site(kit: Cronkit, name: str) -> Site:
    """The site ``name``, or WebError 404: a URL never creates a site."""
    if not site_exists(kit, name):
        raise WebError(404, f"no site named {name!r}", "site")
    return kit.site(name)


#: The longest job type a pause holds (the store's column).
MAX_TYPE = 200


def pause_type(value: Any) -> str | None:
    """The job type a pause or resume names (None: the whole site); WebError 422
    naming ``type`` when it is no type's name."""
    if value is None:
        return None
    if not isinstance(value, str) or value == "":
        raise WebError(422, "type must be a job type's name (omit it for the whole site)",
                       "type")
    problem = text_problem(value) or (f"longer than {MAX_TYPE} characters"
                                      if len(value) > MAX_TYPE else None)
    if problem is not None:
        raise WebError(422, f"invalid type: {problem}", "type")
    return value


def pauses_json(site: Site) -> list[str | None]:
    """What of the site is paused: null for the whole queue (first), then the types."""
    return site.pauses()


def paused_words(pauses: list[str | None]) -> str:
    """``the whole queue, type export``: what is paused, for the pages' badges."""
    return ", ".join("the whole queue" if p is None else f"type {p}" for p in pauses)


#: The longest search text (``q``) the jobs listings take.
MAX_SEARCH = 200


def search_text(value: str | None) -> str | None:
    """The jobs listings' search text ``q`` (None when empty or blank); WebError 400
    naming ``q`` for text no store can search for (a NUL, a lone surrogate) or over
    MAX_SEARCH characters."""
    text = (value or "").strip()
    if not text:
        return None
    problem = text_problem(text) or (f"longer than {MAX_SEARCH} characters"
                                     if len(text) > MAX_SEARCH else None)
    if problem is not None:
        raise WebError(400, f"invalid search text q: {problem}", "q")
    return text


def get_cron(site: Site, uid: str) -> Cron:
    cron = site.crontab.crons.get(uid)
    if cron is None:
        raise WebError(404, f"no cron with uid {uid!r} in site {site.name!r}", "uid")
    return cron


def get_job(site: Site, job_id: int) -> Job:
    if not 0 < job_id <= MAX_DB_INT:
        raise WebError(404, f"no job with id {job_id!r} in site {site.name!r}", "id")
    try:
        return site.jobs.get(job_id)
    except LookupError:
        raise WebError(404, f"no job with id {job_id!r} in site {site.name!r}", "id") from None


def discard_changes(site: Site) -> None:
    """Make the live crontab show the store again after a save that failed."""
    site.registry.getAdapter(site, ICrontabRegistryManager).refresh(site.crontab)


def save_crontab(site: Site) -> None:
    """Save the live crontab; on failure drop the unsaved edits and say why: 422 naming
    the field for a value refused (a cron's environ its runner's format refuses), 409
    for a crontab that refuses the save (read-only)."""
    try:
        site.crontab.save()
    except InvalidCron as exc:
        discard_changes(site)
        raise WebError(422, str(exc), exc.field) from None
    except CronkitError as exc:
        discard_changes(site)
        raise WebError(409, str(exc)) from None


# -- crons --------------------------------------------------------------------


def next_run(cron: Cron) -> datetime | None:
    try:
        return cron.next
    except (CronkitError, ValueError):
        return None


def check_cron_fields(values: dict[str, Any],
                      base: Cron | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate ``values`` field by field on a scratch cron (never the live one).

    Return (clean values, {field: message}). A new cron (no ``base``) needs a name and
    a periodicity. ``periodicity`` and ``seconds_first`` are checked together."""
    scratch = Cron.load(base.definition()) if base is not None else Cron("x", "* * * * *")
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if base is None:
        for field in ("name", "periodicity"):
            if values.get(field) in (None, ""):
                errors[field] = f"{field} is required"
    schedule: dict[str, Any] = {}
    for field, value in values.items():
        if field in errors:
            continue
        if field not in CRON_EDITABLE and not (field == "uid" and base is None):
            errors[field] = f"unknown cron field {field!r}"
            continue
        try:
            if field in _BOOLEAN:   # a JSON boolean, not "false"
                value = json_bool(field, value)
            if field in _SCHEDULE:
                schedule[field] = value
                continue
            setattr(scratch, field, value)
        except InvalidCron as exc:
            errors[exc.field or field] = str(exc)
            continue
        clean[field] = getattr(scratch, field)
    if schedule:
        try:
            set_fields(scratch, schedule)
        except InvalidCron as exc:
            errors[exc.field or next(iter(schedule))] = str(exc)
        else:
            clean.update((field, getattr(scratch, field)) for field in schedule)
    return clean, errors


def delete_log_at(site: Site, cron: Cron, index: int) -> None:
    """Delete log number ``index`` of ``cron`` (0 is the most recent) and save."""
    if not 0 <= index < len(cron.logs):
        raise WebError(404, f"cron {cron.uid!r} has no log number {index}", "index")
    if site.crontab.read_only:
        raise WebError(409, f"the crontab of site {site.name!r} is read-only")
    del cron.logs[index]
    save_crontab(site)


def log_json(log: Log, index: int) -> dict[str, Any]:
    return {"index": index, "date": log.date.isoformat(), "status": log.status.value,
            "messages": list(log.messages)}


def cron_json(cron: Cron, logs: bool = False) -> dict[str, Any]:
    nxt = next_run(cron)
    last = cron.last
    data: dict[str, Any] = {
        "uid": cron.uid, "name": cron.name, "periodicity": cron.periodicity,
        "seconds_first": cron.seconds_first, "expanded": cron.expanded,
        "description": describe(cron.expanded), "timezone": cron.timezone,
        "effective_timezone": cron.tz.key, "activated": cron.activated,
        "environ": cron.environ, "logs_limit": cron.logs_limit, "user": cron.user,
        "misfire": cron.misfire, "misfire_grace": cron.misfire_grace,
        "next": nxt.isoformat() if nxt else None,
        "last": log_json(last, 0) if last is not None else None}
    if logs:
        data["logs"] = [log_json(entry, i) for i, entry in enumerate(cron.logs)]
    return data


def crontab_json(site: Site) -> dict[str, Any]:
    crontab = site.crontab
    return {"site": site.name, "activated": crontab.activated, "read_only": crontab.read_only,
            "paused": pauses_json(site), "crons": [cron_json(c) for c in crontab.crons.values()]}


# -- jobs ---------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def job_json(job: Job, history: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": job.id, "site": job.site_name, "type": job.type, "name": job.name,
        "status": job.status.value, "priority": job.priority, "payload": job.payload,
        "progress": job.progress or 0, "status_text": job.status_text or "",
        "message": job.message, "result": job.result, "pid": job.pid, "worker": job.worker,
        "cron_uid": job.cron_uid, "user": job.user, "attempts": job.attempts or 0,
        "run_after": _iso(job.run_after), "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at), "finished_at": _iso(job.finished_at),
        "after": list(job.after_ids or [])}
    if history:
        data["history"] = [{"date": _iso(h["date"]), "status": h["status"], "comment": h["comment"]}
                           for h in job.history]
        data["dependents"] = [j.id for j in job.site.jobs.dependents(job.id)]
    return data


def result_text(job: Job) -> str | None:
    """The job's result as pretty JSON, or None when it has none or is text (a str or a
    list of them: the message shows it already)."""
    result = job.result
    if result is None or isinstance(result, str) or (
            isinstance(result, list) and all(isinstance(v, str) for v in result)):
        return None
    return json.dumps(result, indent=2, ensure_ascii=False)


def waiting(job: Job) -> bool:
    """Whether ``job`` is a continuation still waiting for the jobs it runs after (its
    due time is then no time at all)."""
    return bool(job.after_ids) and job.status == Status.PENDING and job.run_after == WAITING


def predecessors(job: Job) -> list[tuple[int, Job | None]]:
    """(id, job or None when it is gone) of each job ``job`` runs after."""
    out: list[tuple[int, Job | None]] = []
    for job_id in job.after_ids or []:
        try:
            out.append((job_id, job.site.jobs.get(job_id)))
        except LookupError:
            out.append((job_id, None))
    return out


def live_json(job: Job) -> dict[str, Any]:
    """What a progress bar needs, polled by the pages."""
    return {"id": job.id, "site": job.site_name, "status": job.status.value,
            "progress": job.progress or 0, "status_text": job.status_text or "",
            "message": job.message or "", "finished": job.status in FINISHED}


def cancel_job(site: Site, job_id: int) -> Job:
    job = get_job(site, job_id)
    if job.status in FINISHED:
        raise WebError(409, f"job {job.id} is already {job.status.value}: nothing to cancel", "id")
    return site.jobs.cancel(job.id)


def retry_job(site: Site, job_id: int) -> Job:
    job = get_job(site, job_id)
    if job.status not in (Status.FAILED, Status.CANCELED):
        raise WebError(409, f"job {job.id} is {job.status.value}: only a failed or canceled job "
                       "can be retried", "id")
    if job.cron_uid is not None:
        raise WebError(409, f"job {job.id} is a cron firing: run its cron instead", "id")
    try:
        return site.jobs.retry(job.id)
    except LookupError as exc:  # its runner is gone
        raise WebError(409, str(exc), "type") from None


def types_json(site: Site) -> list[dict[str, Any]]:
    helps = available_jobs(site)
    out = []
    for name, factory in job_types(site).items():
        params = getattr(factory, "parameters", None) or {}
        out.append({"name": name, "help": helps.get(name, ""),
                    "parameters": {k: p.describe() for k, p in params.items()}})
    return out


# -- strict JSON --------------------------------------------------------------


def _body_error(message: str, field: str = "body") -> WebError:
    return WebError(400, message, field)


def parse_json(body: bytes) -> Any:
    """Read a request body as JSON (and only JSON); WebError 400 if it is not: not
    UTF-8, not strict JSON (NaN, Infinity, numbers out of range), nested too deep, text
    UTF-8 cannot encode (a lone surrogate), integers over 64 bits (see
    ``cronkit.model.validation.read_json``). The error's field is the member of the
    body at fault, else "body"."""
    return read_json(body, "invalid JSON body", _body_error, max_int=MAX_DB_INT,
                     key_error=_body_error)
