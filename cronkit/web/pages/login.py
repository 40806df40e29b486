"""The login form (with its throttle of wrong passwords) and logging out."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from ..security import check_password, csrf_token, safe_next, throttle_key
from .base import checked_form, page, redirect, render

if TYPE_CHECKING:
    from ...kit import Cronkit


@page
async def login(request: Request, kit: Cronkit) -> Response:
    target = safe_next(request.query_params.get("next"))
    if request.method == "GET":
        return render(request, "login.html", target=target, error=None)
    form = await checked_form(request)
    target = safe_next(form.get("next"))
    throttle, client = request.app.state.login_throttle, throttle_key(request)
    wait = throttle.wait(client)
    if wait:
        response = render(request, "login.html", 429, target=target,
                          error=f"too many wrong passwords: try again in {wait} s")
        response.headers["Retry-After"] = str(wait)
        return response
    if not check_password(request.app.state.auth, form.get("password")):
        throttle.failed(client)
        return render(request, "login.html", 401, target=target, error="wrong password")
    throttle.succeeded(client)
    sessions = request.app.state.sessions
    sessions.end(request.session.get("sid"))
    browser = request.session.get("browser") or secrets.token_urlsafe(16)
    request.session.clear()
    request.session.update(user="admin", sid=sessions.start(), browser=browser)
    csrf_token(request)
    return redirect(target)


@page
async def logout(request: Request, kit: Cronkit) -> Response:
    """End the session on the server too; the browser keeps only its id (see
    ``throttle_key``), which logs nobody in."""
    await checked_form(request)
    request.app.state.sessions.end(request.session.get("sid"))
    browser = request.session.get("browser")
    request.session.clear()
    if browser:
        request.session["browser"] = browser
    return redirect("/login")
