"""The ``cronkit`` command (``python -m cronkit`` is the same).

Every command takes ``--store URL``, ``--site NAME`` and ``--import MODULE`` (repeatable),
before or after the subcommand. A user mistake (a ``CronkitError``, a bad option, a
module that cannot be imported) ends with exit code 2 and one line on stderr,
``cronkit: error: <message>``; never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TextIO

from .exceptions import CronkitError, NoSuchCron, UnknownRunner
from .jobs import FINISHED, Job, Status

PROG = "cronkit"
WATCH_INTERVAL = 0.5   # seconds between two polls of a watched job
BAR_WIDTH = 30
LIST_LIMIT = 50


class UsageError(Exception):
    """A mistake on the command line: reported as one line, exit code 2."""


class Terminated(Exception):  # noqa: N818 - a signal, not an error
    """SIGTERM reached a command that serves (``web``, ``run``): stop cleanly, exit 0."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so that every
    error is one line (subparsers inherit the class)."""

    def error(self, message: str):
        raise UsageError(message)


# -- output helpers -----------------------------------------------------------


def _dt(value: datetime | None) -> str:
    if value is None:
        return "-"
    if value.tzinfo is None:  # pragma: no cover - stores return aware datetimes
        value = value.replace(tzinfo=UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S %Z")


def _table_lines(rows: list[list[Any]], headers: list[str]) -> list[str]:
    cells = [headers] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in cells]


def _table(rows: list[list[Any]], headers: list[str], out: TextIO, indent: str = "") -> None:
    for line in _table_lines(rows, headers):
        print(indent + line, file=out)


def _one_line(text: str | None, width: int = 50) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _bar(progress: int | None) -> str:
    progress = max(0, min(100, progress or 0))
    full = BAR_WIDTH * progress // 100
    return f"[{'#' * full}{'-' * (BAR_WIDTH - full)}] {progress:3d}%"


class _ProgressView:
    """Draws a job's progress bar on ``stream``: redrawn in place on a terminal, one line
    per change otherwise (logs, pipes)."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last: tuple | None = None
        self.width = 0

    def show(self, job: Job) -> None:
        state = (job.status.value, job.progress, job.status_text)
        if state == self.last:
            return
        self.last = state
        lines = (job.status_text or "").strip().splitlines()
        text = _one_line(lines[-1]) if lines else ""
        line = f"job {job.id} {_bar(job.progress)} {job.status.value}"
        line += f"  {text}" if text else ""
        if self.tty:
            pad = max(0, self.width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self.width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()


_sleep = time.sleep   # between two polls of `jobs watch` (a UI: real time)


class _Follower:
    """Shows the progress of a job run in the foreground, from a background thread
    polling the store."""

    def __init__(self, site: Any, job_id: int, stream: TextIO):
        self.site, self.job_id = site, job_id
        self.view = _ProgressView(stream)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cronkit-progress", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            try:
                self.view.show(self.site.jobs.get(self.job_id))
            except CronkitError:   # the job is gone: nothing more to draw
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.view.show(self.site.jobs.get(self.job_id))
        except CronkitError:
            pass
        self.view.end()


# -- the context every command gets -------------------------------------------


class Context:
    """The parsed options, and the kit and site built from them on first use."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO):
        self.args, self.out, self.err = args, out, err
        self.store = _merged(args, "store")
        self.site_name = _merged(args, "site") or "default"
        self._kit = None

    @property
    def kit(self):
        if self._kit is None:
            from .kit import Cronkit
            self._kit = Cronkit(store=self.store)
        return self._kit

    @property
    def site(self):
        return self.kit.site(self.site_name)

    def print(self, *parts: Any) -> None:
        print(*parts, file=self.out)

    def note(self, *parts: Any) -> None:
        print(*parts, file=self.err)

    def close(self) -> None:
        if self._kit is not None:
            self._kit.close()


_LEVELS = ("g0", "g1", "g2")   # the top parser, a command, a subcommand


def _merged(args: argparse.Namespace, name: str) -> Any:
    """A global option given at several levels: the innermost wins."""
    for level in reversed(_LEVELS):
        value = getattr(args, f"{level}_{name}", None)
        if value is not None:
            return value
    return None


def _imports(args: argparse.Namespace) -> list[str]:
    return [m for level in _LEVELS for m in (getattr(args, f"{level}_imports", None) or [])]


def import_modules(names: list[str]) -> None:
    """Import the modules that register runners, the current directory first on the
    path (as uvicorn and celery do)."""
    cwd = os.getcwd()
    if names and cwd not in sys.path:
        sys.path.insert(0, cwd)
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise UsageError(f"cannot import module {name!r} (--import): {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a broken user module: say so in one line
            raise UsageError(f"importing module {name!r} (--import) failed: "
                             f"{type(exc).__name__}: {exc}") from None


# -- crons ---------------------------------------------------------------------


def _find_cron(ctx: Context, uid: str):
    """A cron by uid, or by a unique uid prefix (as git does with commits)."""
    crontab = ctx.site.crontab
    if uid in crontab.crons:
        return crontab.crons[uid]
    found = [c for u, c in crontab.crons.items() if uid and u.startswith(uid)]
    if len(found) == 1:
        return found[0]
    if found:
        raise NoSuchCron(f"uid prefix {uid!r} matches {len(found)} crons in site "
                         f"{ctx.site_name!r}: give more of it")
    raise NoSuchCron(f"no cron with uid {uid!r} in site {ctx.site_name!r}")


def cmd_crons_list(ctx: Context) -> int:
    crontab = ctx.site.crontab
    if ctx.args.json:
        ctx.print(json.dumps(crontab.dump(), indent=2))
        return 0
    state = "ON" if crontab.activated else "OFF"
    ctx.print(f"site {ctx.site_name!r}: crontab {state}, {len(crontab.crons)} cron(s)")
    if not crontab.crons:
        return 0
    rows = []
    for cron in crontab.crons.values():
        last = cron.last
        zone = f" ({cron.timezone})" if cron.timezone else ""
        rows.append([cron.uid, cron.name, cron.periodicity + zone,
                     "ON" if cron.activated else "OFF", _dt(cron.next) if cron.next else "-",
                     f"{last.status.value} {_dt(last.date)}" if last else "-"])
    if not ctx.args.logs:
        _table(rows, ["UID", "NAME", "PERIODICITY", "ACTIVATED", "NEXT", "LAST"], ctx.out)
        return 0
    for cron, row in zip(crontab.crons.values(), rows, strict=True):
        ctx.print(f"{row[0]}  {row[1]}  {row[2]}  {row[3]}  next: {row[4]}")
        if not cron.logs:
            ctx.print("    no logs")
        for entry in cron.logs:
            ctx.print(f"    {_dt(entry.date)}  {entry.status.value}")
            for message in entry.messages:
                ctx.print(f"        {message}")
    return 0


_CRON_OPTIONS = ("environ", "timezone", "logs_limit", "user", "misfire", "misfire_grace",
                 "activated")


def _cron_changes(args: argparse.Namespace) -> dict:
    changes = {k: getattr(args, k) for k in _CRON_OPTIONS if getattr(args, k) is not None}
    if changes.get("user") == "":
        changes["user"] = None
    return changes


def _warn_unknown_runner(ctx: Context, name: str) -> None:
    from .runner import runner_factory
    if runner_factory(ctx.site, name) is None:
        ctx.note(f"cronkit: warning: no runner named {name!r} for site {ctx.site_name!r} in this "
                 "process (its runs log NOTRUN unless the worker imports it: --import MODULE)")


def cmd_crons_add(ctx: Context) -> int:
    from .model import Cron
    args = ctx.args
    crontab = ctx.site.crontab
    if args.uid is not None and args.uid in crontab.crons:
        raise UsageError(f"a cron with uid {args.uid!r} already exists in site "
                         f"{ctx.site_name!r}: use 'cronkit crons edit'")
    cron = Cron(name=args.name, periodicity=args.periodicity, uid=args.uid, **_cron_changes(args))
    crontab.add_cron(cron)
    crontab.save()
    _warn_unknown_runner(ctx, cron.name)
    ctx.print(cron.uid)
    return 0


def cmd_crons_edit(ctx: Context) -> int:
    args = ctx.args
    cron = _find_cron(ctx, args.uid)
    changes = _cron_changes(args)
    for field in ("name", "periodicity"):
        if getattr(args, field) is not None:
            changes[field] = getattr(args, field)
    if not changes:
        raise UsageError("crons edit: nothing to change (give --name, --periodicity, "
                         "--environ, --timezone, ...)")
    for field, value in changes.items():
        setattr(cron, field, value)
    ctx.site.crontab.save()
    if "name" in changes:
        _warn_unknown_runner(ctx, cron.name)
    ctx.print(f"cron {cron.uid} edited: {', '.join(sorted(changes))}")
    return 0


def cmd_crons_remove(ctx: Context) -> int:
    cron = _find_cron(ctx, ctx.args.uid)
    crontab = ctx.site.crontab
    del crontab.crons[cron.uid]
    crontab.save()
    ctx.print(f"cron {cron.uid} ({cron.name}) removed")
    return 0


def _cron_switch(ctx: Context, on: bool) -> int:
    cron = _find_cron(ctx, ctx.args.uid)
    cron.activated = on
    ctx.site.crontab.save()
    ctx.print(f"cron {cron.uid} ({cron.name}) {'enabled' if on else 'disabled'}")
    return 0


def cmd_crons_enable(ctx: Context) -> int:
    return _cron_switch(ctx, True)


def cmd_crons_disable(ctx: Context) -> int:
    return _cron_switch(ctx, False)


def cmd_crons_run(ctx: Context) -> int:
    site = ctx.site
    cron = _find_cron(ctx, ctx.args.uid)
    site.cron_manager(cron).register(force=True)
    pending = site.jobs.list(cron=cron.uid, status=Status.PENDING, limit=1)
    job_id = pending[0].id if pending else None
    if not ctx.args.now:
        ctx.print(f"cron {cron.uid} ({cron.name}) queued to run now as job {job_id}"
                  " (a worker runs it)")
        return 0
    ctx.note(f"running cron {cron.uid} ({cron.name}) now as job {job_id}")
    with _Follower(site, job_id, ctx.err):
        ctx.kit.run_pending()
    cron = site.crontab.crons.get(cron.uid, cron)
    last = cron.last
    status = last.status.value if last else site.jobs.get(job_id).status.value
    ctx.print(f"cron {cron.uid} ({cron.name}): {status}")
    for message in last.messages if last else []:
        ctx.print(f"    {message}")
    return 0 if last is not None and last.status.value in ("OK", "WARN") else 1


def cmd_crontab(ctx: Context) -> int:
    on = ctx.args.crontab_action == "enable"
    crontab = ctx.site.crontab
    crontab.activated = on
    crontab.save()
    ctx.print(f"crontab of site {ctx.site_name!r} {'enabled' if on else 'disabled'}")
    return 0


# -- worker, run, web -----------------------------------------------------------


def _logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _worker(ctx: Context):
    args = ctx.args
    for name in ("error_timeout", "backlog_days", "all_backlog_days"):
        if getattr(args, name) is not None:
            setattr(ctx.kit, name, getattr(args, name))
    options = {"poll_interval": args.poll} if args.poll is not None else {}
    return ctx.kit.worker(concurrency=args.concurrency, executor=args.executor, **options)


def cmd_worker(ctx: Context) -> int:
    _logging(ctx.args.log_level)
    worker = _worker(ctx)
    ctx.note(f"cronkit worker on {getattr(ctx.kit.store, 'url', ctx.store)} "
             f"({ctx.args.executor or ctx.kit.executor}, concurrency {ctx.args.concurrency}); "
             "Ctrl-C to stop")
    worker.run_forever()
    return 0


def _credentials(args: argparse.Namespace) -> tuple[str | None, str | None]:
    token = args.token if args.token is not None else os.environ.get("CRONKIT_TOKEN")
    password = args.password if args.password is not None else os.environ.get("CRONKIT_PASSWORD")
    return token or None, password or None


def _web_serve() -> tuple[Callable | None, str | None]:
    """``cronkit.web.serve``, or None and the reason when the dashboard is not installed."""
    try:
        web = importlib.import_module("cronkit.web")
    except ImportError as exc:
        return None, str(exc)
    serve = getattr(web, "serve", None)
    return (serve, None) if callable(serve) else (None, "cronkit.web has no serve()")


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


def _serve(ctx: Context, serve: Callable) -> None:
    """Serve the dashboard until it stops. uvicorn shuts down on SIGTERM and then raises
    the signal again: it reaches ``_terminate`` here, and ends the command cleanly
    (the worker of ``cronkit run`` is stopped first) instead of killing the process."""
    args = ctx.args
    token, password = _credentials(args)
    ctx.note(f"dashboard on http://{args.host}:{args.port}/ (REST API under /api/v1)")
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        serve(ctx.kit, host=args.host, port=args.port, token=token, password=password)
    except SystemExit as exc:   # uvicorn exits when it cannot start (it said why above)
        if exc.code in (0, None):
            raise Terminated from None
        raise UsageError(f"the dashboard could not start on http://{args.host}:{args.port}/"
                         f" (exit status {exc.code})") from None
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def cmd_web(ctx: Context) -> int:
    serve, why = _web_serve()
    if serve is None:
        raise UsageError(f"the dashboard is not available ({why}): "
                         "pip install 'cronkit[web]'")
    _serve(ctx, serve)
    return 0


def cmd_run(ctx: Context) -> int:
    args = ctx.args
    _logging(args.log_level)
    if args.profile:
        _load_zcml(ctx, args.profile)
    serve, why = (None, None) if args.no_web else _web_serve()
    worker = _worker(ctx)
    if serve is None:
        ctx.note("cronkit: running the worker only (--no-web)" if why is None else
                 f"cronkit: the dashboard is not available ({why}); running the worker only")
        worker.run_forever()
        return 0
    worker.start()
    try:
        _serve(ctx, serve)
    finally:
        ctx.note("cronkit: stopping the worker (running jobs end first)")
        worker.stop()
    return 0


# -- jobs ------------------------------------------------------------------------


def _payload(ctx: Context) -> dict:
    from .runner import runner_factory
    args = ctx.args
    payload: dict = {}
    if args.payload is not None:
        try:
            payload = json.loads(args.payload)
        except ValueError as exc:
            raise UsageError(f"invalid --payload: not JSON ({exc})") from None
        if not isinstance(payload, dict):
            raise UsageError(f"invalid --payload: expected a JSON object, got {args.payload!r}")
    factory = runner_factory(ctx.site, args.type)
    params = getattr(factory, "parameters", None) or {}
    for item in args.param or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid --param {item!r}: expected NAME=VALUE")
        if key in params:
            payload[key] = params[key].coerce(text)
        else:
            try:
                payload[key] = json.loads(text)
            except ValueError:
                payload[key] = text
    return payload


def cmd_jobs_submit(ctx: Context) -> int:
    args = ctx.args
    job = ctx.site.submit(args.type, _payload(ctx), name=args.name, priority=args.priority,
                          delay=args.delay, unique=args.unique, user=args.user,
                          timeout=args.timeout)
    ctx.print(job.id)
    return 0


def _job_dict(job: Job) -> dict:
    def iso(v):
        return v.isoformat() if isinstance(v, datetime) else v
    return {"id": job.id, "site": job.site_name, "type": job.type, "name": job.name,
            "status": job.status.value, "priority": job.priority, "progress": job.progress,
            "status_text": job.status_text, "message": job.message, "payload": job.payload,
            "cron_uid": job.cron_uid, "user": job.user, "attempts": job.attempts,
            "pid": job.pid, "worker": job.worker, "created_at": iso(job.created_at),
            "run_after": iso(job.run_after), "started_at": iso(job.started_at),
            "finished_at": iso(job.finished_at)}


def cmd_jobs_list(ctx: Context) -> int:
    args = ctx.args
    jobs = ctx.site.jobs.list(status=args.status, type=args.type, limit=args.limit)
    if args.json:
        ctx.print(json.dumps([_job_dict(j) for j in jobs], indent=2))
        return 0
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
              ("created", _dt(job.created_at)), ("run after", _dt(job.run_after)),
              ("started", _dt(job.started_at)), ("finished", _dt(job.finished_at)),
              ("worker", job.worker), ("pid", job.pid)]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        ctx.print(f"{key.ljust(width)}  {'-' if value is None else value}")
    for title, text in (("status text", job.status_text), ("message", job.message)):
        if text:
            ctx.print(f"{title}:")
            for line in text.rstrip("\n").splitlines():
                ctx.print(f"    {line}")
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
            _sleep(WATCH_INTERVAL)
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
    kit, site = ctx.kit, ctx.site
    job = site.jobs.get(ctx.args.id)
    if ctx.args.debug:
        return _debug_run(ctx, job)
    now = kit.clock.now()
    kit.store.update_job(job.id, status="running", started_at=now, heartbeat=now,
                         worker=kit.worker_id, pid=os.getpid(), canceled=False)
    ctx.note(f"running job {job.id} ({job.type}) in the foreground")
    with _Follower(site, job.id, ctx.err):
        done = kit.execute(kit.store.get_job(job.id))
    return _outcome(ctx, done.refresh())


def _debug_run(ctx: Context, job: Job) -> int:
    """Run the job's runner without touching the store; its output, progress and notes
    are printed, and so is the error of a failed run, with its traceback."""
    from .runner import call_runner, messages_of
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


# -- types, profiles, cleanup ---------------------------------------------------


def cmd_types(ctx: Context) -> int:
    from .runner import available_jobs, job_types
    site = ctx.site
    helps = available_jobs(site)
    types = job_types(site)
    if ctx.args.names:
        unknown = [n for n in ctx.args.names if n not in types]
        if unknown:
            raise UnknownRunner(f"no runner named {', '.join(map(repr, unknown))} for site "
                                f"{ctx.site_name!r}")
        types = {n: types[n] for n in ctx.args.names}
    if not types:
        ctx.note(f"no job types for site {ctx.site_name!r}: import the modules that register "
                 "runners with --import MODULE")
        return 0
    for n, (name, factory) in enumerate(types.items()):
        if n:
            ctx.print()
        ctx.print(name)
        for line in (helps.get(name) or "(no help)").splitlines():
            ctx.print(f"    {line}".rstrip())
        params = getattr(factory, "parameters", None)
        if not params:
            ctx.print("    parameters: any JSON object")
            continue
        rows = []
        for key, param in params.items():
            info = param.describe()
            rows.append([key, info["type"], "yes" if info["required"] else "no",
                         ", ".join(map(str, info["choices"])) if info["choices"] else "-",
                         "-" if info["default"] is None else json.dumps(info["default"]),
                         info["help"] or "-"])
        _table(rows, ["PARAMETER", "TYPE", "REQUIRED", "CHOICES", "DEFAULT", "HELP"], ctx.out,
               indent="    ")
    return 0


def _profile_path(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"no such profile file: {path}")
    return p


def _profiles(fn: Callable, *args: Any) -> Any:
    """Call a profile function; say so in one line if cronkit.profiles is not there."""
    try:
        return fn(*args)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("cronkit.profiles"):
            raise
        raise UsageError(f"profiles are not available in this install ({exc})") from None


def _load_zcml(ctx: Context, path: str) -> None:
    _profile_path(path)
    _profiles(ctx.kit.load_profile, path)


def cmd_profile_load(ctx: Context) -> int:
    path = _profile_path(ctx.args.path)
    suffix = path.suffix.lower()
    if suffix == ".zcml":
        _load_zcml(ctx, str(path))
        ctx.print(f"loaded ZCML profile {path}")
    elif suffix == ".xml":
        crontab = _profiles(ctx.site.import_crons, str(path))
        ctx.print(f"imported {path} into site {ctx.site_name!r}: {len(crontab.crons)} cron(s)")
    else:
        raise UsageError(f"unknown profile type {path.name!r}: expected a .zcml or a "
                         "crons .xml file")
    return 0


def cmd_profile_export(ctx: Context) -> int:
    fmt = ctx.args.format
    if fmt == "xml":
        text = _profiles(ctx.site.export_crons)
    else:
        cronsxml = _profiles(importlib.import_module, "cronkit.profiles.cronsxml")
        exporter = getattr(cronsxml, f"export_{fmt}", None)
        if exporter is None:
            raise UsageError(f"export to {fmt} is not available in this install")
        text = exporter(ctx.site)
    if not isinstance(text, str):
        text = json.dumps(text, indent=2)
    if ctx.args.output:
        Path(ctx.args.output).write_text(text if text.endswith("\n") else text + "\n",
                                         encoding="utf-8")
        ctx.note(f"wrote {ctx.args.output}")
    else:
        ctx.out.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_cleanup(ctx: Context) -> int:
    args = ctx.args
    n = ctx.kit.cleanup(backlog_days=args.backlog_days, all_backlog_days=args.all_backlog_days)
    ctx.print(f"deleted {n} finished job(s)")
    return 0


# -- the parser ------------------------------------------------------------------


def _globals(parser: argparse.ArgumentParser, level: str) -> None:
    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument("--store", dest=f"{level}_store", metavar="URL",
                       help="store URL (default: $CRONKIT_STORE, else sqlite:///cronkit.db)")
    group.add_argument("--site", dest=f"{level}_site", metavar="NAME",
                       help="site name (default: default)")
    group.add_argument("--import", dest=f"{level}_imports", metavar="MODULE", action="append",
                       help="import MODULE first, to register its runners (repeatable)")


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative(text)
    if value == 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _cron_options(parser: argparse.ArgumentParser, edit: bool) -> None:
    if edit:
        parser.add_argument("--name", help="the runner's name")
        parser.add_argument("--periodicity", help="cron expression or @hourly-style alias")
    else:
        parser.add_argument("--uid", help="the cron's uid (default: a new one)")
    parser.add_argument("--environ", metavar="JSON", help="a JSON object handed to the runner")
    parser.add_argument("--timezone", metavar="ZONE", help="IANA time zone ('' = the site's)")
    parser.add_argument("--logs-limit", dest="logs_limit", type=int, metavar="N",
                        help="logs kept, 1 to 25 (default 5)")
    parser.add_argument("--user", help="who the cron runs as ('' = nobody)")
    parser.add_argument("--misfire", choices=("once", "all", "skip"),
                        help="missed firings: run once (default), all, or skip")
    parser.add_argument("--misfire-grace", dest="misfire_grace", type=_non_negative,
                        metavar="SECONDS", help="a firing later than this is skipped")
    switch = parser.add_mutually_exclusive_group()
    switch.add_argument("--disabled", dest="activated", action="store_const", const=False,
                        help="deactivated")
    switch.add_argument("--enabled", dest="activated", action="store_const", const=True,
                        help="activated" + ("" if edit else " (the default)"))


def _worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=_positive_int, default=6, metavar="N",
                        help="jobs run at once (default 6)")
    parser.add_argument("--executor", choices=("threads", "processes", "celery"),
                        help="how jobs run (default threads)")
    parser.add_argument("--poll", type=_non_negative, metavar="SECONDS",
                        help="longest sleep between two looks at the queue (default 1)")
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"), help="default info")
    parser.add_argument("--error-timeout", dest="error_timeout", type=_positive_float,
                        metavar="SECONDS", help="a running job with no heartbeat for this long "
                        "is failed 'worker lost' or retried (default 60)")
    parser.add_argument("--backlog-days", dest="backlog_days", type=_non_negative, metavar="N",
                        help="delete successful jobs finished N days ago (default 30, 0 keeps)")
    parser.add_argument("--all-backlog-days", dest="all_backlog_days", type=_non_negative,
                        metavar="M", help="delete every finished job after M days (default 60, 0 keeps)")


def _web_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="default 8080")
    parser.add_argument("--token", help="API token (default: $CRONKIT_TOKEN)")
    parser.add_argument("--password", help="login password (default: $CRONKIT_PASSWORD)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="cronkit: crontabs per site and background jobs.",
                     epilog="'cronkit COMMAND --help' describes a command.")
    _globals(parser, "g0")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"cronkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(subparsers, name: str, help: str, level: str, func: Callable | None = None):
        p = subparsers.add_parser(name, help=help, description=help)
        _globals(p, level)
        if func is not None:
            p.set_defaults(func=func)
        return p

    def group(name: str, help: str):
        p = command(commands, name, help, "g1")
        return p.add_subparsers(dest=f"{name}_action", metavar="ACTION", required=True)

    # crons
    crons = group("crons", "list and change a site's crons")
    p = command(crons, "list", "the crons with their next run and last log", "g2", cmd_crons_list)
    p.add_argument("--logs", action="store_true", help="show each cron's logs")
    p.add_argument("--json", action="store_true", help="the crontab as JSON")
    p = command(crons, "add", "add a cron; prints its uid", "g2", cmd_crons_add)
    p.add_argument("name", help="the runner's name")
    p.add_argument("periodicity", help="cron expression ('*/5 * * * *') or @hourly-style alias")
    _cron_options(p, edit=False)
    p = command(crons, "edit", "change a cron", "g2", cmd_crons_edit)
    p.add_argument("uid", help="the cron's uid (or a unique prefix of it)")
    _cron_options(p, edit=True)
    for name, func, help in (("remove", cmd_crons_remove, "delete a cron and its pending job"),
                             ("enable", cmd_crons_enable, "activate a cron"),
                             ("disable", cmd_crons_disable, "deactivate a cron"),
                             ("run", cmd_crons_run, "run a cron now (queued for a worker)")):
        p = command(crons, name, help, "g2", func)
        p.add_argument("uid", help="the cron's uid (or a unique prefix of it)")
    p.add_argument("--now", action="store_true", help="also run it here, in the foreground")

    # crontab
    crontab = group("crontab", "switch a site's whole crontab on or off")
    for name in ("enable", "disable"):
        command(crontab, name, f"{name} the site's crontab", "g2", cmd_crontab)

    # worker, run, web
    p = command(commands, "worker", "run due jobs until SIGINT / SIGTERM", "g1", cmd_worker)
    _worker_options(p)
    p = command(commands, "run", "the worker and the dashboard", "g1", cmd_run)
    p.add_argument("--profile", metavar="PATH", help="a ZCML profile to load first")
    p.add_argument("--no-web", action="store_true", help="the worker only")
    _worker_options(p)
    _web_options(p)
    p = command(commands, "web", "serve the dashboard and the REST API", "g1", cmd_web)
    _web_options(p)

    # jobs
    jobs = group("jobs", "submit, follow and steer jobs")
    p = command(jobs, "submit", "queue a job; prints its id", "g2", cmd_jobs_submit)
    p.add_argument("type", help="the job type (a runner's name)")
    p.add_argument("--param", "-p", action="append", metavar="NAME=VALUE",
                   help="a payload field (repeatable), read by the runner's parameter format, "
                        "else as JSON, else as text")
    p.add_argument("--payload", metavar="JSON", help="the payload as a JSON object")
    p.add_argument("--name", help="a name for the job (default: its type)")
    p.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    p.add_argument("--delay", type=_non_negative, default=0, metavar="SECONDS",
                   help="earliest start, in seconds from now")
    p.add_argument("--unique", action="store_true",
                   help="merge into an identical pending job")
    p.add_argument("--user", help="who the job runs as")
    p.add_argument("--timeout", type=_non_negative, metavar="SECONDS",
                   help="hard timeout (processes executor)")
    p = command(jobs, "list", "the site's jobs, newest first", "g2", cmd_jobs_list)
    p.add_argument("--status", choices=[s.value for s in Status])
    p.add_argument("--type", help="only jobs of this type")
    p.add_argument("--limit", type=_positive_int, default=LIST_LIMIT,
                   help=f"at most this many (default {LIST_LIMIT})")
    p.add_argument("--json", action="store_true", help="as JSON")
    for name, func, help in (("status", cmd_jobs_status, "a job's status, progress and message"),
                             ("watch", cmd_jobs_watch, ("a live progress bar until the job ends "
                                                        "(exit 1 if it fails or is canceled)")),
                             ("cancel", cmd_jobs_cancel, "cancel a job"),
                             ("history", cmd_jobs_history, "a job's history records"),
                             ("run", cmd_jobs_run, ("run a job now in the foreground, whatever "
                                                    "its state"))):
        p = command(jobs, name, help, "g2", func)
        p.add_argument("id", type=int, help="the job id")
        if name == "status":
            p.add_argument("--json", action="store_true", help="as JSON")
        elif name == "cancel":
            p.add_argument("--force", action="store_true",
                           help="kill a running job's process (processes executor)")
        elif name == "run":
            p.add_argument("--debug", action="store_true",
                           help="change nothing in the store; print the output instead")

    p = command(commands, "types", "the job types and their parameters", "g1", cmd_types)
    p.add_argument("names", nargs="*", metavar="NAME", help="only these types")

    profile = group("profile", "load or export profiles (ZCML, crons.xml)")
    p = command(profile, "load", "load a .zcml profile or import a crons .xml file", "g2",
                cmd_profile_load)
    p.add_argument("path")
    p = command(profile, "export", "the site's crons, to stdout", "g2", cmd_profile_export)
    p.add_argument("--format", choices=("xml", "zcml", "json"), default="xml",
                   help="default xml (crons.xml)")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead")

    p = command(commands, "cleanup", "delete finished jobs past retention", "g1", cmd_cleanup)
    p.add_argument("--backlog-days", type=_non_negative, metavar="N",
                   help="successful jobs older than N days (default 30; 0 keeps them)")
    p.add_argument("--all-backlog-days", type=_non_negative, metavar="M",
                   help="every finished job older than M days (default 60; 0 keeps them)")
    return parser


def _silence(stream: TextIO) -> None:
    """Point a closed pipe at /dev/null so that the interpreter's final flush is quiet."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    out, err = sys.stdout, sys.stderr
    ctx = None
    try:
        args = build_parser().parse_args(argv)
        import_modules(_imports(args))
        ctx = Context(args, out, err)
        return args.func(ctx)
    except (CronkitError, UsageError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{PROG}: error: {message}", file=err)
        return 2
    except KeyboardInterrupt:
        print(file=err)
        return 130
    except Terminated:
        return 0
    except BrokenPipeError:  # `cronkit jobs list | head`: the reader left, stop quietly
        _silence(out)
        return 1
    finally:
        if ctx is not None:
            ctx.close()
