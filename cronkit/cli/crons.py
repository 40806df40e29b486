"""``cronkit crons ...`` and ``cronkit crontab enable|disable``: a site's crons."""

from __future__ import annotations

import argparse
import json
import textwrap
from typing import TYPE_CHECKING, Any

from ..exceptions import NoSuchCron
from ..jobs import Status
from ..preview import in_site, preview, preview_json, set_fields
from .common import Context, UsageError, _dt, _Follower, _int_in, _non_negative, _table

if TYPE_CHECKING:
    from ..model import Cron


def _find_cron(ctx: Context, uid: str) -> Cron:
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
        rows.append([cron.uid, cron.name, _periodicity(cron) + zone,
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


def _periodicity(cron: Cron) -> str:
    """The periodicity as written, and as the engine reads it when that differs."""
    if cron.expanded == cron.periodicity:
        return cron.periodicity
    return f"{cron.periodicity} = {cron.expanded}"


#: The most firings ``crons show --next`` lists.
MAX_NEXT = 1000


def _next_count(text: str) -> int:
    return _int_in(text, 0, MAX_NEXT)


def _preview_lines(data: dict[str, Any]) -> list[str]:
    """A preview (``cronkit.preview.preview``), as lines of text."""
    lines = [f"periodicity:    {data['periodicity']}"]
    if data["expanded_differs"]:
        lines.append(f"expanded:       {data['expanded']}")
    if data["seconds_first"]:
        lines.append("seconds first:  yes")
    lines += [f"in words:       {data['description']}", f"time zone:      {data['timezone']}"]
    if data["note"]:
        lines += textwrap.wrap(data["note"], 88, initial_indent="note:           ",
                               subsequent_indent=" " * 16, break_on_hyphens=False)
    if data["next"]:
        lines.append(f"next {len(data['next'])}:")
        lines += [f"    {_dt(t)}" for t in data["next"]]
    if data["end"]:
        lines.append(f"end:            {data['end']}")
    return lines


def cmd_crons_show(ctx: Context) -> int:
    cron = _find_cron(ctx, ctx.args.uid)
    data = preview(cron, ctx.kit.clock.now(), ctx.args.next)
    if ctx.args.json:
        ctx.print(json.dumps({"cron": cron.to_dict(), "preview": preview_json(data)}, indent=2))
        return 0
    ctx.print(f"cron {cron.uid} ({cron.name})")
    last = cron.last
    lines = [f"activated:      {'yes' if cron.activated else 'no'}",
             f"environ:        {json.dumps(cron.environ)}",
             f"logs kept:      {cron.logs_limit}",
             f"user:           {cron.user if cron.user is not None else '-'}",
             f"misfire:        {cron.misfire}" + (
                 f", grace {cron.misfire_grace:g} s" if cron.misfire_grace is not None else ""),
             f"last:           {f'{last.status.value} {_dt(last.date)}' if last else '-'}",
             *_preview_lines(data)]
    for line in lines:
        ctx.print("    " + line)
    return 0


def _dry_run(ctx: Context, cron: Cron, done: str) -> int:
    """Print what ``cron`` would be (in the site, never saved): ``--dry-run``."""
    ctx.print(f"cron {cron.uid} ({cron.name}) would be {done}; nothing saved (--dry-run)")
    for line in _preview_lines(preview(cron, ctx.kit.clock.now())):
        ctx.print("    " + line)
    return 0


_CRON_OPTIONS = ("environ", "timezone", "logs_limit", "user", "misfire", "misfire_grace",
                 "activated", "seconds_first")


def _cron_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes = {k: getattr(args, k) for k in _CRON_OPTIONS if getattr(args, k) is not None}
    if changes.get("user") == "":
        changes["user"] = None
    return changes


def _warn_unknown_runner(ctx: Context, cron: Cron) -> None:
    from ..runner import runner_factory
    if cron.name is None or runner_factory(ctx.site, cron.name) is None:
        ctx.note(f"cronkit: warning: no runner named {cron.name!r} for site {ctx.site_name!r} "
                 "in this process (its runs log NOTRUN unless the worker imports it: "
                 "--import MODULE)")


def cmd_crons_add(ctx: Context) -> int:
    from ..model import Cron
    args = ctx.args
    crontab = ctx.site.crontab
    if args.uid is not None and args.uid in crontab.crons:
        raise UsageError(f"a cron with uid {args.uid!r} already exists in site "
                         f"{ctx.site_name!r}: use 'cronkit crons edit'")
    cron = Cron(name=args.name, periodicity=args.periodicity, uid=args.uid, **_cron_changes(args))
    if args.dry_run:
        _warn_unknown_runner(ctx, cron)
        return _dry_run(ctx, in_site(cron, ctx.site), "added")
    crontab.add_cron(cron)
    crontab.save()
    _warn_unknown_runner(ctx, cron)
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
    if args.dry_run:
        from ..model import Cron
        copy = in_site(set_fields(Cron.load(cron.definition()), changes), ctx.site)
        return _dry_run(ctx, copy, f"edited ({', '.join(sorted(changes))})")
    set_fields(cron, changes)
    ctx.site.crontab.save()
    if "name" in changes:
        _warn_unknown_runner(ctx, cron)
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


def _cron_options(parser: argparse.ArgumentParser, edit: bool) -> None:
    """The options of ``crons add`` and ``crons edit``: their dests are _CRON_OPTIONS."""
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
    order = parser.add_mutually_exclusive_group()
    order.add_argument("--seconds-first", dest="seconds_first", action="store_const", const=True,
                       help="read 6 or 7 fields with the seconds first, as Quartz does")
    if edit:
        order.add_argument("--seconds-last", dest="seconds_first", action="store_const",
                           const=False, help="read 6 or 7 fields with the seconds last "
                                             "(cronkit's default)")
    parser.add_argument("--dry-run", dest="dry_run", action="store_true",
                        help="show the periodicity in words and the next 5 times; save nothing")
    switch = parser.add_mutually_exclusive_group()
    switch.add_argument("--disabled", dest="activated", action="store_const", const=False,
                        help="deactivated")
    switch.add_argument("--enabled", dest="activated", action="store_const", const=True,
                        help="activated" + ("" if edit else " (the default)"))
