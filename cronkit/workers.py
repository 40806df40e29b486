"""The workers of a store as operators see them: ``cronkit workers`` and
``GET /api/v1/workers`` show the same JSON objects, made here.

Each worker registers its row in the store and heartbeats it (see ``cronkit.worker``).
A worker is **lost** when its row does not say "stopped" and its heartbeat is older
than the kit's ``error_timeout`` (the age at which its running jobs are reaped as
"worker lost"): it was killed, or its host or its store connection went away.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

#: The states a worker's row may hold, and the one this module adds.
STATES = ("running", "paused", "draining", "stopped")
LOST = "lost"


def worker_status(row: Mapping[str, Any], now: datetime, error_timeout: float) -> str:
    """The worker's state as shown: its row's, or "lost" when it is not stopped and its
    heartbeat is more than ``error_timeout`` seconds older than ``now``."""
    state = str(row["state"])
    if state != "stopped" and (now - row["heartbeat"]).total_seconds() > error_timeout:
        return LOST
    return state


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def worker_dict(row: Mapping[str, Any], now: datetime, error_timeout: float,
                jobs: Iterable[int] = ()) -> dict[str, Any]:
    """The JSON object of a worker: its row's columns (datetimes in ISO 8601), its
    ``status`` (``worker_status``), ``lost`` (a bool), and ``jobs``: the ids of the
    jobs it runs, ascending."""
    status = worker_status(row, now, error_timeout)
    return {
        "id": row["id"], "host": row["host"], "pid": row["pid"],
        "executor": row["executor"], "concurrency": row["concurrency"],
        "state": row["state"], "status": status, "lost": status == LOST,
        "started_at": _iso(row["started_at"]), "heartbeat": _iso(row["heartbeat"]),
        "stopped_at": _iso(row.get("stopped_at")), "version": row.get("version") or "",
        "info": dict(row.get("info") or {}), "jobs": sorted(jobs),
    }


def list_workers(store: Any, now: datetime, error_timeout: float,
                 include_stopped: bool = False) -> list[dict[str, Any]]:
    """The workers of ``store`` as ``worker_dict`` objects, newest first; without
    ``include_stopped`` only those not stopped (lost ones included). Each gets the ids
    of the RUNNING jobs whose ``worker`` is its id."""
    rows = [r for r in store.list_workers() if include_stopped or r["state"] != "stopped"]
    if not rows:
        return []
    running: dict[str, list[int]] = {}
    for job in store.running_jobs():
        if job.get("worker"):
            running.setdefault(job["worker"], []).append(job["id"])
    return [worker_dict(r, now, error_timeout, running.get(r["id"], ())) for r in rows]
