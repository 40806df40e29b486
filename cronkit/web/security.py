"""Authentication, CSRF and response hardening for the dashboard and the API.

* No auth configured (only allowed on loopback): everything is open.
* ``auth_token``: the API takes ``Authorization: Bearer <token>``.
* ``password`` (or, without one, the token typed into the login form): the pages take a
  session cookie (HttpOnly, SameSite=Lax) set by the login form; so does the API, which the
  pages' live progress uses.
* Every form carries a per-session CSRF token; a POST without it gets 403. An API request
  authenticated by cookie (or by nothing) that changes something must not come from
  another origin (``Origin`` / ``Sec-Fetch-Site``): a cross-site page cannot drive it.
* A logged-in session is one the server holds (:class:`Sessions`): logging out ends it
  on the server, so a copy of the cookie is worth nothing afterwards.
* With auth on, no response but a static file may be stored (``Cache-Control: no-store``).
* Every request body is limited (:class:`BodyLimitMiddleware`, 413 beyond it).
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import secrets
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from ..clock import Clock

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = ("/static/", "/login", "/api/v1/openapi.json", "/favicon.ico", "/healthz",
              "/readyz")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HARDENING = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
             (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY")]

#: The largest request body taken by default, in bytes (``create_app(max_body=...)``).
MAX_BODY = 4 * 1024 * 1024
#: How long a session lasts from its login, in seconds.
SESSION_LIFETIME = 7 * 86400


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


class Sessions:
    """The logged-in sessions of this server process, by session id.

    The session cookie is signed, not secret-proof: a copy of it works wherever it is
    sent. So a login also records a random session id here and in the cookie, and the
    cookie counts only while its id is here: logging out removes it (a copy taken before
    is refused from then on), and so does the end of ``lifetime`` seconds after the
    login (kit clock). The ids live in this process only: a session ends with the
    process, and a second process (or a restart) does not know the sessions of another,
    even with the same ``secret_key``: its browsers log in again. At most ``limit``
    sessions are held; beyond it the oldest ends."""

    def __init__(self, clock: Clock, lifetime: float = SESSION_LIFETIME, limit: int = 10_000):
        self.clock = clock
        self.lifetime = timedelta(seconds=lifetime)
        self.limit = limit
        self._ends: dict[str, datetime] = {}    # in login order, oldest first
        self._lock = threading.Lock()

    def start(self) -> str:
        """A new session: its id, to keep in the session cookie."""
        now = self.clock.now()
        sid = secrets.token_urlsafe(32)
        with self._lock:
            if len(self._ends) >= self.limit:
                for old, end in list(self._ends.items()):
                    if end <= now:
                        del self._ends[old]
                while len(self._ends) >= self.limit:
                    del self._ends[next(iter(self._ends))]
            self._ends[sid] = now + self.lifetime
        return sid

    def alive(self, sid: object) -> bool:
        """Whether ``sid`` is a session of this process that has not ended."""
        if not isinstance(sid, str):
            return False
        now = self.clock.now()
        with self._lock:
            end = self._ends.get(sid)
            if end is not None and end <= now:
                del self._ends[sid]
                end = None
        return end is not None

    def end(self, sid: object) -> None:
        """End session ``sid`` (nothing if it is not one)."""
        if isinstance(sid, str):
            with self._lock:
                self._ends.pop(sid, None)


class AuthMiddleware:
    """Guards every route but the open ones; runs inside SessionMiddleware. A session
    that :class:`Sessions` no longer holds is logged out (its cookie rewritten)."""

    def __init__(self, app: ASGIApp, token: str | None, password: str | None,
                 sessions: Sessions):
        self.app = app
        self.token = token
        self.password = password
        self.sessions = sessions

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
        api = path.startswith("/api/") or path == "/metrics"   # a scraper sends a token
        scope["cronkit.auth"] = "open"
        if self.enabled:
            session = scope.get("session", {})
            if session.get("user") and not self.sessions.alive(session.get("sid")):
                session.pop("user", None)   # logged out, expired, or from another process
                session.pop("sid", None)
            if not path.startswith("/static/"):
                send = _no_store(send)
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


def _no_store(send: Send) -> Send:
    """``send`` with ``Cache-Control: no-store`` on the response (in place of any other)."""

    async def send_no_store(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [(k, v) for k, v in message.get("headers", [])
                                  if k.lower() != b"cache-control"]
            message["headers"].append((b"cache-control", b"no-store"))
        await send(message)

    return send_no_store


def check_password(auth: dict[str, str | None], sent: object) -> bool:
    """The login form takes the password, or the token when no password is set."""
    expected: str | None = auth.get("password") or auth.get("token")
    if not expected or not isinstance(sent, str):
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


def address_key(host: str) -> str:
    """A client address as the login throttle counts it: an IPv4 address as it is, an
    IPv6 address by its /64 network (what one client usually holds)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def throttle_key(request: Request) -> str:
    """Who a login attempt counts against. A browser that has logged in here before
    carries a random id in its (signed) session, kept when it logs out: it is counted
    on its own, so wrong passwords from its address (shared by every client behind a
    proxy that does not say who its clients are) do not lock it out. Anyone else is
    counted by client address: the peer's, or the one a trusted proxy gives
    (``forwarded_allow_ips``)."""
    browser = request.session.get("browser")
    if isinstance(browser, str) and browser:
        return "browser " + browser
    return "address " + address_key(request.client.host if request.client else "")


class LoginThrottle:
    """At most ``attempts`` wrong passwords per client (a :func:`throttle_key`) within
    ``window`` seconds; after that the login form refuses that client (429) until the
    oldest failure leaves the window. A right password clears the client's count. Time
    is the kit's clock."""

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


class _TooLarge(Exception):  # noqa: N818 - a signal to the middleware, never seen outside
    """The request body went past the limit."""


def size_text(size: int) -> str:
    """``4 MiB (4194304 bytes)``, ``512 KiB (524288 bytes)`` or ``100 bytes``."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit} ({size} bytes)"
    return f"{size} bytes"


class BodyLimitMiddleware:
    """Request bodies of at most ``max_body`` bytes. A larger Content-Length is refused
    at once, before any of the body is read (a client that waits for
    ``100 Continue`` sends none); a body without one (chunked) is counted as the app
    reads it, and refused as soon as it passes the limit. Either way the answer is 413,
    with ``Connection: close``: the server stops taking the upload, and the app never
    sees the request, or stops reading it (what it read is dropped)."""

    def __init__(self, app: ASGIApp, max_body: int):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            return await self.refuse(scope, receive, send)
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except _TooLarge:
            if started:   # the app answered before reading on: nothing left to say
                raise
            await self.refuse(scope, receive, send)

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body too large: the limit is {size_text(self.max_body)}"
        headers = {"Connection": "close"}
        response: Response
        if scope["path"].startswith("/api/"):
            response = JSONResponse({"error": message, "field": "body"}, 413, headers=headers)
        else:
            response = PlainTextResponse(message + "\n", 413, headers=headers)
        await response(scope, receive, send)


def json_error(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status)


__all__ = ["MAX_BODY", "SESSION_LIFETIME", "AuthMiddleware", "BodyLimitMiddleware",
           "HardeningMiddleware", "LoginThrottle", "Sessions", "address_key", "check_password",
           "csrf_ok", "csrf_token", "json_error", "safe_next", "same_origin", "size_text",
           "throttle_key"]
