"""The dashboard and REST API application, and the server that runs it.

``create_app(kit, ...)`` builds the Starlette app; ``make_server(kit, host, port, ...)`` a
uvicorn server to run in a thread (stop it with ``server.should_exit = True``);
``serve(kit, ...)`` runs one until interrupted. Off loopback both refuse to start without
a token or a password; a blank one is refused everywhere. Forwarded headers
(``X-Forwarded-For``, ``X-Forwarded-Proto``) are believed only from the proxies named in
``forwarded_allow_ips``.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from .. import logs
from ..exceptions import CronkitError
from . import api, ops, pages
from .paths import SegmentPathMiddleware
from .security import (
    MAX_BODY,
    AuthMiddleware,
    BodyLimitMiddleware,
    HardeningMiddleware,
    LoginThrottle,
    Sessions,
    json_error,
)

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


def check_credential(what: str, value: object) -> None:
    """Refuse a token or password that is not one: not a string, or blank (it would
    count as configured auth and let the server listen off loopback). A token must also
    fit in an ``Authorization`` header: printable ASCII, no space at either end."""
    if value is None:
        return
    if not isinstance(value, str):
        raise CronkitError(f"the web {what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise CronkitError(f"the web {what} must not be blank (empty or only whitespace)")
    if what == "token" and (value != value.strip() or not value.isascii()
                            or not value.isprintable()):
        raise CronkitError("the web token must be printable ASCII with no space at either "
                           "end: an Authorization header cannot carry it otherwise")


def check_max_body(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CronkitError(f"max_body must be a number of bytes >= 1, got {value!r}")
    return value


def trusted_proxies(value: str | Sequence[str] | None) -> list[str]:
    """``forwarded_allow_ips`` checked: IP addresses and networks (``10.0.0.0/8``), or
    ``*`` (any peer), as a list; a comma-separated string is split. Every entry must be
    one, else CronkitError (uvicorn would silently never match it)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    proxies = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        try:
            if text == "*":
                proxies.append("*")
            elif isinstance(text, str) and "/" in text:
                proxies.append(str(ipaddress.ip_network(text, strict=False)))
            else:
                proxies.append(str(ipaddress.ip_address(text)))
        except ValueError:
            raise CronkitError(f"forwarded_allow_ips: {item!r} is neither an IP address, a "
                               "network (10.0.0.0/8) nor '*'") from None
    if not proxies:
        raise CronkitError("forwarded_allow_ips: no proxy address given")
    return proxies


def create_app(kit: Cronkit, auth_token: str | None = None, password: str | None = None,
               secret_key: str | None = None, allowed_hosts: list[str] | None = None, *,
               max_body: int = MAX_BODY, secure_cookies: bool = False) -> Starlette:
    """The ASGI app serving the dashboard and /api/v1 for ``kit``.

    With neither ``auth_token`` nor ``password`` everything is open (loopback use only);
    a blank one is refused (CronkitError). ``secret_key`` signs the session cookie (a
    random one by default). A login lasts 7 days at most, and ends at logout or when
    the process does (its sessions are held by the process: see ``Sessions``).
    ``allowed_hosts`` limits the Host header (DNS rebinding). A request body over
    ``max_body`` bytes is refused with 413. ``secure_cookies`` marks the session cookie
    Secure (sent over HTTPS only)."""
    check_credential("token", auth_token)
    check_credential("password", password)
    check_max_body(max_body)
    sessions = Sessions(kit.clock)
    # Routed on the raw path: a site named /app/plone is one segment (%2Fapp%2Fplone).
    middleware = [Middleware(SegmentPathMiddleware), Middleware(HardeningMiddleware),
                  Middleware(BodyLimitMiddleware, max_body=max_body)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    middleware += [
        Middleware(SessionMiddleware, secret_key=secret_key or secrets.token_urlsafe(32),
                   session_cookie="cronkit_session", same_site="lax", max_age=7 * 86400,
                   https_only=bool(secure_cookies)),
        Middleware(AuthMiddleware, token=auth_token, password=password, sessions=sessions),
    ]
    routes = [
        Mount("/api/v1", routes=api.routes),
        *ops.routes,
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        *pages.routes,
    ]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={HTTPException: http_error})
    app.state.kit = kit
    ops.enable_metrics(kit)
    app.state.auth = {"token": auth_token, "password": password}
    app.state.login_throttle = LoginThrottle(kit.clock)
    app.state.sessions = sessions
    app.state.templates = pages.templates()
    return app


def make_server(kit: Cronkit, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
                password: str | None = None, secret_key: str | None = None,
                log_level: str = "warning", *, max_body: int = MAX_BODY,
                secure_cookies: bool = False,
                forwarded_allow_ips: str | Sequence[str] | None = None) -> uvicorn.Server:
    """A uvicorn.Server for the app, not started: ``server.run()`` blocks; in a thread,
    ``server.should_exit = True`` stops it. Off loopback, auth is required.

    The client of a request is its peer, unless the peer is one of
    ``forwarded_allow_ips`` (reverse proxies: addresses, networks, or ``*``): then
    its ``X-Forwarded-For`` and ``X-Forwarded-Proto`` say who the client is and whether
    it came by HTTPS. By default no peer is believed (uvicorn's own default believes
    127.0.0.1: any local process, or a proxy passing on what its clients send, could
    then name any address, and get past the login throttle)."""
    import uvicorn

    check_credential("token", token)
    check_credential("password", password)
    proxies = trusted_proxies(forwarded_allow_ips)
    if not (token or password) and not is_loopback(host):
        raise CronkitError(
            f"refusing to serve the dashboard on {host!r} without authentication: "
            "configure a token (--token) or a password (--password), or listen on "
            "127.0.0.1")
    allowed = None if (token or password) else [*LOOPBACK_HOSTS, host.strip("[]")]
    app = create_app(kit, auth_token=token, password=password, secret_key=secret_key,
                     allowed_hosts=allowed, max_body=max_body, secure_cookies=secure_cookies)
    # Once cronkit.logs.setup configured the process's logging (the commands that
    # serve, with --log-format), uvicorn's loggers go through it: no config of their own.
    extra: dict[str, Any] = {}
    if logs.configured():
        extra["log_config"] = None
        logs.through_root("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="off",
                            access_log=False, proxy_headers=bool(proxies),
                            forwarded_allow_ips=proxies, **extra)
    return uvicorn.Server(config)


def serve(kit: Cronkit, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
          password: str | None = None, secret_key: str | None = None, *,
          max_body: int = MAX_BODY, secure_cookies: bool = False,
          forwarded_allow_ips: str | Sequence[str] | None = None) -> None:
    """Serve the dashboard and /api/v1 until interrupted (blocking); the options are
    those of :func:`make_server`."""
    make_server(kit, host, port, token=token, password=password, secret_key=secret_key,
                max_body=max_body, secure_cookies=secure_cookies,
                forwarded_allow_ips=forwarded_allow_ips).run()
