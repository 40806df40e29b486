"""cronkit's web dashboard and REST API (the ``web`` extra: Starlette, Jinja2, uvicorn).

``create_app(kit)`` builds the ASGI app, ``make_server(kit, host, port)`` a uvicorn server
to run in a thread, and ``serve(kit, host, port, token=..., password=...)`` runs it until
interrupted. Off loopback, a token or a password is required.
"""

from .app import create_app, is_loopback, make_server, serve

__all__ = ["create_app", "is_loopback", "make_server", "serve"]
