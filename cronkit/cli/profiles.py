"""``cronkit types``, ``cronkit profile load|export`` and ``cronkit cleanup``."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..exceptions import CronkitError, ProfileError, UnknownRunner
from .common import Context, UsageError, _table

if TYPE_CHECKING:
    from ..model import Crontab

T = TypeVar("T")


def cmd_types(ctx: Context) -> int:
    from ..runner import available_jobs, job_types
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


def _profiles(fn: Callable[..., T], *args: Any) -> T:
    """Call a profile function; say so in one line if cronkit.profiles is not there."""
    try:
        return fn(*args)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("cronkit.profiles"):
            raise
        raise UsageError(f"profiles are not available in this install ({exc})") from None


def _load_zcml(ctx: Context, path: str, where: str = "") -> None:
    if not Path(path).is_file():
        raise UsageError(f"no such profile file: {path}{where}")
    _profiles(ctx.kit.load_profile, path)


def load_profiles(ctx: Context) -> list[str]:
    """``worker`` and ``run``: load each ``--profile`` in order, else each path of
    ``$CRONKIT_PROFILE`` (separated by ``os.pathsep``, empty entries skipped); return
    the paths loaded."""
    paths: list[str] = list(ctx.args.profile or [])
    where = " (--profile)"
    if not paths:
        paths = [p for p in os.environ.get("CRONKIT_PROFILE", "").split(os.pathsep) if p]
        where = " ($CRONKIT_PROFILE)"
    for path in paths:
        if Path(path).suffix.lower() != ".zcml":
            raise UsageError(f"invalid profile {path!r}{where}: a worker loads ZCML "
                             "profiles (.zcml); import a crons .xml file with "
                             "'cronkit profile load'")
        _load_zcml(ctx, path, where)
    return paths


def _unprintable(text: str) -> bool:
    """Whether ``text`` holds what no output stream can print (a path's undecodable
    bytes, read as lone surrogates): it is then shown as its repr."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def cmd_profile_load(ctx: Context) -> int:
    path = _profile_path(ctx.args.path)
    suffix = path.suffix.lower()
    shown_path = repr(str(path)) if _unprintable(str(path)) else str(path)
    if suffix == ".zcml":
        _load_zcml(ctx, str(path))
        ctx.print(f"loaded ZCML profile {shown_path}")
    elif suffix in (".xml", ".json"):
        crontab = (_profiles(ctx.site.import_crons, str(path)) if suffix == ".xml"
                   else _profiles(_import_json, ctx, str(path)))
        ctx.print(f"imported {shown_path} into site {ctx.site_name!r}: "
                  f"{len(crontab.crons)} cron(s)")
    else:
        raise UsageError(f"unknown profile type {path.name!r}: expected a .zcml, a "
                         "crons .xml or a crontab .json file (profile export --format json)")
    return 0


def _import_json(ctx: Context, path: str) -> Crontab:
    """Apply a crontab dump (``profile export --format json``, ``Crontab.dump()``) to the
    site's crontab as a crons.xml import does: each of its crons is added, or edited by
    uid; other crons are kept; its ``activated`` switches the crontab. Logs are history,
    not definitions: they are not imported. Whole or not at all."""
    from ..model import Crontab
    from ..profiles import CronEntry, apply_entries, decode_profile, limits, read_profile
    max_bytes, max_crons = limits()
    text = decode_profile(read_profile(path, max_bytes), path)
    try:
        loaded = Crontab.load(text)
    except CronkitError as exc:
        raise ProfileError(str(exc), file=path) from None
    if len(loaded.crons) > max_crons:
        raise ProfileError(f"more than {max_crons} crons: over the limit for a profile "
                           "(cronkit.profiles.MAX_PROFILE_CRONS)", file=path)
    entries = [CronEntry(uid, {k: v for k, v in cron.definition().items() if k != "uid"},
                         file=path) for uid, cron in loaded.crons.items()]
    return apply_entries(ctx.site.crontab, entries, default_activated=True,
                         activated=loaded.activated, source=path)


def cmd_profile_export(ctx: Context) -> int:
    fmt = ctx.args.format
    text: object
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
        try:
            Path(ctx.args.output).write_text(text if text.endswith("\n") else text + "\n",
                                             encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {ctx.args.output!r}: {exc.strerror or exc}") from None
        ctx.note(f"wrote {ctx.args.output!r}" if _unprintable(ctx.args.output)
                 else f"wrote {ctx.args.output}")
    else:
        ctx.out.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_cleanup(ctx: Context) -> int:
    args = ctx.args
    n = ctx.kit.cleanup(backlog_days=args.backlog_days, all_backlog_days=args.all_backlog_days)
    ctx.print(f"deleted {n} finished job(s)")
    return 0
