"""What every page shares: the Jinja2 templates, rendering with the flash messages and
the CSRF token, redirects, checked forms, and the ``@page`` wrapper that turns cronkit
errors into an error page."""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ...exceptions import CronkitError, StoreError
from ..common import Endpoint, Handler, WebError, describe, off_the_loop, site_names
from ..paths import segment
from ..security import csrf_ok, csrf_token

TEMPLATES = Path(__file__).parent.parent / "templates"


def templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["when"] = when
    env.filters["words"] = describe
    env.filters["seg"] = segment
    return env


def when(value: datetime | None) -> str:
    """A time as the pages show it."""
    return value.strftime("%Y-%m-%d %H:%M:%S %Z") if value is not None else "—"


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    auth = request.app.state.auth
    context.update(
        request=request, csrf_token=csrf_token(request),
        flash=request.session.pop("flash", []),
        auth_enabled=bool(auth["token"] or auth["password"]),
        logged_in=bool(request.session.get("user")),
        nav_sites=site_names(request.app.state.kit))
    html = request.app.state.templates.get_template(name).render(context)
    return HTMLResponse(html, status_code)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status, status=status, message=message)


def flash(request: Request, text: str, kind: str = "info") -> None:
    request.session["flash"] = [*request.session.get("flash", []), [kind, text]]


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, 303)


async def checked_form(request: Request) -> FormData:
    """The posted form, after its CSRF token is checked (403 without it)."""
    form = await request.form()
    if not csrf_ok(request, form.get("csrf_token")):
        raise WebError(403, "missing or wrong CSRF token: reload the page and try again")
    return form


def as_text(value: str | UploadFile) -> str:
    """A posted form value where text is expected. The pages' forms post text only; a
    file (a hand-made multipart request) fails the request here, as it always has."""
    if isinstance(value, str):
        return value
    raise TypeError(f"a file was posted where text was expected: {value.filename!r}")


def page(fn: Handler) -> Endpoint:
    """Run ``fn(request, kit)``; cronkit errors become an error page."""

    @functools.wraps(fn)
    async def wrapped(request: Request) -> Response:
        try:
            return await off_the_loop(fn, request, request.app.state.kit)
        except WebError as exc:
            return error_page(request, exc.status, exc.message)
        except StoreError as exc:
            return error_page(request, 503, str(exc))
        except CronkitError as exc:
            return error_page(request, 409, str(exc))

    return wrapped
