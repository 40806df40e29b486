"""The dashboard in a real headless Chromium (Debian's, driven by Playwright).

A live uvicorn server runs in a thread on 127.0.0.1 on a free port; the jobs are
driven from the test (``kit.run_pending()`` in a background thread, runners that wait
on the test between steps), so nothing depends on a worker or on sleeping.
"""

from __future__ import annotations

import threading
import time

import pytest

import cronkit
from cronkit.web import make_server
from tests import helpers
from tests.helpers import OUTPUT
from tests.servers import free_port

playwright_api = pytest.importorskip("playwright.sync_api")

browser = helpers.browser   # the shared headless Chromium (a module-scoped fixture)
XSS = "<script>alert(1)</script>"
WAIT = 20.0


class Flaky(cronkit.Runner):
    """Always fails."""

    def run(self):
        raise RuntimeError("flaky is down")


class Stepper(cronkit.Runner):
    """Advances one step each time the test says so."""

    parameters = {"steps": cronkit.Param("int", required=True, help="how many steps"),
                  "verbose": cronkit.Param("bool")}
    gate = threading.Semaphore(0)

    def run(self):
        steps = self.job.payload["steps"]
        for i in range(1, steps + 1):
            if not self.gate.acquire(timeout=WAIT):
                raise RuntimeError("the test never released the step")
            self.job.update(progress=100 * i // steps, text=f"step {i} of {steps}")


class Looper(cronkit.Runner):
    """Runs until canceled."""

    def run(self):
        deadline = time.monotonic() + WAIT
        while not self.job.canceled and time.monotonic() < deadline:
            self.job.update(progress=10, text="looping")
            time.sleep(0.05)


class Evil(cronkit.Runner):
    """Writes markup into its status text."""

    def run(self):
        self.job.update(progress=100, text=XSS)


@pytest.fixture
def site(kit):
    site = kit.site("plone")
    for name, factory in (("flaky", Flaky), ("stepper", Stepper), ("looper", Looper),
                          ("evil", Evil)):
        site.register_runner(factory, name=name)
    site.crontab.save()
    return site


@pytest.fixture
def server(kit, site):
    port = free_port()
    server = make_server(kit, port=port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(WAIT)


@pytest.fixture
def page(browser, server):
    context = browser.new_context(base_url=server)
    page = context.new_page()
    page.set_default_timeout(WAIT * 1000)
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()


def in_background(fn):
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def wait_until(predicate, what):
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_add_a_cron_through_the_form_and_see_its_next_run(page, site):
    page.goto("/sites/plone")
    page.click("text=Add a cron")
    page.select_option("#name", "flaky")
    page.fill("#uid", "five")
    page.fill("#periodicity", "*/5 * * * *")
    page.click("button:has-text('Add')")
    page.wait_for_url("**/crons/five")
    assert "cron five (flaky) added" in page.inner_text(".flash")
    page.goto("/sites/plone")
    row = page.locator("tr.cron", has_text="flaky")
    assert row.locator(".next").inner_text() == "2008-01-01 01:05:00 UTC"
    assert "every 5 minutes" in row.inner_text()


def test_invalid_cron_is_shown_inline_in_the_browser(page, site):
    page.goto("/sites/plone/crons/new")
    page.select_option("#name", "flaky")
    page.fill("#periodicity", "not a cron")
    page.fill("#logs_limit", "30")
    page.click("button:has-text('Add')")
    assert "from 1 to 25" in page.inner_text("#err-logs_limit")
    assert page.input_value("#periodicity") == "not a cron"
    assert page.is_visible("#err-periodicity")
    assert not site.crontab.crons


def test_a_failing_cron_shows_failure_in_its_logs(page, site, kit, clock):
    cron = cronkit.Cron(name="flaky", periodicity="*/5 * * * *", uid="f1")
    site.crontab.add_cron(cron)
    site.crontab.save()
    page.goto("/sites/plone/crons/f1")
    assert "No log yet" in page.content()
    page.click("button:has-text('Run now')")
    page.wait_for_selector(".flash")
    kit.run_pending()
    clock.advance(minutes=5)
    kit.run_pending()
    page.goto("/sites/plone/crons/f1")
    statuses = page.locator("tr.log .status").all_inner_texts()
    assert statuses == ["FAILURE", "FAILURE"]
    assert "RuntimeError: flaky is down" in page.inner_text("tr.log")


def test_submit_from_generated_form_and_watch_progress_reach_100(page, site, kit):
    page.goto("/sites/plone/types")
    page.click("a.button[href='/sites/plone/types/stepper']")
    assert page.get_attribute("#p-steps", "type") == "number"
    assert page.get_attribute("#p-verbose", "type") == "checkbox"
    page.fill("#p-steps", "4")
    page.click("button:has-text('Submit')")
    page.wait_for_url("**/jobs/1")
    page.evaluate("window.__notReloaded = true")
    runner = in_background(kit.run_pending)
    for percent in (25, 50, 75, 100):
        Stepper.gate.release()
        page.wait_for_function(
            "p => document.querySelector('[data-job] progress').value >= p", arg=percent)
        assert f"{percent}%" in page.inner_text("[data-job] .pct") or percent < 100
    page.wait_for_function(
        "() => document.querySelector('[data-job] .jstatus').textContent === 'SUCCESS'")
    runner.join(WAIT)
    assert page.evaluate("document.querySelector('[data-job] progress').value") == 100
    assert page.inner_text("[data-job] .jtext") == "step 4 of 4"
    assert page.evaluate("window.__notReloaded") is True


def test_cancel_a_running_job_and_see_canceled(page, site, kit):
    job = site.submit("looper", {})
    runner = in_background(kit.run_pending)
    wait_until(lambda: site.jobs.get(job.id).status == cronkit.Status.RUNNING, "the job to run")
    page.goto(f"/sites/plone/jobs/{job.id}")
    assert page.inner_text("[data-job] .jstatus") == "RUNNING"
    page.click("button:has-text('Cancel')")
    page.wait_for_function(
        "() => document.querySelector('[data-job] .jstatus').textContent === 'CANCELED'")
    runner.join(WAIT)
    assert site.jobs.get(job.id).status == cronkit.Status.CANCELED
    assert page.is_hidden("button:has-text('Cancel')")
    assert page.is_visible("button:has-text('Retry')")


def test_markup_in_status_text_is_shown_as_text_and_never_run(page, site, kit):
    job = site.submit("evil", {}, name=XSS)
    page.goto(f"/sites/plone/jobs/{job.id}")
    page.evaluate("window.__notReloaded = true")
    kit.run_pending()  # the text arrives through the live update
    page.wait_for_function(
        "() => document.querySelector('[data-job] .jstatus').textContent === 'SUCCESS'")
    assert page.inner_text("[data-job] .jtext") == XSS
    assert page.evaluate("window.__notReloaded") is True
    for url in (f"/sites/plone/jobs/{job.id}", "/jobs", "/"):  # and as rendered by the server
        page.goto(url)
        assert XSS in page.inner_text("body")
        assert page.locator("main script").count() == 0
    assert page.dialogs == []


def test_dashboard_screenshot(page, site, kit):
    cron = cronkit.Cron(name="flaky", periodicity="0 3 * * *", uid="d1")
    site.crontab.add_cron(cron)
    site.crontab.save()
    site.submit("evil", {})
    kit.run_pending()
    site.submit("looper", {}, delay=60)
    page.goto("/")
    assert page.is_visible("table.sites")
    OUTPUT.mkdir(exist_ok=True)
    target = OUTPUT / "dashboard.png"
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 1000
