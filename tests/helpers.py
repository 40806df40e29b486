"""Small helpers the tests share: waiting for a condition, a job's end, a worker in a
process of its own, the web app on a free port, runners that fail, the headless
Chromium of the browser tests (the ``browser`` fixture: import it into a test module)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import cronkit
from tests.children import child_env

ROOT = Path(__file__).resolve().parent.parent
#: Where the browser tests save their screenshots.
OUTPUT = ROOT / "test-output"
#: Debian's Chromium, driven by Playwright (``playwright install`` is never run).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for the tests of one module (each test opens its context)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def wait_for(predicate, timeout=60.0, what="condition"):
    """Poll ``predicate`` until it is true (returning its value); a generous bound."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)


def finished(site, job_id):
    """The job once it has ended, else None."""
    job = site.jobs.get(job_id)
    return job if job.finished else None


def spawn(code: str) -> subprocess.Popen:
    """``python -c code`` in a child with the checkout importable; it must print
    "ready" once it is set up."""
    proc = subprocess.Popen([sys.executable, "-c", code], env=child_env(), cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


class Boom(cronkit.Runner):
    def run(self):
        raise ValueError("boom")


class FailsOnce(cronkit.Runner):
    retries = 1
    retry_backoff = 1.0

    def run(self):
        if self.job.attempts == 1:
            raise RuntimeError("first attempt fails")


class WebServers:
    """``start(kit, **options)``: the web app of ``kit`` (``make_server``'s options) on a
    free loopback port, returning its URL; ``stop()`` stops every one started."""

    WAIT = 60

    def __init__(self):
        self.servers = []

    def start(self, kit, **options):
        from cronkit.web import make_server
        from tests.servers import free_port
        port = free_port()
        server = make_server(kit, port=port, **options)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        self.servers.append((server, thread))
        wait_for(lambda: server.started, self.WAIT, "the web server's start")
        return f"http://127.0.0.1:{port}"

    def stop(self):
        for server, thread in self.servers:
            server.should_exit = True
            thread.join(self.WAIT)
