"""``cronkit jobs ...``: submit, follow and steer jobs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from typing import Any

from .. import cli  # the package: WATCH_INTERVAL and _sleep are read from it at call time
from ..exceptions import CronkitError
from ..jobs import FINISHED, Job, Status
from ..model.validation import read_json, shown, text_problem
from ..stores.base import WAITING
from .common import (
    Context,
    UsageError,
    _aware_time,
    _bar,
    _dt,
    _Follower,
    _one_line,
    _ProgressView,
    _table,
)


def _is_json(text: str) -> bool:
    """Whether ``text`` is JSON at all (NaN and Infinity are not)."""
    def refuse(name: str) -> None:
        raise ValueError(name)
    try:
        json.loads(text, parse_constant=refuse)
    except RecursionError:   # nested too deep: JSON all the same
        return True
    except ValueError:
        return False
    return True


def _payload(ctx: Context) -> dict[str, Any]:
    from ..runner import runner_factory
    args = ctx.args
    payload: dict[str, Any] = {}
    if args.payload is not None:
        payload = read_json(args.payload, "invalid --payload", UsageError)
        if not isinstance(payload, dict):
            raise UsageError(f"invalid --payload: expected a JSON object, got "
                             f"{shown(args.payload)}")
    factory = runner_factory(ctx.site, args.type)
    params = getattr(factory, "parameters", None) or {}
    for item in args.param or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid --param {shown(item)}: expected NAME=VALUE")
        if key in params:
            payload[key] = params[key].coerce(text)
        elif _is_json(text):    # JSON cronkit refuses (too deep, ...) is an error, not text
            payload[key] = read_json(text, f"invalid --param {key}", UsageError)
        else:
            payload[key] = text
    return payload


def cmd_jobs_submit(ctx: Context) -> int:
    args = ctx.args
    if args.from_file is not None:
        return _submit_from_file(ctx)
    if args.type is None:
        raise UsageError("the job type is required (or --from-file FILE)")
    options: dict[str, Any] = {}
    if args.run_after is not None:
        options["run_after"] = args.run_after
    if args.after:
        options["after"] = args.after
    job = ctx.site.submit(args.type, _payload(ctx), name=args.name, priority=args.priority,
                          delay=args.delay or 0, unique=args.unique, user=args.user,
                          timeout=args.timeout, **options)
    ctx.print(job.id)
    return 0


# -- bulk submit ------------------------------------------------------------------

#: The largest file ``jobs submit --from-file`` reads, in bytes.
MAX_SPEC_FILE_BYTES = 64 * 1024 * 1024
#: The options of ``jobs submit`` a file of specs replaces (each spec gives its own).
_ONE_JOB_OPTIONS = ("type", "param", "payload", "name", "delay", "run_after", "user",
                    "timeout", "after")


def _submit_from_file(ctx: Context) -> int:
    """Queue the jobs of a JSON Lines file (``-``: stdin), one spec per line, all or
    none (``site.submit_many``); print their ids, one per line."""
    args = ctx.args
    given = [o for o in _ONE_JOB_OPTIONS if getattr(args, o) not in (None, [])]
    if args.priority != 0:
        given.append("priority")
    if args.unique:
        given.append("unique")
    if given:
        shown_ = ", ".join("TYPE" if o == "type" else "--" + o.replace("_", "-") for o in given)
        raise UsageError(f"--from-file takes every job from the file: not with {shown_}")
    path = args.from_file
    where = "<stdin>" if path == "-" else path
    specs, lines = _read_specs(_read_spec_file(path, where), where)
    from ..components.queue_manager import batch_index
    try:
        jobs = ctx.site.submit_many(specs)
    except CronkitError as exc:
        found = batch_index(exc)
        if found is None:
            raise
        index, problem = found
        raise UsageError(f"{where}:{lines[index]}: {problem}") from None
    for job in jobs:
        ctx.print(job.id)
    return 0


def _read_spec_file(path: str, where: str) -> bytes:
    """The bytes of the file (or stdin), refused when over MAX_SPEC_FILE_BYTES."""
    limit = MAX_SPEC_FILE_BYTES
    try:
        if path == "-":
            data = getattr(sys.stdin, "buffer", sys.stdin).read(limit + 1)
            if isinstance(data, str):
                data = data.encode("utf-8", "surrogateescape")
        else:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > limit:
                    raise UsageError(f"{where}: {size} bytes, over the limit of {limit} bytes")
                data = f.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {where}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise UsageError(f"{where}: over the limit of {limit} bytes")
    return data


def _read_specs(data: bytes, where: str) -> tuple[list[dict[str, Any]], list[int]]:
    """The specs of a JSON Lines document (blank lines skipped) and the line of each;
    ``run_after`` is read as an ISO-8601 time with its offset. UsageError naming the
    file and line of the first one that is not a JSON object."""
    from ..components.queue_manager import MAX_BATCH
    specs: list[dict[str, Any]] = []
    lines: list[int] = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        if len(specs) == MAX_BATCH:
            raise UsageError(f"{where}:{number}: over {MAX_BATCH:,} jobs in one file: split it")
        spec = read_json(line, f"{where}:{number}", UsageError)
        if not isinstance(spec, dict):
            raise UsageError(f"{where}:{number}: expected a JSON object (a job's spec), got "
                             f"{shown(spec)}")
        when = spec.get("run_after")
        if when is not None:
            try:
                if not isinstance(when, str):
                    raise argparse.ArgumentTypeError(
                        f"expected an ISO-8601 date and time with an offset, got {shown(when)}")
                spec["run_after"] = _aware_time(when)
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"{where}:{number}: run_after: {exc}") from None
        specs.append(spec)
        lines.append(number)
    return specs, lines


def _job_dict(job: Job) -> dict[str, Any]:
    def iso(v: object) -> object:
        return v.isoformat() if isinstance(v, datetime) else v
    return {"id": job.id, "site": job.site_name, "type": job.type, "name": job.name,
            "status": job.status.value, "priority": job.priority, "progress": job.progress,
            "status_text": job.status_text, "message": job.message, "result": job.result,
            "payload": job.payload,
            "cron_uid": job.cron_uid, "user": job.user, "attempts": job.attempts,
            "pid": job.pid, "worker": job.worker, "created_at": iso(job.created_at),
            "run_after": iso(job.run_after), "started_at": iso(job.started_at),
            "finished_at": iso(job.finished_at), "after": list(job.after_ids or [])}


def cmd_jobs_list(ctx: Context) -> int:
    args = ctx.args
    jobs = ctx.site.jobs.list(status=args.status, type=args.type, limit=args.limit)
    if args.json:
        ctx.print(json.dumps([_job_dict(j) for j in jobs], indent=2))
        return 0
    pauses = ctx.site.pauses()
    if pauses:
        ctx.note(f"paused in site {ctx.site_name!r}: {_paused_words(pauses)}")
    if not jobs:
        ctx.note(f"no jobs in site {ctx.site_name!r}")
        return 0
    rows = [[j.id, j.type, _one_line(j.name, 30), j.status.value, f"{j.progress or 0}%",
             _dt(j.created_at), _dt(j.finished_at if j.finished else j.run_after),
             _one_line(j.message or j.status_text, 40)] for j in jobs]
    _table(rows, ["ID", "TYPE", "NAME", "STATUS", "PROGRESS", "CREATED", "DUE/FINISHED", "TEXT"],
           ctx.out)
    return 0


def cmd_jobs_status(ctx: Context) -> int:
    job = ctx.site.jobs.get(ctx.args.id)
    if ctx.args.json:
        ctx.print(json.dumps(_job_dict(job), indent=2))
        return 0
    fields = [("id", job.id), ("site", job.site_name), ("type", job.type), ("name", job.name),
              ("status", job.status.value), ("progress", _bar(job.progress)),
              ("priority", job.priority), ("payload", json.dumps(job.payload)),
              ("cron", job.cron_uid), ("user", job.user), ("attempts", job.attempts),
              ("created", _dt(job.created_at)),
              ("run after", "when the jobs it runs after succeed" if waiting(job)
               else _dt(job.run_after)),
              ("after", ", ".join(_job_ref(ctx, i) for i in job.after_ids or []) or None),
              ("then", ", ".join(_job_ref(ctx, j.id) for j in ctx.site.jobs.dependents(job.id))
               or None),
              ("started", _dt(job.started_at)), ("finished", _dt(job.finished_at)),
              ("worker", job.worker), ("pid", job.pid)]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        ctx.print(f"{key.ljust(width)}  {'-' if value is None else value}")
    result = None if _is_text(job.result) else json.dumps(job.result, indent=2,
                                                            ensure_ascii=False)
    for title, text in (("status text", job.status_text), ("message", job.message),
                        ("result", result)):
        if text:
            ctx.print(f"{title}:")
            for line in text.rstrip("\n").splitlines():
                ctx.print(f"    {line}")
    return 0


def _is_text(result: Any) -> bool:
    """Whether a result is none, or text the message shows already (a str, or a list of
    them)."""
    return result is None or isinstance(result, str) or (
        isinstance(result, list) and all(isinstance(v, str) for v in result))


def waiting(job: Job) -> bool:
    """Whether ``job`` is a continuation still waiting for the jobs it runs after."""
    return bool(job.after_ids) and job.status == Status.PENDING and job.run_after == WAITING


def _job_ref(ctx: Context, job_id: int) -> str:
    """``job 3 (success)``: a job and its status, ``(gone)`` once it was deleted."""
    try:
        return f"job {job_id} ({ctx.site.jobs.get(job_id).status.value})"
    except CronkitError:
        return f"job {job_id} (gone)"


# -- paused queues ------------------------------------------------------------------


def _paused_words(pauses: list[str | None]) -> str:
    return ", ".join("the whole queue" if p is None else f"type {p}" for p in pauses)


def _what(ctx: Context) -> str:
    type_ = ctx.args.type
    return (f"site {ctx.site_name!r}" if type_ is None
            else f"jobs of type {type_!r} in site {ctx.site_name!r}")


def _pause_type(ctx: Context) -> str | None:
    type_ = ctx.args.type
    if type_ is not None:
        problem = text_problem(type_) or ("empty" if type_ == "" else None) or (
            "longer than 200 characters" if len(type_) > 200 else None)
        if problem is not None:
            raise UsageError(f"invalid --type {shown(type_)}: {problem}")
    return type_


def cmd_jobs_pause(ctx: Context) -> int:
    """Stop workers claiming the site's jobs (or its jobs of ``--type``)."""
    ctx.site.pause(_pause_type(ctx))
    ctx.print(f"{_what(ctx)} paused: running jobs run on, pending ones wait")
    return 0


def cmd_jobs_resume(ctx: Context) -> int:
    """End that pause; exit 1 when it was not paused."""
    if ctx.site.resume(_pause_type(ctx)):
        ctx.print(f"{_what(ctx)} resumed")
        return 0
    ctx.print(f"{_what(ctx)} was not paused")
    return 1


def cmd_jobs_paused(ctx: Context) -> int:
    """What of the site is paused, one line each."""
    pauses = ctx.site.pauses()
    if not pauses:
        ctx.print(f"nothing is paused in site {ctx.site_name!r}")
        return 0
    for pause in pauses:
        ctx.print(f"site {ctx.site_name!r}: the whole queue" if pause is None
                  else f"site {ctx.site_name!r}: type {pause}")
    return 0


def _outcome(ctx: Context, job: Job) -> int:
    line = f"job {job.id} ({job.type}): {job.status.value}"
    if job.message:
        line += f": {job.message.strip().splitlines()[0]}"
    ctx.print(line)
    return 0 if job.status == Status.SUCCESS else 1


def cmd_jobs_watch(ctx: Context) -> int:
    jobs = ctx.site.jobs
    view = _ProgressView(ctx.err)
    job = jobs.get(ctx.args.id)
    try:
        while True:
            view.show(job)
            if job.status in FINISHED:
                break
            cli._sleep(cli.WATCH_INTERVAL)
            job = jobs.get(job.id)
    finally:
        view.end()
    return _outcome(ctx, job)


def cmd_jobs_cancel(ctx: Context) -> int:
    site = ctx.site
    before = site.jobs.get(ctx.args.id)
    if before.finished:
        ctx.print(f"job {before.id} already finished: {before.status.value}")
        return 1
    job = site.jobs.cancel(before.id, force=ctx.args.force)
    if job.status == Status.CANCELED:
        ctx.print(f"job {job.id} canceled")
    else:
        ctx.print(f"job {job.id} is {job.status.value}: cancel requested, it stops at its next "
                  "check" + ("" if ctx.args.force else " (--force kills a job run by the "
                             "processes executor)"))
    return 0


def cmd_jobs_history(ctx: Context) -> int:
    job = ctx.site.jobs.get(ctx.args.id)
    records = job.history
    if not records:
        ctx.note(f"job {job.id} has no history")
        return 0
    _table([[_dt(r["date"]), r["status"], r["comment"]] for r in records],
           ["DATE", "STATUS", "COMMENT"], ctx.out)
    return 0


def cmd_jobs_run(ctx: Context) -> int:
    """A manual run, as ``site.jobs.run`` does it (a new attempt, whatever the job's
    state), its progress drawn on stderr while it runs."""
    site = ctx.site
    job = site.jobs.get(ctx.args.id)
    if ctx.args.debug:
        return _debug_run(ctx, job)
    ctx.note(f"running job {job.id} ({job.type}) in the foreground")
    with _Follower(site, job.id, ctx.err):
        site.jobs.run(job.id)
    return _outcome(ctx, site.jobs.get(job.id))


def _debug_run(ctx: Context, job: Job) -> int:
    """Run the job's runner without touching the store; its output, progress and notes
    are printed, and so is the error of a failed run, with its traceback."""
    from ..runner import call_runner, messages_of
    site = ctx.site
    ctx.note(f"debug run of job {job.id} ({job.type}): the store is not changed")
    sys.stdout.flush()
    out = call_runner(site, Job(site, ctx.kit.store.get_job(job.id), debug=True))
    ctx.print(f"job {job.id} ({job.type}): {out.status.value} (debug run)")
    if out.error:
        ctx.note(out.trace.rstrip("\n") if out.trace else out.error)
    for message in messages_of(out.result):
        ctx.print(f"    {message}")
    return 0 if out.status == Status.SUCCESS else 1
