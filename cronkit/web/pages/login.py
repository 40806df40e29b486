"""The login form (with its throttle of wrong passwords) and logging out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from ..security import check_password, csrf_token, safe_next
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
    throttle, client = request.app.state.login_throttle, request.client.host if request.client else ""
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
    request.session.clear()
    request.session["user"] = "admin"
    csrf_token(request)
    return redirect(target)


@page
async def logout(request: Request, kit: Cronkit) -> Response:
    await checked_form(request)
    request.session.clear()
    return redirect("/login")
