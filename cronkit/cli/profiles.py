"""``cronkit types``, ``cronkit profile load|export`` and ``cronkit cleanup``."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..exceptions import UnknownRunner
from .common import Context, UsageError, _table

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


def _load_zcml(ctx: Context, path: str) -> None:
    _profile_path(path)
    _profiles(ctx.kit.load_profile, path)


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
    elif suffix == ".xml":
        crontab = _profiles(ctx.site.import_crons, str(path))
        ctx.print(f"imported {shown_path} into site {ctx.site_name!r}: "
                  f"{len(crontab.crons)} cron(s)")
    else:
        raise UsageError(f"unknown profile type {path.name!r}: expected a .zcml or a "
                         "crons .xml file")
    return 0


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
