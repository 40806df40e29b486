"""Authentication, CSRF and response hardening for the dashboard and the API.

* No auth configured (only allowed on loopback): everything is open.
* ``auth_token``: the API takes ``Authorization: Bearer <token>``.
* ``password`` (or, without one, the token typed into the login form): the pages take a
  session cookie (HttpOnly, SameSite=Lax) set by the login form; so does the API, which the
  pages' live progress uses.
* Every form carries a per-session CSRF token; a POST without it gets 403. An API request
  authenticated by cookie (or by nothing) that changes something must not come from
  another origin (``Origin`` / ``Sec-Fetch-Site``): a cross-site page cannot drive it.
"""

from __future__ import annotations

import hmac
import math
import secrets
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from ..clock import Clock

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = ("/static/", "/login", "/api/v1/openapi.json", "/favicon.ico")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HARDENING = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
             (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY")]


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made on first use)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok(request: Request, sent: object) -> bool:
    expected: str | None = request.session.get("csrf")
    if not expected or not isinstance(sent, str):
        return False
    return hmac.compare_digest(sent, expected)


def safe_next(target: object, default: str = "/") -> str:
    """A redirect target on this server only: a path, never another host."""
    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//") \
            or "\\" in target or urlsplit(target).netloc:
        return default
    return target


def same_origin(headers: Headers) -> bool:
    """False when a browser says this request comes from another site."""
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == headers.get("host", "")


class AuthMiddleware:
    """Guards every route but the open ones; runs inside SessionMiddleware."""

    def __init__(self, app: ASGIApp, token: str | None, password: str | None):
        self.app = app
        self.token = token
        self.password = password

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.password)

    def bearer_ok(self, headers: Headers) -> bool:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if not self.token or scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.strip().encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        path = scope["path"]
        api = path.startswith("/api/")
        scope["cronkit.auth"] = "open"
        if self.enabled and not path.startswith(OPEN_PATHS):
            if api and self.bearer_ok(headers):
                scope["cronkit.auth"] = "token"
            elif scope.get("session", {}).get("user"):
                scope["cronkit.auth"] = "session"
            elif api:
                response: Response = JSONResponse({"error": "authentication required: send "
                                         "'Authorization: Bearer <token>'", "field": None},
                                        401, headers={"WWW-Authenticate": "Bearer"})
                return await response(scope, receive, send)
            else:
                target = path + ("?" + scope["query_string"].decode("latin-1")
                                 if scope.get("query_string") else "")
                response = RedirectResponse("/login?next=" + quote(target, safe=""), 303)
                return await response(scope, receive, send)
        if api and scope["cronkit.auth"] != "token" and scope["method"] not in SAFE_METHODS \
                and not same_origin(headers):
            response = JSONResponse({"error": "cross-site request refused", "field": None}, 403)
            return await response(scope, receive, send)
        await self.app(scope, receive, send)



def check_password(auth: dict[str, str | None], sent: object) -> bool:
    """The login form takes the password, or the token when no password is set."""
    expected: str | None = auth.get("password") or auth.get("token")
    if not expected or not isinstance(sent, str):
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


class LoginThrottle:
    """At most ``attempts`` wrong passwords per client address within ``window``
    seconds; after that the login form refuses that address (429) until the oldest
    failure leaves the window. A right password clears the address's count. Time is
    the kit's clock."""

    def __init__(self, clock: Clock, attempts: int = 5, window: float = 300.0):
        self.clock = clock
        self.attempts = attempts
        self.window = timedelta(seconds=window)
        self._failures: dict[str, list[datetime]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: datetime) -> list[datetime]:
        recent = [t for t in self._failures.get(client, []) if now - t < self.window]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return recent

    def wait(self, client: str) -> int:
        """Seconds before ``client`` may try again (0: now)."""
        now = self.clock.now()
        with self._lock:
            recent = self._recent(client, now)
            if len(recent) < self.attempts:
                return 0
            return max(1, math.ceil((recent[0] + self.window - now).total_seconds()))

    def failed(self, client: str) -> None:
        now = self.clock.now()
        with self._lock:
            if len(self._failures) >= 10_000:   # many addresses: forget the expired ones
                for other in list(self._failures):
                    self._recent(other, now)
            self._failures[client] = [*self._recent(client, now), now]

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


class HardeningMiddleware:
    """Security headers on every response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HARDENING
            await send(message)

        await self.app(scope, receive, send_with_headers)


def json_error(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status)


__all__ = ["AuthMiddleware", "HardeningMiddleware", "check_password", "csrf_ok", "csrf_token",
           "json_error", "safe_next", "same_origin"]
