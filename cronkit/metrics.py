"""Prometheus metrics of a kit, through ``prometheus_client`` (the ``ops`` extra).

``metrics = cronkit.metrics.enable(kit)`` starts counting, in this process, what the
kit's lifecycle does (jobs submitted, started, retried and finished, their run time and
lateness, cron firings and missed firings, store errors) and returns the kit's
:class:`Metrics`; ``metrics.registry`` is the ``prometheus_client`` registry to serve
(``cronkit web`` serves it at ``/metrics``, ``cronkit worker --metrics-port`` on a
port of its own), or ``enable(kit, registry=REGISTRY)`` puts them in an application's
registry. Gauges that describe the store (queue depth, running jobs, workers) are read
from the store when scraped, by :class:`StoreCollector`: a store that fails then is
counted (``cronkit_store_errors_total{operation="scrape"}``) and reported down
(``cronkit_store_up 0``); the scrape still answers.

Counters are per process. Several worker processes each serve their own port, or, with
``PROMETHEUS_MULTIPROC_DIR`` set in their environment (prometheus_client's
multi-process mode: required with the ``processes`` executor, whose jobs run and are
counted in child processes), every process of the host writes its counts there and a
scrape of any of them sums them all.

Nothing is counted until ``enable`` is called: the lifecycle's hooks cost one attribute
test per job then.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .exceptions import CronkitError, StoreError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from .jobs import Job
    from .kit import Cronkit

#: What to install when prometheus_client is missing.
OPS_EXTRA = "pip install 'cronkit[ops]'"

#: Run time of a job, in seconds: from 5 ms to an hour.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
#: Lateness of a start (started_at - run_after), in seconds: from 1 ms to an hour.
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 300.0, 900.0, 3600.0)
#: The most sites a scrape reads the queue of one by one; beyond, one total (site "*").
MAX_SITES = 200
#: Job statuses whose counts are the queue depth.
QUEUE_STATUSES = ("pending", "running")
#: Worker states that count as alive (a stopped worker is history, a lost one is not alive).
ALIVE_STATES = ("running", "paused", "draining")


def prometheus() -> Any:
    """The prometheus_client module, or CronkitError naming the extra to install."""
    try:
        import prometheus_client
    except ImportError:
        raise CronkitError(f"metrics need prometheus_client: {OPS_EXTRA}") from None
    return prometheus_client


def multiprocess_dir() -> str | None:
    """The folder of prometheus_client's multi-process mode, when it is on."""
    return (os.environ.get("PROMETHEUS_MULTIPROC_DIR")
            or os.environ.get("prometheus_multiproc_dir") or None)


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return max(0.0, (later - earlier).total_seconds())


class _TypeTally:
    """An iterable of job rows that counts them by type as the store reads them (a
    generator's rows are never held)."""

    def __init__(self, rows: Iterable[dict]):
        self.rows = rows
        self.types: Tally[str] = Tally()

    def __iter__(self) -> Iterator[dict]:
        types = self.types
        for row in self.rows:
            types[row["type"]] += 1
            yield row


class Metrics:
    """The metrics of one kit in this process (see the module docstring).

    The lifecycle calls the hooks (``queued``, ``started``, ``retried``, ``finished``,
    ``fired``); the store's methods report their errors to ``store_error``. Each
    labelled child is looked up once and kept: a hook costs a dict look-up and an
    increment."""

    def __init__(self, kit: Cronkit, registry: CollectorRegistry | None = None,
                 per_cron: bool = True):
        pc = prometheus()
        self.kit = kit
        self.per_cron = per_cron
        shared = multiprocess_dir()
        if shared is not None:      # the counts live in files; the registry reads them all
            from prometheus_client import multiprocess
            home: CollectorRegistry | None = None
            self.registry = registry if registry is not None else pc.CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry, path=shared)
        else:
            self.registry = home = registry if registry is not None else pc.CollectorRegistry()
        # The store's gauges first: an error of the scrape is counted before the
        # counters are read, in the scrape that saw it.
        self.collector = StoreCollector(kit, self)
        self.registry.register(self.collector)
        c, h = pc.Counter, pc.Histogram
        self.submitted = c("cronkit_jobs_submitted", "Jobs queued (cron firings too).",
                           ["site", "type"], registry=home)
        self.started_ = c("cronkit_jobs_started", "Job attempts started.",
                          ["site", "type"], registry=home)
        self.retried_ = c("cronkit_jobs_retried", "Job attempts that failed or were lost "
                          "and are retried.", ["site", "type"], registry=home)
        self.finished_ = c("cronkit_jobs_finished", "Jobs ended, by final status (success, "
                           "failed, canceled).", ["site", "type", "status"], registry=home)
        self.duration = h("cronkit_job_duration_seconds", "Run time of the jobs that "
                          "ended after they started (start to end).", ["type"],
                          buckets=DURATION_BUCKETS, registry=home)
        self.lateness = h("cronkit_job_lateness_seconds", "How late a job attempt started "
                          "after it was due (started_at - run_after).", ["type"],
                          buckets=LATENESS_BUCKETS, registry=home)
        self.firings = c("cronkit_cron_firings", "Cron firings ended, by the status of "
                         "their Log (OK, WARN, FAILURE, NOTRUN).", ["site", "cron", "status"],
                         registry=home)
        self.missed = c("cronkit_cron_missed_firings", "Cron firings that did not run "
                        "because they were missed (misfire policy or grace).",
                        ["site", "cron"], registry=home)
        self.store_errors = c("cronkit_store_errors", "Store operations that failed "
                              "(StoreError), by operation.", ["operation"], registry=home)
        self._children: dict[tuple, Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- the lifecycle's hooks ------------------------------------------------------

    def tally(self, rows: Iterable[dict]) -> Iterable[dict]:
        """``rows`` (about to be queued) as they will be counted by ``queued``."""
        return rows if isinstance(rows, list) else _TypeTally(rows)

    def queued(self, site: str, rows: Iterable[dict], ids: list[int]) -> None:
        """``ids`` were queued from ``rows`` (what ``tally`` gave)."""
        types = rows.types if isinstance(rows, _TypeTally) else Tally(r["type"] for r in rows)
        if sum(types.values()) != len(ids):     # duplicates left out: ask the store
            types = Tally(self.kit.store.get_job(i)["type"] for i in ids)
        for type_, n in types.items():
            self._child(self.submitted, site, type_).inc(n)

    def queued_one(self, site: str, type_: str) -> None:
        self._child(self.submitted, site, type_).inc()

    def started(self, job: Job) -> None:
        type_ = job.type
        self._child(self.started_, job.site.name, type_).inc()
        late = _seconds(job.started_at or self.kit.clock.now(), job.run_after)
        if late is not None:
            self._child(self.lateness, type_).observe(late)

    def retried(self, job: Job) -> None:
        self._child(self.retried_, job.site.name, job.type).inc()

    def finished(self, job: Job) -> None:
        type_ = job.type
        self._child(self.finished_, job.site.name, type_, str(job.status)).inc()
        took = _seconds(job.finished_at, job.started_at)
        if took is not None:
            self._child(self.duration, type_).observe(took)

    def fired(self, site: str, cron_uid: str, status: str, missed: int = 0) -> None:
        """A firing of ``cron_uid`` ended with a Log of ``status``; ``missed`` firings
        did not run (the firing itself when skipped as missed, those its Log counts)."""
        cron = cron_uid if self.per_cron else ""
        self._child(self.firings, site, cron, str(status)).inc()
        if missed:
            self._child(self.missed, site, cron).inc(missed)

    def store_error(self, operation: str) -> None:
        self._child(self.store_errors, operation).inc()


class StoreCollector:
    """The gauges read from the store at each scrape (a few counts: bounded by
    ``MAX_SITES``). A store that fails is counted and reported down; the scrape
    answers."""

    def __init__(self, kit: Cronkit, metrics: Metrics):
        self.kit = kit
        self.metrics = metrics
        #: How long a scrape waits for the store (a lost PostgreSQL is retried longer).
        self.timeout = 5.0
        self._lock = threading.Lock()

    def _families(self) -> dict[str, Any]:
        from prometheus_client.core import GaugeMetricFamily
        return {
            "queue": GaugeMetricFamily("cronkit_queue_jobs", "Jobs in the queue, by site "
                                       "and status (pending, running).",
                                       labels=["site", "status"]),
            "running": GaugeMetricFamily("cronkit_jobs_running", "Jobs running now, by "
                                         "site and type.", labels=["site", "type"]),
            "workers": GaugeMetricFamily("cronkit_workers", "Workers registered in the "
                                         "store, by state (running, paused, draining, "
                                         "lost); cronkit_workers_alive sums the alive.",
                                         labels=["state"]),
            "alive": GaugeMetricFamily("cronkit_workers_alive", "Workers heartbeating "
                                       "(not stopped, not lost)."),
            "up": GaugeMetricFamily("cronkit_store_up", "1 if the store answered this "
                                    "scrape, else 0."),
        }

    def describe(self) -> list[Metric]:
        return list(self._families().values())

    def collect(self) -> list[Metric]:
        families = self._families()
        up = families.pop("up")
        with self._lock:      # one scrape reads the store at a time
            ok = _bounded(lambda: self._read(families), self.timeout)
        if not ok:
            self.metrics.store_error("scrape")
        up.add_metric([], 1 if ok else 0)
        return [*families.values(), up] if ok else [up]

    def _read(self, families: dict[str, Any]) -> None:
        store = self.kit.store
        store.check()         # a SQLite file deleted or replaced: down
        sites = self.kit.site_names()
        per_site = sites if len(sites) <= MAX_SITES else [None]
        for site in per_site:
            for status in QUEUE_STATUSES:
                families["queue"].add_metric([site or "*", status],
                                             store.count_jobs(site=site, status=status))
        running = Tally((r["site"], r["type"]) for r in store.running_jobs())
        for (site, type_), n in sorted(running.items()):
            families["running"].add_metric([site, type_], n)
        states = worker_states(self.kit)
        for state in (*ALIVE_STATES, "lost"):
            families["workers"].add_metric([state], states.get(state, 0))
        families["alive"].add_metric([], sum(states.get(s, 0) for s in ALIVE_STATES))


def worker_states(kit: Cronkit, now: datetime | None = None) -> Tally[str]:
    """How many workers of the store are in each state; one that is not stopped and has
    not heartbeated for ``kit.error_timeout`` seconds is "lost"."""
    from .workers import worker_status
    now = now or kit.clock.now()
    states: Tally[str] = Tally()
    for row in kit.store.list_workers():
        state = worker_status(row, now, kit.error_timeout)
        if state != "stopped":
            states[state] += 1
    return states


def _bounded(read: Callable[[], object], timeout: float) -> bool:
    """Run ``read`` in a thread of its own; whether it ended without error within
    ``timeout`` seconds (a store being retried is left to end on its own)."""
    done = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            read()
        except Exception as exc:
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="cronkit-metrics-scrape").start()
    return done.wait(timeout) and not failed


# -- the store's errors -------------------------------------------------------------


def _counting(method: Callable[..., Any], name: str, metrics: Metrics) -> Callable[..., Any]:
    @functools.wraps(method)
    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except StoreError as exc:
            if not getattr(exc, "_cronkit_counted", False):   # once, where it left the store
                try:
                    exc._cronkit_counted = True  # type: ignore[attr-defined]
                except AttributeError:  # pragma: no cover - a StoreError with __slots__
                    pass
                metrics.store_error(name)
            raise
    counted._cronkit_counting = True  # type: ignore[attr-defined]
    return counted


def _store_operations() -> list[str]:
    from .interfaces import IStore
    return sorted(n for n in IStore.names(all=True) if not n.startswith("_"))


def _count_store_errors(kit: Cronkit, metrics: Metrics) -> None:
    store = kit.store
    for name in _store_operations():
        method = getattr(store, name, None)
        if callable(method) and not getattr(method, "_cronkit_counting", False):
            setattr(store, name, _counting(method, name, metrics))


def _stop_counting_store_errors(kit: Cronkit) -> None:
    store = kit.store
    for name in _store_operations():
        if getattr(store.__dict__.get(name), "_cronkit_counting", False):
            delattr(store, name)


# -- the public functions -----------------------------------------------------------


def enable(kit: Cronkit, registry: CollectorRegistry | None = None,
           per_cron: bool = True) -> Metrics:
    """Count ``kit``'s jobs in this process from now on; return its :class:`Metrics`
    (the same one when called again). ``registry``: a prometheus_client registry to put
    them in (default: a registry of the kit's own, ``metrics.registry``). ``per_cron``
    False leaves the cron uid out of the firing counters (label ``cron`` empty), for
    sites with very many crons. CronkitError without prometheus_client, or when
    enabled already into another registry."""
    current: Metrics | None = kit.lifecycle.metrics
    if current is not None:
        if registry is not None and registry is not current.registry:
            raise CronkitError("metrics are enabled for this kit already, in another "
                               "registry: call cronkit.metrics.disable(kit) first")
        return current
    metrics = Metrics(kit, registry, per_cron=per_cron)
    _count_store_errors(kit, metrics)
    kit.lifecycle.metrics = metrics
    return metrics


def disable(kit: Cronkit) -> None:
    """Stop counting ``kit``'s jobs; its collector leaves its registry."""
    metrics: Metrics | None = kit.lifecycle.metrics
    if metrics is None:
        return
    kit.lifecycle.metrics = None
    _stop_counting_store_errors(kit)
    for metric in (metrics.collector, metrics.submitted, metrics.started_, metrics.retried_,
                   metrics.finished_, metrics.duration, metrics.lateness, metrics.firings,
                   metrics.missed, metrics.store_errors):
        try:
            metrics.registry.unregister(metric)
        except KeyError:       # multi-process mode: the counters live in files
            pass


def metrics_of(kit: Cronkit) -> Metrics | None:
    """``kit``'s Metrics when enabled, else None."""
    return kit.lifecycle.metrics


def exposition(kit: Cronkit) -> tuple[bytes, str]:
    """The text of a scrape of ``kit``'s metrics (enabled if they were not) and its
    content type."""
    pc = prometheus()
    return pc.generate_latest(enable(kit).registry), pc.CONTENT_TYPE_LATEST
