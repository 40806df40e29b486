"""``cronkit worker``, ``cronkit web`` and ``cronkit run`` (both): the commands that serve."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from .. import logs
from ..exceptions import CronkitError
from .common import (
    Context,
    Terminated,
    UsageError,
    _days,
    _non_negative,
    _port,
    _positive_float,
    _positive_int,
    shown_store,
)
from .profiles import load_profiles

if TYPE_CHECKING:
    from ..worker import Worker

Serve = Callable[..., object]   # cronkit.web.serve(kit, host=, port=, token=, password=, ...)

SIZE_UNITS = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
              "g": 1 << 30, "gib": 1 << 30}
# The web options passed on only when given: cronkit.web.serve owns their defaults.
WEB_EXTRAS = ("max_body", "secure_cookies", "forwarded_allow_ips")


def _logging(ctx: Context) -> None:
    """``--log-level`` and ``--log-format`` (cronkit.logs.setup): a format whose
    library is missing is a one-line error. In JSON, what the command says on stderr
    (its notes, Python's warnings) is logged too: every line is a JSON object."""
    args = ctx.args
    try:
        configured = logs.setup(args.log_level, args.log_format)
    except CronkitError as exc:
        raise UsageError(f"--log-format {args.log_format}: {exc}") from None
    if configured and args.log_format == "json":
        cli_log = logging.getLogger("cronkit.cli")
        ctx.note = lambda *parts: cli_log.info(" ".join(map(str, parts)))  # type: ignore[method-assign]
        logging.captureWarnings(True)


def _worker(ctx: Context) -> Worker:
    args = ctx.args
    for name in ("error_timeout", "backlog_days", "all_backlog_days"):
        if getattr(args, name) is not None:
            setattr(ctx.kit, name, getattr(args, name))
    options: dict[str, float] = {}
    if args.poll is not None:
        options["poll_interval"] = args.poll
    if args.max_backoff is not None:
        options["max_backoff"] = args.max_backoff
    if args.claim_ahead is not None:
        options["claim_ahead"] = args.claim_ahead
    if args.lease is not None:
        options["lease"] = args.lease
    if getattr(args, "drain_timeout", None) is not None:
        options["drain_timeout"] = args.drain_timeout
    return ctx.kit.worker(concurrency=args.concurrency, executor=args.executor, **options)


def cmd_worker(ctx: Context) -> int:
    _logging(ctx)
    load_profiles(ctx)
    worker = _worker(ctx)
    ctx.note(f"cronkit worker on {shown_store(getattr(ctx.kit.store, 'url', ctx.store), False)} "
             f"({ctx.args.executor or ctx.kit.executor}, concurrency {ctx.args.concurrency}); "
             "Ctrl-C to stop")
    servers = _ops_servers(ctx)
    try:
        worker.run_forever()
    finally:
        for server in servers:
            server.stop()
    if worker.abandoned:   # threads that ignored the drain: their jobs are queued again
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _credential(args: argparse.Namespace, name: str) -> str | None:
    """``--token`` / ``--password``, else ``$CRONKIT_TOKEN`` / ``$CRONKIT_PASSWORD`` (an
    empty variable is an unset one). A blank one (only whitespace) is a mistake: it
    would count as auth, and let the dashboard listen off loopback."""
    value = getattr(args, name)
    where = f"--{name}"
    if value is None:
        where = f"$CRONKIT_{name.upper()}"
        value = os.environ.get(f"CRONKIT_{name.upper()}") or None
    if value is not None and not value.strip():
        raise UsageError(f"{where} is blank")
    return value


def _credentials(args: argparse.Namespace) -> tuple[str | None, str | None]:
    return _credential(args, "token"), _credential(args, "password")


def _web_serve() -> tuple[Serve | None, str | None]:
    """``cronkit.web.serve``, or None and the reason when the dashboard is not installed."""
    try:
        web = importlib.import_module("cronkit.web")
    except ImportError as exc:
        return None, str(exc)
    serve = getattr(web, "serve", None)
    return (serve, None) if callable(serve) else (None, "cronkit.web has no serve()")


def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
    raise Terminated


def _serve(ctx: Context, serve: Serve) -> None:
    """Serve the dashboard until it stops. uvicorn shuts down on SIGTERM and then raises
    the signal again: it reaches ``_terminate`` here, and ends the command cleanly
    (the worker of ``cronkit run`` is stopped first) instead of killing the process."""
    args = ctx.args
    token, password = _credentials(args)
    extras = {name: getattr(args, name) for name in WEB_EXTRAS
              if getattr(args, name) not in (None, False)}
    ctx.note(f"dashboard on http://{args.host}:{args.port}/ (REST API under /api/v1)")
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        serve(ctx.kit, host=args.host, port=args.port, token=token, password=password,
              **extras)
    except SystemExit as exc:   # uvicorn exits when it cannot start (it said why above)
        if exc.code in (0, None):
            raise Terminated from None
        raise UsageError(f"the dashboard could not start on http://{args.host}:{args.port}/"
                         f" (exit status {exc.code})") from None
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def cmd_web(ctx: Context) -> int:
    _credentials(ctx.args)   # a blank one is refused before anything starts
    _logging(ctx)
    serve, why = _web_serve()
    if serve is None:
        raise UsageError(f"the dashboard is not available ({why}): "
                         "pip install 'cronkit[web]'")
    _serve(ctx, serve)
    return 0


def cmd_run(ctx: Context) -> int:
    args = ctx.args
    _logging(ctx)
    load_profiles(ctx)
    if not args.no_web:
        _credentials(args)   # a blank one is refused before the worker starts
    serve, why = (None, None) if args.no_web else _web_serve()
    worker = _worker(ctx)
    if serve is None:
        ctx.note("cronkit: running the worker only (--no-web)" if why is None else
                 f"cronkit: the dashboard is not available ({why}); running the worker only")
        worker.run_forever()
        return 0
    worker.start()
    threading.Thread(target=_stop_serving_with, args=(worker,), daemon=True,
                     name="cronkit-run-watch").start()
    try:
        _serve(ctx, serve)
    except Terminated:
        if worker.stopped_by is None:
            raise
    finally:
        ctx.note("cronkit: stopping the worker (running jobs end first)")
        worker.stop()
    if worker.stopped_by is not None:   # the store went away: the dashboard went with it
        raise worker.stopped_by
    return 0


def _stop_serving_with(worker: Worker) -> None:
    """``cronkit run``: when its worker stops by itself (its store file was deleted or
    replaced), stop the dashboard too (SIGTERM to this process, which uvicorn handles),
    so that the command ends with the worker's error instead of serving a ghost."""
    thread = worker._thread
    if thread is not None:
        thread.join()
    if worker.stopped_by is not None:
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=_positive_int, default=6, metavar="N",
                        help="jobs run at once (default 6)")
    parser.add_argument("--executor", choices=("threads", "processes", "celery"),
                        help="how jobs run (default threads)")
    parser.add_argument("--poll", type=_non_negative, metavar="SECONDS",
                        help="longest sleep between two looks at the queue (default 1)")
    parser.add_argument("--max-backoff", dest="max_backoff", type=_positive_float,
                        metavar="SECONDS", help="longest wait between two tries while the "
                        "store fails (full disk, lost server; doubles from --poll; default 30)")
    parser.add_argument("--claim-ahead", dest="claim_ahead", type=_non_negative,
                        metavar="SECONDS", help="hold the jobs due within SECONDS under a "
                        "lease and start each at its due time from memory (default 1, 0 "
                        "never)")
    parser.add_argument("--lease", type=_positive_float, metavar="SECONDS",
                        help="how long a job held ahead stays this worker's without a "
                        "renewal: a killed worker's held jobs come back after it (default 5)")
    parser.add_argument("--profile", metavar="PATH", action="append", default=[],
                        help="a ZCML profile to load first (repeatable; default: "
                             "$CRONKIT_PROFILE, paths separated by ':')")
    parser.add_argument("--drain-timeout", dest="drain_timeout", type=_non_negative,
                        metavar="SECONDS", help="on SIGTERM, how long running jobs may take "
                        "to end before they are canceled (default 30)")
    _log_options(parser)
    parser.add_argument("--error-timeout", dest="error_timeout", type=_positive_float,
                        metavar="SECONDS", help="a running job with no heartbeat for this long "
                        "is failed 'worker lost' or retried (default 60)")
    parser.add_argument("--backlog-days", dest="backlog_days", type=_days, metavar="N",
                        help="delete successful jobs finished N days ago (default 30, 0 keeps)")
    parser.add_argument("--all-backlog-days", dest="all_backlog_days", type=_days,
                        metavar="M", help="delete every finished job after M days (default 60, 0 keeps)")


def _log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"), help="default info")
    parser.add_argument("--log-format", dest="log_format", default="text",
                        choices=("text", "json"),
                        help="text lines (default), or one JSON object per line")


def _ops_servers(ctx: Context) -> list:
    """The servers of ``--metrics-port`` and ``--health-port`` (one when the ports are
    the same), started; UsageError naming the address or the extra when one cannot."""
    from ..exceptions import CronkitError
    from ..health import OpsServer

    args = ctx.args
    ports: dict[int, dict[str, bool]] = {}
    if args.metrics_port is not None:
        ports.setdefault(args.metrics_port, {})["metrics"] = True
    if args.health_port is not None:
        ports.setdefault(args.health_port, {})["health"] = True
    token = os.environ.get("CRONKIT_TOKEN") or None
    servers: list[OpsServer] = []
    try:
        for port, serves in ports.items():
            server = OpsServer(ctx.kit, args.ops_host, port, token=token,
                               metrics=serves.get("metrics", False),
                               health=serves.get("health", False)).start()
            servers.append(server)
            ctx.note(f"cronkit: {' and '.join(p for p in ('metrics', 'health') if p in serves)}"
                     f" on http://{args.ops_host}:{server.port}/")
    except CronkitError as exc:
        for server in servers:
            server.stop()
        raise UsageError(f"--metrics-port/--health-port: {exc}") from None
    return servers


def _ops_options(parser: argparse.ArgumentParser) -> None:
    """What a worker that serves no dashboard serves for operators."""
    parser.add_argument("--metrics-port", dest="metrics_port", type=_port, metavar="PORT",
                        help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics")
    parser.add_argument("--health-port", dest="health_port", type=_port, metavar="PORT",
                        help="serve /healthz and /readyz at http://127.0.0.1:PORT/")
    parser.add_argument("--ops-host", dest="ops_host", default="127.0.0.1", metavar="HOST",
                        help="the address --metrics-port and --health-port listen on "
                             "(default 127.0.0.1)")


def _size(text: str) -> int:
    """A number of bytes: ``4194304``, or with a binary suffix, ``512K``, ``4M``, ``4MiB``,
    ``1G``."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-z]*)\s*", text.lower())
    if not match or match.group(2) not in SIZE_UNITS or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a size in bytes >= 1, such as 4194304, 512K, 4M or 1G, got {text!r}")
    return int(match.group(1)) * SIZE_UNITS[match.group(2)]


def _web_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    parser.add_argument("--port", type=_port, default=8080, help="default 8080")
    parser.add_argument("--token", help="API token (default: $CRONKIT_TOKEN)")
    parser.add_argument("--password", help="login password (default: $CRONKIT_PASSWORD)")
    parser.add_argument("--max-body", dest="max_body", type=_size, metavar="SIZE",
                        help="the largest request body taken, in bytes or with a K, M or G "
                             "suffix (binary: 4M is 4 MiB); a larger one is refused with "
                             "413 (default 4M)")
    parser.add_argument("--forwarded-allow-ips", dest="forwarded_allow_ips", metavar="IPS",
                        help="the reverse proxies whose X-Forwarded-For and "
                             "X-Forwarded-Proto are believed: comma-separated addresses or "
                             "networks (10.0.0.0/8), or '*' for any peer (default: none, "
                             "the client is the peer)")
    parser.add_argument("--secure-cookies", dest="secure_cookies", action="store_true",
                        help="mark the session cookie Secure: browsers send it over HTTPS "
                             "only (use it when the dashboard is reached by HTTPS)")
