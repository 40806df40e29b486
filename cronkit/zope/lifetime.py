"""cronkit at Zope start (zope.processlifetime's events, as Zope2.App.startup sends them).

* ``IDatabaseOpenedWithRoot``: the database is remembered (``set_database``): jobs run
  in it;
* ``IProcessStarting`` (once the whole configuration is loaded, before serving): when
  ``settings().worker_here()`` says so, cronkit's worker starts inside the instance, in
  background threads; its start restores every marked site's cron jobs
  (``kit.restore()``, which fires ``ServerRestartEvent`` for each). It is stopped at
  process exit.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any

from zope.component import adapter
from zope.processlifetime import IDatabaseOpenedWithRoot, IProcessStarting

from cronkit.worker import Worker

from .config import kit, set_database, settings

log = logging.getLogger("cronkit.zope")

_lock = threading.Lock()
_worker: Worker | None = None


@adapter(IDatabaseOpenedWithRoot)
def database_opened(event: Any) -> None:
    """Remember Zope's database: jobs run in it."""
    set_database(event.database)


@adapter(IProcessStarting)
def process_starting(event: Any) -> None:
    """Start the worker in this instance when the settings say so."""
    config = settings()
    if not config.worker_here():
        log.info("cronkit: no worker in instance %r (worker: %s)", config.instance,
                 config.worker)
        return
    start_worker(concurrency=config.concurrency)


def start_worker(concurrency: int | None = None) -> Worker:
    """Start the process's worker (at most one) on :func:`~cronkit.zope.kit`, and
    return it."""
    global _worker
    with _lock:
        if _worker is None:
            count = settings().concurrency if concurrency is None else concurrency
            _worker = kit().worker(concurrency=count).start()
            log.info("cronkit: worker started (%d threads)", count)
        return _worker


def worker() -> Worker | None:
    """The worker running in this process, or None."""
    return _worker


def stop_worker() -> None:
    """Stop the process's worker, if any, and wait for it."""
    global _worker
    with _lock:
        running, _worker = _worker, None
    if running is not None:
        running.stop()


atexit.register(stop_worker)
