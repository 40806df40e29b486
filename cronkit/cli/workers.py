"""``cronkit workers``: the workers registered in the store (see ``cronkit.workers``)."""

from __future__ import annotations

import argparse
import json

from ..workers import list_workers
from .common import Context, _positive_float, _table


def _short(iso: str | None) -> str | None:
    """An ISO 8601 time to the second, for the table."""
    return None if iso is None else iso[:19].replace("T", " ")


def cmd_workers(ctx: Context) -> int:
    kit, args = ctx.kit, ctx.args
    timeout = args.error_timeout if args.error_timeout is not None else kit.error_timeout
    found = list_workers(kit.store, kit.clock.now(), timeout, include_stopped=args.all)
    if args.json:
        ctx.print(json.dumps(found, indent=2))
        return 0
    if not found:
        ctx.note("no workers" + ("" if args.all else " running (--all shows the stopped ones)"))
        return 0
    rows = [[w["id"], w["host"], w["pid"], w["executor"], w["concurrency"], w["status"],
             _short(w["started_at"]), _short(w["heartbeat"]),
             ",".join(map(str, w["jobs"])) or None] for w in found]
    _table(rows, ["ID", "HOST", "PID", "EXECUTOR", "CONCURRENCY", "STATE", "STARTED",
                  "HEARTBEAT", "JOBS"], ctx.out)
    return 0


def workers_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all", action="store_true", help="the stopped workers too")
    parser.add_argument("--json", action="store_true", help="a JSON list, as /api/v1/workers")
    parser.add_argument("--error-timeout", dest="error_timeout", type=_positive_float,
                        metavar="SECONDS", help="a worker not stopped with no heartbeat for "
                        "this long is shown lost (default 60, the workers' own default)")
