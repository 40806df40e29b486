"""Execution backends, found by name through the ``cronkit.executors`` entry points."""

from __future__ import annotations

from importlib.metadata import entry_points

from ..exceptions import CronkitError

_BUILTIN = {
    "threads": "cronkit.executors.threads:ThreadExecutor",
    "processes": "cronkit.executors.processes:ProcessExecutor",
    "celery": "cronkit.executors.celery:CeleryExecutor",
}


def make_executor(name: str, concurrency: int = 6):
    """Build the executor called ``name`` running ``concurrency`` jobs at once."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise CronkitError(f"invalid concurrency {concurrency!r}: expected an integer >= 1")
    found = {ep.name: ep for ep in entry_points(group="cronkit.executors")}
    if name in found:
        factory = found[name].load()
    elif name in _BUILTIN:
        module, _, attr = _BUILTIN[name].partition(":")
        factory = getattr(__import__(module, fromlist=[attr]), attr)
    else:
        known = ", ".join(sorted(set(found) | set(_BUILTIN)))
        raise CronkitError(f"unknown executor {name!r}: known executors are {known}")
    return factory(concurrency)
