"""Small helpers the tests share: waiting for a condition, a job's end, a worker in a
process of its own."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.children import child_env

ROOT = Path(__file__).resolve().parent.parent


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
