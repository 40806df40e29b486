"""Cronkit: the kit that holds the store, the clock, the executor choice and the sites."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from zope.component import getGlobalSiteManager
from zope.interface.registry import Components

from .clock import Clock, SystemClock
from .components import JobLifecycle, register_components
from .events import ServerRestartEvent, notify
from .exceptions import CronkitError
from .interfaces import IClock, IJobLifecycle
from .jobs import Job
from .model.validation import shown, text_problem
from .site import Site
from .stores import open_store
from .stores.base import Store

#: The longest site name a store holds (its column).
MAX_SITE_NAME = 200


class Cronkit:
    """Entry point of the library. It never starts threads or runs jobs by itself: a
    worker (``kit.worker()``, ``cronkit worker``) or ``run_pending()`` does."""

    def __init__(self, store: str | Store | None = None, executor: str = "threads",
                 clock: Clock | None = None,
                 profile: str | None = None, error_timeout: float = 60.0,
                 backlog_days: float = 30, all_backlog_days: float = 60):
        self.clock = clock or SystemClock()
        self.store = open_store(store) if store is None or isinstance(store, str) else store
        self.executor = executor
        self.error_timeout = float(error_timeout)
        self.backlog_days = backlog_days
        self.all_backlog_days = all_backlog_days
        self.registry = Components("cronkit", bases=(getGlobalSiteManager(),))
        self.registry.registerUtility(self.clock, IClock)
        register_components(self.registry)
        #: The one owner of every job's life (IJobLifecycle).
        self.lifecycle = JobLifecycle(self)
        self.registry.registerUtility(self.lifecycle, IJobLifecycle)
        self._sites: dict[str, Site] = {}
        self._lock = threading.Lock()
        self._wakers: list = []
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.clock.add_listener(self.wake)
        if profile is not None:
            self.load_profile(profile)

    def __repr__(self) -> str:
        return f"<Cronkit store={getattr(self.store, 'url', self.store)!r}>"

    def site(self, name: str = "default", timezone: str | None = None) -> Site:
        """Get or create the site ``name``; a name no store can hold raises CronkitError."""
        site = self._sites.get(name) if isinstance(name, str) else None
        if site is not None and timezone is None:
            return site
        if not isinstance(name, str) or not name.strip():
            raise CronkitError(f"a site needs a non-empty name, got {name!r}")
        problem = text_problem(name)
        if problem is not None or len(name) > MAX_SITE_NAME:
            raise CronkitError(f"invalid site name {shown(name)}: "
                               f"{problem or f'over {MAX_SITE_NAME} characters'}")
        with self._lock:
            site = self._sites.get(name)
            if site is None:
                site = self._sites[name] = Site(self, name, timezone or "UTC")
            elif timezone is not None:
                site.timezone = timezone
            return site

    def site_names(self) -> list[str]:
        """The names of every site known to the store (and to this kit), sorted; no
        site is created."""
        return sorted({row["name"] for row in self.store.sites()} | set(self._sites))

    def sites(self) -> list[Site]:
        """Every site known to the store (and to this kit)."""
        return [self.site(n) for n in self.site_names()]

    def open_sites(self) -> list[Site]:
        """The sites this kit has made (those that may hold runners of their own); no
        store read, none created."""
        return list(self._sites.values())

    # -- profiles ---------------------------------------------------------------

    def load_profile(self, path: str) -> None:
        """Load a ZCML profile (runners, crontabs, subscribers) into this kit."""
        from .profiles.zcml import load_profile
        load_profile(self, path)

    # -- running ----------------------------------------------------------------

    def wake(self) -> None:
        """Tell sleeping workers of this process that something changed."""
        for fn in list(self._wakers):
            fn()

    def restore(self) -> None:
        """ServerRestartEvent for every marked site: cron jobs wiped from the queue come back."""
        for name in self.store.marked_sites():
            notify(ServerRestartEvent(site=self.site(name)))

    def execute(self, row: dict, debug: bool = False,
                written: Callable[[], None] | None = None) -> Job:
        """Run one claimed job row to its end in the calling thread (see
        IJobLifecycle.execute; ``written``: an executor's, whose jobs' ends may be
        written in batches)."""
        return self.lifecycle.execute(row, debug=debug, written=written)

    def run_pending(self) -> list[Job]:
        """Run every due job now, one at a time in this thread, in claim order."""
        self.reap()
        done: list[Job] = []
        while True:
            rows = self.lifecycle.claim(self.clock.now(), 1)
            if not rows:
                return done
            done.append(self.lifecycle.execute(rows[0]))

    def reap(self, now: datetime | None = None) -> list[int]:
        """Fail (or retry) RUNNING jobs whose worker is gone: no heartbeat for
        ``error_timeout`` seconds before ``now`` (default: the clock's), or a worker
        process of this host that no longer exists. Their crons are rescheduled. Return
        the ids handled."""
        return self.lifecycle.reap(now)

    def cleanup(self, backlog_days: float | None = None, all_backlog_days: float | None = None,
                now: datetime | None = None) -> int:
        """Delete finished jobs past retention (0 keeps forever), counted back from
        ``now`` (default: the clock's); return how many."""
        ok = self.backlog_days if backlog_days is None else backlog_days
        every = self.all_backlog_days if all_backlog_days is None else all_backlog_days
        now = now or self.clock.now()
        return self.store.cleanup(now - timedelta(days=ok) if ok else None,
                                  now - timedelta(days=every) if every else None)

    def force_cancel(self, job: Job) -> bool:
        """Kill the process running ``job`` if it runs on this host in its own process,
        and end it CANCELED (see IJobLifecycle.kill)."""
        return self.lifecycle.kill(job)

    def worker(self, concurrency: int = 6, executor: str | None = None, **options: Any):
        """A worker for this kit (not started)."""
        from .worker import Worker
        return Worker(self, concurrency=concurrency, executor=executor or self.executor, **options)

    def close(self) -> None:
        self.store.close()
