"""The charts' fragment: ``GET /charts`` answers the ``<section>`` of charts a page
shows (the dashboard's, a site's or a cron's), drawn afresh, for static/cronkit.js to
swap in every few seconds: the charts follow the store without reloading the page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..charts import CRON_RUNS, chart_context, cron_chart
from ..common import get_cron, get_site
from .base import page

if TYPE_CHECKING:
    from ...kit import Cronkit
    from ...model import Cron
    from ...site import Site


def site_charts(kit: Cronkit, site: Site | None = None, type: str | None = None) -> dict[str, Any]:
    """The context of ``_charts.html`` for the dashboard (``site`` None: every site,
    no distribution) or a site's page (with its types' distributions); ``type``: of
    that job type only."""
    name = None if site is None else site.name
    context = dict(chart_context(kit.store, kit.clock.now(), name, type or None,
                                 timings=site is not None))
    context["url"] = _url(site=name, type=type or None)
    context.update(cron=None, for_cron=False, with_timings=site is not None)
    return context


def cron_charts(kit: Cronkit, site: Site, cron: Cron) -> dict[str, Any]:
    """The context of ``_charts.html`` for a cron's page: its last runs' durations."""
    jobs = site.jobs.list(cron=cron, status=["success", "failed"], limit=CRON_RUNS)
    return {"ends": [], "timings": [], "as_of": kit.clock.now(), "cron": cron_chart(jobs),
            "for_cron": True, "with_timings": False,
            "url": _url(site=site.name, cron=cron.uid)}


def _url(**query: str | None) -> str:
    """The fragment's URL for this scope (what ``charts`` below reads back)."""
    return "/charts?" + urlencode({k: v for k, v in query.items() if v is not None})


@page
async def charts(request: Request, kit: Cronkit) -> Response:
    """The charts of the scope named by the query: none (the dashboard's), ``site``
    (and ``type``), or ``site`` and ``cron`` (a cron's uid)."""
    q = request.query_params
    if q.get("site"):
        site = get_site(kit, q["site"])
        context = cron_charts(kit, site, get_cron(site, q["cron"])) if q.get("cron") \
            else site_charts(kit, site, q.get("type"))
    else:
        context = site_charts(kit, None, q.get("type"))
    html = request.app.state.templates.get_template("_charts.html").render(charts=context)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})
