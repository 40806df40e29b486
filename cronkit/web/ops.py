"""``/metrics``, ``/healthz`` and ``/readyz`` of the web app (see cronkit.metrics and
cronkit.health). The health checks are open; ``/metrics`` follows the API's auth rule
(a bearer token, or a logged-in session, off loopback)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..exceptions import CronkitError
from ..health import readiness

#: The headers of every answer here: never cached.
NO_STORE = {"Cache-Control": "no-store"}


def enable_metrics(kit: object) -> None:
    """Count the kit's jobs from the app's start when prometheus_client is installed
    (else ``/metrics`` says which extra it needs)."""
    from ..metrics import enable
    try:
        enable(kit)  # type: ignore[arg-type]
    except CronkitError:
        pass


async def metrics(request: Request) -> Response:
    from ..metrics import exposition
    try:
        body, content_type = await run_in_threadpool(exposition, request.app.state.kit)
    except CronkitError as exc:
        return PlainTextResponse(f"{exc}\n", 501, headers=NO_STORE)
    return Response(body, 200, media_type=content_type, headers=NO_STORE)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n", headers=NO_STORE)


async def readyz(request: Request) -> Response:
    reason = await run_in_threadpool(readiness(request.app.state.kit).reason)
    return PlainTextResponse(f"{reason or 'ok'}\n", 200 if reason is None else 503,
                             headers=NO_STORE)


routes = [
    Route("/metrics", metrics, methods=["GET", "HEAD"]),
    Route("/healthz", healthz, methods=["GET", "HEAD"]),
    Route("/readyz", readyz, methods=["GET", "HEAD"]),
]
