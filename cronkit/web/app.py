"""The dashboard and REST API application, and the server that runs it.

``create_app(kit, ...)`` builds the Starlette app; ``make_server(kit, host, port, ...)`` a
uvicorn server to run in a thread (stop it with ``server.should_exit = True``);
``serve(kit, ...)`` runs one until interrupted. Off loopback both refuse to start without
a token or a password.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from ..exceptions import CronkitError
from . import api, pages
from .security import AuthMiddleware, HardeningMiddleware, LoginThrottle, json_error

if TYPE_CHECKING:
    import uvicorn

    from ..kit import Cronkit

HERE = Path(__file__).parent
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


async def http_error(request: Request, exc: Exception) -> Response:
    """JSON errors under /api, an HTML page elsewhere."""
    status = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", "") or "error"
    if request.url.path.startswith("/api/"):
        return json_error(status, detail)
    return pages.error_page(request, status, detail)


def create_app(kit: Cronkit, auth_token: str | None = None, password: str | None = None,
               secret_key: str | None = None, allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI app serving the dashboard and /api/v1 for ``kit``.

    With neither ``auth_token`` nor ``password`` everything is open (loopback use only).
    ``secret_key`` signs the session cookie (a random one by default: sessions then end
    when the process does). ``allowed_hosts`` limits the Host header (DNS rebinding)."""
    for what, value in (("token", auth_token), ("password", password)):
        if value is not None and (not isinstance(value, str) or not value):
            raise CronkitError(f"the web {what} must be a non-empty string")
    middleware = [Middleware(HardeningMiddleware)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    middleware += [
        Middleware(SessionMiddleware, secret_key=secret_key or secrets.token_urlsafe(32),
                   session_cookie="cronkit_session", same_site="lax", max_age=7 * 86400),
        Middleware(AuthMiddleware, token=auth_token, password=password),
    ]
    routes = [
        Mount("/api/v1", routes=api.routes),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        *pages.routes,
    ]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={HTTPException: http_error})
    app.state.kit = kit
    app.state.auth = {"token": auth_token, "password": password}
    app.state.login_throttle = LoginThrottle(kit.clock)
    app.state.templates = pages.templates()
    return app


def make_server(kit: Cronkit, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
                password: str | None = None, secret_key: str | None = None,
                log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn.Server for the app, not started: ``server.run()`` blocks; in a thread,
    ``server.should_exit = True`` stops it. Off loopback, auth is required."""
    import uvicorn

    if not (token or password) and not is_loopback(host):
        raise CronkitError(
            f"refusing to serve the dashboard on {host!r} without authentication: "
            "configure a token (--token) or a password (--password), or listen on "
            "127.0.0.1")
    allowed = None if (token or password) else [*LOOPBACK_HOSTS, host.strip("[]")]
    app = create_app(kit, auth_token=token, password=password, secret_key=secret_key,
                     allowed_hosts=allowed)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="off",
                            access_log=False)
    return uvicorn.Server(config)


def serve(kit: Cronkit, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
          password: str | None = None, secret_key: str | None = None) -> None:
    """Serve the dashboard and /api/v1 until interrupted (blocking)."""
    make_server(kit, host, port, token=token, password=password, secret_key=secret_key).run()
