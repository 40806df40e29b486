"""The workers page: every worker the store knows, as ``cronkit workers`` shows them
(``cronkit.workers``: the same states, lost ones as lost), each with the jobs it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from ...workers import worker_dict
from .base import page, render

if TYPE_CHECKING:
    from ...kit import Cronkit


@page
async def workers_page(request: Request, kit: Cronkit) -> Response:
    now = kit.clock.now()
    running: dict[str, list[dict[str, object]]] = {}
    for job in sorted(kit.store.running_jobs(), key=lambda j: j["id"]):
        if job.get("worker"):
            running.setdefault(job["worker"], []).append(job)
    workers = []
    for row in kit.store.list_workers():
        jobs = running.get(row["id"], [])
        shown = worker_dict(row, now, kit.error_timeout, [int(str(j["id"])) for j in jobs])
        workers.append({**shown, "running": jobs, "row": row})
    alive = sum(1 for w in workers if w["status"] not in ("stopped", "lost"))
    return render(request, "workers.html", workers=workers, alive=alive,
                  lost=sum(1 for w in workers if w["lost"]), now=now,
                  error_timeout=kit.error_timeout)
