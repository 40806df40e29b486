"""The charts, the workers page and the pause controls in a real headless Chromium
(the shared ``browser`` fixture of tests/helpers.py), each test saving a screenshot of
its page under the test output folder. Jobs run in the test's thread on a FakeClock."""

from __future__ import annotations

import re

import pytest

import cronkit
from cronkit.web.charts import SPANS
from tests import helpers, test_web_charts
from tests.helpers import OUTPUT, WebServers
from tests.test_web_charts import worker

pytest.importorskip("playwright.sync_api")

browser = helpers.browser   # the shared headless Chromium (a module-scoped fixture)
site = test_web_charts.site   # the site with the charts tests' runners
WAIT = 20.0


@pytest.fixture
def page(browser, kit, site):
    servers = WebServers()
    context = browser.new_context(base_url=servers.start(kit))
    page = context.new_page()
    page.set_default_timeout(WAIT * 1000)
    yield page
    context.close()
    servers.stop()


def shot(page, name):
    OUTPUT.mkdir(exist_ok=True)
    target = OUTPUT / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 1000


def numbers(page, chart):
    """A chart's table of numbers as the browser has it: a list of rows of cell texts."""
    return page.evaluate("""chart => Array.from(document.querySelectorAll(
        `table.chart-data[data-chart="${chart}"] tbody tr`)).map(
        tr => Array.from(tr.children).map(td => td.textContent))""", chart)


def test_the_dashboard_charts_show_the_store_and_follow_it_live(page, kit, site, clock):
    for _ in range(3):
        site.submit("takes", {})
    site.submit("fails", {})
    kit.run_pending()
    page.goto("/")
    chart = page.get_by_role("img", name="Jobs finished per minute, the last hour")
    assert chart.is_visible()
    counts = kit.store.count_ends(*SPANS[0].window(clock.now()), SPANS[0].step)
    assert [[int(x) for x in row[1:]] for row in numbers(page, "ends-hour")] == [
        [c["success"] + c["failed"] + c["canceled"], c["success"], c["failed"], c["canceled"]]
        for c in counts]
    assert numbers(page, "ends-hour")[-1][1:] == ["4", "3", "1", "0"]
    page.evaluate("window.__notReloaded = true")
    site.submit("fails", {})
    kit.run_pending()
    page.wait_for_function("""() => {
        const rows = document.querySelectorAll('table.chart-data[data-chart="ends-hour"] tr');
        return rows[rows.length - 1].children[3].textContent === "2"; }""")
    assert page.evaluate("window.__notReloaded") is True
    page.click("text=The numbers of “Jobs finished per hour, the last day”")
    assert page.is_visible('table.chart-data[data-chart="ends-day"]')
    shot(page, "charts-dashboard")


def test_the_site_page_charts_one_type_and_its_distributions(page, kit, site, clock):
    site.submit("takes", {"secs": 90}, delay=5)
    site.submit("fails", {"secs": 2})
    clock.advance(seconds=8)
    kit.run_pending()
    page.goto("/sites/plone")
    assert page.get_by_role("img", name="Run duration of takes jobs").is_visible()
    durations = dict(numbers(page, "duration-1"))
    assert durations["1–5 min"] == "1"
    page.select_option("#chart-type", "fails")
    page.click("button:has-text('Show')")
    page.wait_for_url("**/sites/plone?type=fails")
    assert page.get_by_role("img", name=re.compile("type fails")).count() == 2
    rows = numbers(page, "ends-hour")
    assert [sum(int(r[i]) for r in rows) for i in (1, 2, 3)] == [1, 0, 1]   # the failed one
    shot(page, "charts-site")


def test_a_cron_page_shows_its_run_durations(page, kit, site, clock):
    cron = cronkit.Cron(name="takes", periodicity="*/5 * * * *", uid="c1",
                        environ={"secs": 7})
    site.crontab.add_cron(cron)
    site.crontab.save()
    for _ in range(4):
        clock.advance(minutes=5)
        kit.run_pending()
    page.goto("/sites/plone/crons/c1")
    assert page.get_by_role("img", name="Run durations of the last 4 runs").is_visible()
    assert [row[2] for row in numbers(page, "cron-durations")] == ["7 s"] * 4
    shot(page, "charts-cron")


def test_the_workers_page_links_a_workers_jobs_and_shows_the_lost(page, kit, site, clock):
    store = kit.store
    store.register_worker(worker("web-1:11", clock, pid=11))
    store.register_worker(worker("web-1:12", clock, pid=12, state="draining"))
    store.register_worker(worker("web-2:13", clock, host="web-2", pid=13))
    job = site.submit("takes", {}, name="the busy one")
    store.claim(clock.now(), 1, "web-1:11", 11)
    clock.advance(seconds=kit.error_timeout + 1)
    for alive in ("web-1:11", "web-1:12"):
        store.worker_heartbeat(alive, clock.now())
    page.goto("/")
    page.click("header >> text=Workers")
    page.wait_for_url("**/workers")
    row = page.locator('tr[data-worker="web-2:13"]')
    assert row.locator(".state .badge").inner_text() == "LOST"
    assert page.locator('tr[data-worker="web-1:12"] .state .badge').inner_text() == "DRAINING"
    shot(page, "workers")
    page.click(f"text=#{job.id} the busy one")
    page.wait_for_url(f"**/sites/plone/jobs/{job.id}")


def test_pause_and_resume_a_type_on_the_types_page(page, kit, site, clock):
    page.goto("/sites/plone/types")
    page.click("button[aria-label='Pause takes']")
    page.wait_for_url("**/sites/plone/types")
    assert "PAUSED" in page.inner_text("td.queue[data-type='takes']")
    assert site.pauses() == ["takes"]
    assert page.inner_text("h1 .badge.paused") == "PAUSED (takes)"
    job = site.submit("takes", {})
    assert kit.run_pending() == []                    # paused: not claimed
    shot(page, "types-paused")
    page.click("button[aria-label='Resume takes']")
    page.wait_for_url("**/sites/plone/types")
    assert site.pauses() == []
    assert [j.id for j in kit.run_pending()] == [job.id]
    page.goto("/jobs?site=plone")
    assert page.locator(".paused-site").count() == 0
