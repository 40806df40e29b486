"""The ``cronkit`` command (``python -m cronkit`` is the same).

Every command takes ``--store URL``, ``--site NAME`` and ``--import MODULE`` (repeatable),
before or after the subcommand. A user mistake (a ``CronkitError``, a bad option, a
module that cannot be imported) ends with exit code 2 and one line on stderr,
``cronkit: error: <message>``; never a traceback.

The commands live in one module per group (``crons``, ``jobs``, ``serve``, ``profiles``,
what they share in ``common``); this package builds the parser from them and runs it.
The commands and the names tests use are importable from here, as they were when the CLI
was one module. Commands are looked up here when the parser is built, and
``WATCH_INTERVAL`` and ``_sleep`` when they are used, so setting one of them on
``cronkit.cli`` reaches every command.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from ..exceptions import CronkitError
from ..jobs import Status
from ..preview import PREVIEW_COUNT
from .common import (
    BAR_WIDTH,
    LIST_LIMIT,
    PROG,
    Context,
    Terminated,
    UsageError,
    _aware_time,
    _days,
    _Follower,
    _globals,
    _imports,
    _job_id,
    _non_negative,
    _Parser,
    _positive_float,
    _positive_int,
    _priority,
    _ProgressView,
    import_modules,
)
from .crons import (
    _cron_options,
    _next_count,
    cmd_crons_add,
    cmd_crons_disable,
    cmd_crons_edit,
    cmd_crons_enable,
    cmd_crons_list,
    cmd_crons_remove,
    cmd_crons_run,
    cmd_crons_show,
    cmd_crontab,
)
from .jobs import (
    cmd_jobs_cancel,
    cmd_jobs_history,
    cmd_jobs_list,
    cmd_jobs_pause,
    cmd_jobs_paused,
    cmd_jobs_resume,
    cmd_jobs_run,
    cmd_jobs_status,
    cmd_jobs_submit,
    cmd_jobs_watch,
)
from .profiles import cmd_cleanup, cmd_profile_export, cmd_profile_load, cmd_types
from .serve import (
    _log_options,
    _ops_options,
    _web_options,
    _worker_options,
    cmd_run,
    cmd_web,
    cmd_worker,
)
from .workers import cmd_workers, workers_options

__all__ = [
    "BAR_WIDTH", "LIST_LIMIT", "PROG", "WATCH_INTERVAL", "Context", "Terminated", "UsageError",
    "build_parser", "import_modules", "main",
    "cmd_cleanup", "cmd_crons_add", "cmd_crons_disable", "cmd_crons_edit", "cmd_crons_enable",
    "cmd_crons_list", "cmd_crons_remove", "cmd_crons_run", "cmd_crons_show", "cmd_crontab",
    "cmd_jobs_cancel",
    "cmd_jobs_history", "cmd_jobs_list", "cmd_jobs_pause", "cmd_jobs_paused", "cmd_jobs_resume",
    "cmd_jobs_run", "cmd_jobs_status", "cmd_jobs_submit",
    "cmd_jobs_watch", "cmd_profile_export", "cmd_profile_load", "cmd_run", "cmd_types",
    "cmd_web", "cmd_worker", "cmd_workers",
    # private, kept for the tests
    "_Follower", "_ProgressView", "_silence", "_sleep",
]

WATCH_INTERVAL = 0.5   # seconds between two polls of a watched job
_sleep = time.sleep    # between two polls of `jobs watch` (a UI: real time)

Command = Callable[[Context], int]
if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[_Parser]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="cronkit: crontabs per site and background jobs.",
                     epilog="'cronkit COMMAND --help' describes a command.")
    _globals(parser, "g0")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"cronkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(subparsers: SubParsers, name: str, help: str, level: str,
                func: Command | None = None) -> _Parser:
        p = subparsers.add_parser(name, help=help, description=help)
        _globals(p, level)
        if func is not None:
            p.set_defaults(func=func)
        return p

    def group(name: str, help: str) -> SubParsers:
        p = command(commands, name, help, "g1")
        return p.add_subparsers(dest=f"{name}_action", metavar="ACTION", required=True)

    # crons
    crons = group("crons", "list and change a site's crons")
    p = command(crons, "list", "the crons with their next run and last log", "g2", cmd_crons_list)
    p.add_argument("--logs", action="store_true", help="show each cron's logs")
    p.add_argument("--json", action="store_true", help="the crontab as JSON")
    p = command(crons, "show", "a cron, its periodicity in words and its next runs", "g2",
                cmd_crons_show)
    p.add_argument("uid", help="the cron's uid (or a unique prefix of it)")
    p.add_argument("--next", type=_next_count, default=PREVIEW_COUNT, metavar="N",
                   help=f"list its next N runs, in its time zone (default {PREVIEW_COUNT})")
    p.add_argument("--json", action="store_true", help="the cron and its preview as JSON")
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
    _ops_options(p)
    p = command(commands, "run", "the worker and the dashboard", "g1", cmd_run)
    p.add_argument("--no-web", action="store_true", help="the worker only")
    _worker_options(p)
    _web_options(p)
    p = command(commands, "web", "serve the dashboard and the REST API", "g1", cmd_web)
    _web_options(p)
    _log_options(p)

    # jobs
    jobs = group("jobs", "submit, follow and steer jobs")
    p = command(jobs, "submit", "queue a job (or a file of them); prints its id", "g2",
                cmd_jobs_submit)
    p.add_argument("type", nargs="?", help="the job type (a runner's name)")
    p.add_argument("--from-file", metavar="FILE",
                   help="queue every job of a JSON Lines file (- for stdin), one spec "
                        "per line, all or none; prints their ids")
    p.add_argument("--param", "-p", action="append", metavar="NAME=VALUE",
                   help="a payload field (repeatable), read by the runner's parameter format, "
                        "else as JSON, else as text")
    p.add_argument("--payload", metavar="JSON", help="the payload as a JSON object")
    p.add_argument("--name", help="a name for the job (default: its type)")
    p.add_argument("--priority", type=_priority, default=0, help="higher runs first (default 0)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--delay", type=_non_negative, metavar="SECONDS",
                      help="earliest start, in seconds from now")
    when.add_argument("--run-after", type=_aware_time, metavar="ISO",
                      help="earliest start, an ISO-8601 time with its offset "
                           "(2030-01-01T09:00+01:00)")
    p.add_argument("--unique", action="store_true",
                   help="merge into an identical pending job")
    p.add_argument("--user", help="who the job runs as")
    p.add_argument("--timeout", type=_positive_float, metavar="SECONDS",
                   help="hard timeout, seconds over 0 (processes executor)")
    p.add_argument("--after", type=_job_id, action="append", metavar="ID",
                   help="a continuation: due once job ID succeeded (repeatable: all of them)")
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
        p.add_argument("id", type=_job_id, help="the job id")
        if name == "status":
            p.add_argument("--json", action="store_true", help="as JSON")
        elif name == "cancel":
            p.add_argument("--force", action="store_true",
                           help="kill a running job's process (processes executor)")
        elif name == "run":
            p.add_argument("--debug", action="store_true",
                           help="change nothing in the store; print the output instead")

    for name, func, help in (("pause", cmd_jobs_pause, ("stop workers claiming the site's jobs "
                                                         "(running ones run on)")),
                             ("resume", cmd_jobs_resume, ("claim the site's jobs again (exit 1 "
                                                          "if not paused)"))):
        p = command(jobs, name, help, "g2", func)
        p.add_argument("--type", metavar="TYPE",
                       help="only the jobs of this type (default: the whole site)")
    command(jobs, "paused", "what of the site is paused", "g2",
            cmd_jobs_paused)

    p = command(commands, "workers", "the workers of the store (running, paused, draining, "
                "lost)", "g1", cmd_workers)
    workers_options(p)
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
    p.add_argument("--backlog-days", type=_days, metavar="N",
                   help="successful jobs older than N days (default 30; 0 keeps them)")
    p.add_argument("--all-backlog-days", type=_days, metavar="M",
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
    ctx: Context | None = None
    try:
        args = build_parser().parse_args(argv)
        import_modules(_imports(args))
        ctx = Context(args, out, err)
        return args.func(ctx)
    except (CronkitError, UsageError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        # One line, whatever it quotes: text the stream cannot encode is escaped.
        encoding = getattr(err, "encoding", None) or "utf-8"
        line = f"{PROG}: error: {message}".encode(encoding, "backslashreplace").decode(encoding)
        print(line, file=err)
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
