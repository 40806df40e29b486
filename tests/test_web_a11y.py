"""Every page of the dashboard in a real headless Chromium: a screenshot of each (wide,
and phone-wide at 375 px) under the session's ``screenshots`` folder (its path is
printed), no sideways scrolling of the page at 375 px, and an accessibility check by
axe-core (the axe.min.js that axe-playwright-python ships): no serious or critical
violation on any page.

One kit, one server and one browser for the module, on a FakeClock: the pages show a
known state (crons, failed and pending jobs, a paused type, a site without a crontab).

To check a new page, add its URL to ``PAGES`` (or a state reached by clicking, to
``test_pages_reached_by_a_form``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

import cronkit
from tests import helpers
from tests.helpers import WebServers

pytest.importorskip("playwright.sync_api")
axe_playwright = pytest.importorskip("axe_playwright_python.sync_playwright")

browser = helpers.browser   # the shared headless Chromium (a module-scoped fixture)
WAIT = 30.0
PHONE = {"width": 375, "height": 740}
WIDE = {"width": 1280, "height": 900}
#: What axe may report: anything below these impacts fails the test.
FORBIDDEN = {"serious", "critical"}

#: (name of the screenshot, URL): every page. The workers page and the charts (on the
#: dashboard, site and cron pages; /charts is their fragment, no page) are the
#: "charts" engineer's: add a new page here.
PAGES = [
    ("dashboard", "/"),
    ("jobs", "/jobs"),
    ("jobs-failed", "/jobs?status=failed"),
    ("jobs-search", "/jobs?q=disk"),
    ("jobs-site", "/jobs?site=plone"),
    ("site", "/sites/plone"),
    ("site-without-crontab", "/sites/batch"),
    ("types", "/sites/plone/types"),
    ("submit-params", "/sites/plone/types/export"),
    ("submit-json", "/sites/plone/types/boom"),
    ("cron", "/sites/plone/crons/nightly"),
    ("cron-new", "/sites/plone/crons/new"),
    ("cron-edit", "/sites/plone/crons/nightly/edit"),
    ("job-failed", "/sites/plone/jobs/{failed}"),
    ("job-firing", "/sites/plone/jobs/{firing}"),
    ("job-of-site-without-crontab", "/sites/batch/jobs/{batch}"),
    ("not-found", "/sites/nosuch"),
    ("workers", "/workers"),
    ("site-charts-of-a-type", "/sites/plone?type=export"),
]


class Export(cronkit.Runner):
    """Export products to a CSV file."""

    parameters = {
        "limit": cronkit.Param("int", required=True, help="max rows"),
        "dry": cronkit.Param("bool", help="change nothing"),
        "format": cronkit.Param("select", choices=["csv", "json"], default="csv"),
    }

    def run(self):
        self.job.update(progress=100, text="exported")


class Boom(cronkit.Runner):
    """Fails, with a long error."""

    def run(self):
        raise OSError("disk /var/spool is full: " + "no space left on device " * 8)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The kit and the known state the pages show; the ids of a few jobs."""
    folder = tmp_path_factory.mktemp("a11y")
    clock = cronkit.FakeClock(datetime(2008, 1, 1, 1, 3, tzinfo=UTC))
    kit = cronkit.Cronkit(store=f"sqlite:///{folder / 'cronkit.db'}", clock=clock)
    site = kit.site("plone")
    site.register_runner(Export, name="export")
    site.register_runner(Boom, name="boom")
    for uid in ("nightly", "hourly"):
        site.crontab.add_cron(cronkit.Cron(name="export", periodicity="0 3 * * *", uid=uid,
                                           environ={"limit": 10}))
    site.crontab.save()
    failed = site.submit("boom", {"path": "/var/spool"})
    site.submit("export", {"limit": 5}, name="weekly export of every product in the shop")
    clock.advance(seconds=30)
    kit.run_pending()
    site.submit("export", {"limit": 1}, delay=600)
    site.pause("boom")
    for pid, state, age in ((11, "running", 0), (12, "draining", 0), (13, "running", 3600)):
        kit.store.register_worker({   # the workers page: a running, a draining, a lost one
            "id": f"web-1:{pid}", "host": "web-1", "pid": pid, "executor": "threads",
            "concurrency": 4, "state": state, "started_at": clock.now(),
            "heartbeat": clock.now() - timedelta(seconds=age), "version": "1.0", "info": {}})
    (firing,) = site.jobs.list(cron="nightly")
    other = cronkit.Cronkit(store=kit.store.url, clock=clock)   # a site with no crontab
    try:
        batch = other.site("batch")
        batch.register_runner(Boom, name="boom")
        in_batch = batch.submit("boom")
    finally:
        other.close()
    kit.site("batch").register_runner(Boom, name="boom")
    yield kit, {"failed": failed.id, "firing": firing.id, "batch": in_batch.id}
    kit.close()


@pytest.fixture(scope="module")
def base_url(world):
    kit, _ = world
    servers = WebServers()
    url = servers.start(kit)
    yield url
    servers.stop()


@pytest.fixture
def page(browser, base_url):
    context = browser.new_context(base_url=base_url, viewport=WIDE)
    page = context.new_page()
    page.set_default_timeout(WAIT * 1000)
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()


_AXE = None


def axe_problems(page):
    """The serious and critical violations axe-core finds on the page, in words."""
    global _AXE
    if _AXE is None:
        _AXE = axe_playwright.Axe()
    response = _AXE.run(page).response
    return [f"{v['id']} ({v['impact']}): {v['help']} at "
            + ", ".join(" ".join(n["target"]) for n in v["nodes"][:5])
            for v in response["violations"] if v["impact"] in FORBIDDEN]


def check_page(page, screenshots, name):
    """Screenshot the page wide and at 375 px; at 375 px nothing scrolls the page
    sideways; axe finds nothing serious (run once, wide: the rules it checks, names,
    roles, contrast, labels, do not change with the width)."""
    page.set_viewport_size(WIDE)
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
    problems = axe_problems(page)
    page.set_viewport_size(PHONE)
    page.wait_for_function("() => window.innerWidth === 375")
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    page.screenshot(path=str(screenshots / f"{name}-375.png"), full_page=True)
    wide = page.evaluate("""() => Array.from(document.querySelectorAll('body *')).filter(
        e => e.getBoundingClientRect().right > window.innerWidth + 1
             && !(e.parentElement && e.parentElement.closest('.table-wrap'))).slice(0, 5).map(
        e => e.tagName.toLowerCase() + (e.getAttribute('class') ? '.' + e.getAttribute('class') : '')
             + ' ' + Math.round(e.getBoundingClientRect().right))""")
    assert widths[0] <= widths[1], f"{name}: the page scrolls sideways at 375 px: {wide}"
    assert problems == [], f"{name}: " + "; ".join(problems)
    assert (screenshots / f"{name}.png").stat().st_size > 1000


@pytest.mark.parametrize("name, url", PAGES, ids=[name for name, _ in PAGES])
def test_every_page_is_accessible_and_fits_a_phone(page, world, screenshots, name, url):
    response = page.goto(url.format(**world[1]))
    expected = 404 if name == "not-found" else 200
    assert response.status == expected, f"{url}: {response.status}"
    print(f"screenshots of {name}: {screenshots}")
    check_page(page, screenshots, name)


def test_pages_reached_by_a_form(page, world, screenshots):
    """The states a form leads to: a cron form's preview and its inline errors, the
    confirmation of a bulk action and its result, a refused submission."""
    page.goto("/sites/plone/crons/new")
    page.select_option("#name", "export")
    page.fill("#periodicity", "30 2 * * *")       # the live preview, as one types
    page.wait_for_selector("#live-preview ol.next-times li")
    assert page.locator("#live-preview li").first.inner_text() == "2008-01-01 02:30:00 UTC"
    page.fill("#periodicity", "61 * * * *")
    page.wait_for_selector("#live-preview .error")
    page.fill("#periodicity", "30 2 * * *")
    page.click("button:has-text('Preview')")
    page.wait_for_selector("section.preview")
    assert "Next 5 times" in page.inner_text("section.preview")
    assert page.is_visible("#env-limit")        # the runner's parameters, as fields
    check_page(page, screenshots, "cron-preview")
    page.fill("#uid", "nightly")
    page.fill("#env-limit", "7")
    page.click("button:has-text('Add')")
    page.wait_for_selector("#err-uid")
    assert "already exists" in page.inner_text("#err-uid")
    check_page(page, screenshots, "cron-errors")
    page.goto("/jobs?status=failed")
    page.click("button:has-text('Retry all…')")
    page.wait_for_selector("#bulk-confirm")
    assert re.match(r"Retry \d+ jobs?\?", page.inner_text("h1"))
    check_page(page, screenshots, "bulk-confirm")
    page.goto("/sites/plone/types/export")
    page.fill("#p-limit", "3")
    page.fill("#run_after", "2008-02-30T10:00")
    page.click("button:has-text('Submit')")
    page.wait_for_selector("#err-run_after")
    check_page(page, screenshots, "submit-errors")


def test_a_bulk_cancel_from_the_browser(page, world):
    kit, _ = world
    site = kit.site("plone")
    jobs = [site.submit("export", {"limit": i}, name=f"bulk-me-{i}") for i in range(3)]
    page.goto("/jobs")
    page.fill("input[name=q]", "bulk-me")
    page.click("button:has-text('Filter')")
    page.wait_for_url("**/jobs?*q=bulk-me*")
    assert page.locator("tr.job").count() == 3
    page.click("button:has-text('Cancel all…')")
    assert "Cancel 3 jobs?" in page.inner_text("h1")
    assert "search “bulk-me”" in page.inner_text(".bulk-filter")
    page.click("#bulk-confirm")
    page.wait_for_selector(".flash")
    assert page.inner_text(".flash") == "Cancel (search “bulk-me”): 3 jobs canceled"
    assert {site.jobs.get(j.id).status for j in jobs} == {cronkit.Status.CANCELED}
    assert page.locator("tr.job .jstatus").all_inner_texts() == ["CANCELED"] * 3
