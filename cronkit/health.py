"""Health checks, and the small HTTP server of a worker that serves no dashboard.

``/healthz`` says the process is up (200 ``ok``). ``/readyz`` says whether the store
answers and has the schema this cronkit expects: 200 ``ok``, else 503 with a short
reason that names neither the store's URL nor anything else about it. Both are served
unauthenticated by the web app and by :class:`OpsServer` (``cronkit worker
--health-port`` / ``--metrics-port``), which also serves ``/metrics``.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from .exceptions import CronkitError

if TYPE_CHECKING:
    from .kit import Cronkit

#: How long a readiness check waits for the store (a lost PostgreSQL server is retried
#: for a minute by the store: the check does not wait that long).
READY_TIMEOUT = 3.0
#: The most requests the ops server answers at once (others wait in the listen queue).
MAX_REQUESTS = 8


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    name = host.strip().strip("[]").lower()
    if name in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Readiness:
    """Whether a kit's store is ready, asked from one thread at a time: a check that
    finds a probe still running waits for it instead of starting another."""

    def __init__(self, kit: Cronkit, timeout: float = READY_TIMEOUT):
        self.kit = kit
        self.timeout = timeout
        self._lock = threading.Lock()
        self._done: threading.Event | None = None
        self._reason: str | None = None

    def reason(self) -> str | None:
        """Why the store is not ready, or None when it is (see the module docstring)."""
        with self._lock:
            done = self._done
            if done is None or done.is_set():
                done = self._done = threading.Event()
                threading.Thread(target=self._probe, args=(done,), daemon=True,
                                 name="cronkit-readyz").start()
        if not done.wait(self.timeout):
            return f"store not reachable (no answer within {self.timeout:g} s)"
        return self._reason

    def _probe(self, done: threading.Event) -> None:
        from .stores.schema import SCHEMA_VERSION
        try:
            store = self.kit.store
            store.check()
            version = store.schema_version()
        except Exception:       # what it says could name the store: it is not shown
            reason: str | None = "store not reachable"
        else:
            reason = None if version == SCHEMA_VERSION else (
                f"store schema version {version}, expected {SCHEMA_VERSION}")
        self._reason = reason
        done.set()


def readiness(kit: Cronkit) -> Readiness:
    """The kit's Readiness (made on first use)."""
    found = getattr(kit, "_cronkit_readiness", None)
    if found is None:
        found = Readiness(kit)
        kit._cronkit_readiness = found  # type: ignore[attr-defined]
    return found


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 10       # seconds a client may take to send its request

    def handle(self) -> None:
        with self.server.slots:
            super().handle()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        ops = self.server.ops
        if path in ("/healthz", "/readyz") and ops.health:
            reason = None if path == "/healthz" else readiness(ops.kit).reason()
            self._send(200 if reason is None else 503, (reason or "ok").encode() + b"\n",
                       "text/plain; charset=utf-8")
        elif path == "/metrics" and ops.metrics and not self._allowed():
            self._send(401, b"authentication required: send 'Authorization: Bearer "
                       b"<token>'\n", "text/plain; charset=utf-8")
        elif path == "/metrics" and ops.metrics:
            from .metrics import exposition
            body, content_type = exposition(ops.kit)
            self._send(200, body, content_type)
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _allowed(self) -> bool:
        token = self.server.ops.token
        if token is None:
            return True
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                                  token.encode())

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # quiet: no access log
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    ops: OpsServer
    slots: threading.BoundedSemaphore


class OpsServer:
    """``/metrics`` (when ``metrics``), ``/healthz`` and ``/readyz`` (when ``health``) of
    ``kit`` over HTTP on ``host:port``, in a thread; ``start()``, ``stop()``. The web
    app's rule applies off loopback: ``/metrics`` (which names sites and job types)
    then requires ``Authorization: Bearer <token>``, and the server refuses to start
    without a ``token``; the health checks stay open (they reveal nothing)."""

    def __init__(self, kit: Cronkit, host: str = "127.0.0.1", port: int = 0, *,
                 metrics: bool = True, health: bool = True, token: str | None = None):
        if token is not None and not token.strip():
            raise CronkitError("the metrics token must not be blank")
        if metrics and token is None and not is_loopback(host):
            raise CronkitError(f"refusing to serve /metrics on {host!r} without "
                               "authentication: configure a token (--token or "
                               "$CRONKIT_TOKEN), or listen on 127.0.0.1")
        self.kit, self.host, self.port = kit, host, port
        self.metrics, self.health, self.token = metrics, health, token
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> OpsServer:
        """Listen (CronkitError naming the address when it cannot) and serve in a thread;
        with port 0, ``self.port`` is then the port chosen."""
        if self.metrics:
            from .metrics import enable
            enable(self.kit)
        try:
            server = _Server((self.host, self.port), _Handler)
        except OSError as exc:
            raise CronkitError(f"cannot serve on {self.host}:{self.port}: "
                               f"{exc.strerror or exc}") from None
        server.ops, server.slots = self, threading.BoundedSemaphore(MAX_REQUESTS)
        self._server, self.port = server, server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.2}, name="cronkit-ops")
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(10)
