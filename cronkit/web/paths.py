"""Path segments that may hold any text: site names such as ``/app/plone``.

A site name, a cron uid or a job type name is one segment of a URL, percent-encoded
whole (``quote(name, safe="")``: ``/app/plone`` is ``%2Fapp%2Fplone``), as
:func:`segment` writes it. An ASGI server decodes ``%2F`` before routing, which would
split such a name in two; :class:`SegmentPathMiddleware` routes on the request's raw
path instead, each segment decoded on its own with only ``%`` and ``/`` left encoded,
and the ``seg`` convertor of the routes (``{site:seg}``) decodes what is left.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send


def segment(value: object) -> str:
    """``value`` as one path segment of a URL (every reserved character encoded)."""
    return quote(str(value), safe="")


def _routed(segment_text: str) -> str:
    return unquote(segment_text).replace("%", "%25").replace("/", "%2F")


class SegmentConvertor(Convertor[str]):
    """One path segment, as :class:`SegmentPathMiddleware` leaves it, decoded."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return unquote(value)

    def to_string(self, value: str) -> str:
        return segment(value)


register_url_convertor("seg", SegmentConvertor())


class SegmentPathMiddleware:
    """Routes on the raw path, each segment decoded alone: ``%2F`` stays inside its segment."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw:
            text = raw.decode("latin-1").split("?", 1)[0]
            scope = dict(scope, path="/".join(_routed(part) for part in text.split("/")))
        await self.app(scope, receive, send)

#: The route prefix of a site's pages and of its REST endpoints (under /api/v1).
SITE_PATH = "/sites/{site:seg}"
