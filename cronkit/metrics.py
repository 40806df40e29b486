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
from bisect import bisect_left
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


#: The counters: name (without ``_total``) -> (help, labels).
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "cronkit_jobs_submitted": ("Jobs queued (cron firings too).", ("site", "type")),
    "cronkit_jobs_started": ("Job attempts started.", ("site", "type")),
    "cronkit_jobs_retried": ("Job attempts that failed or were lost and are retried.",
                             ("site", "type")),
    "cronkit_jobs_finished": ("Jobs ended, by final status (success, failed, canceled).",
                              ("site", "type", "status")),
    "cronkit_cron_firings": ("Cron firings ended, by the status of their Log (OK, WARN, "
                             "FAILURE, NOTRUN).", ("site", "cron", "status")),
    "cronkit_cron_missed_firings": ("Cron firings that did not run because they were "
                                    "missed (misfire policy or grace).", ("site", "cron")),
    "cronkit_store_errors": ("Store operations that failed (StoreError), by operation.",
                             ("operation",)),
}
#: The histograms: name -> (help, labels, buckets).
HISTOGRAMS: dict[str, tuple[str, tuple[str, ...], tuple[float, ...]]] = {
    "cronkit_job_duration_seconds": ("Run time of the jobs that ended after they started "
                                     "(start to end).", ("type",), DURATION_BUCKETS),
    "cronkit_job_lateness_seconds": ("How late a job attempt started after it was due "
                                     "(started_at - run_after).", ("type",),
                                     LATENESS_BUCKETS),
}


class _LocalCounts:
    """The counts of this process in plain dicts under one lock: an increment costs a
    fraction of a microsecond (prometheus_client's own objects cost several); exposed
    at scrape as counter and histogram families."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[tuple[str, ...], float]] = {n: {} for n in COUNTERS}
        #: name -> labels -> [count per bucket (the last: above every bound), sum]
        self._hists: dict[str, dict[tuple[str, ...], list]] = {n: {} for n in HISTOGRAMS}

    def inc(self, name: str, labels: tuple[str, ...], n: float = 1) -> None:
        counts = self._counts[name]
        with self._lock:
            counts[labels] = counts.get(labels, 0.0) + n

    def observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        bounds = HISTOGRAMS[name][2]
        index = bisect_left(bounds, value)          # the first bound >= value (le)
        hists = self._hists[name]
        with self._lock:
            found = hists.get(labels)
            if found is None:
                found = hists[labels] = [[0] * (len(bounds) + 1), 0.0]
            found[0][index] += 1
            found[1] += value

    def describe(self) -> list[Metric]:
        return self._families(False)

    def collect(self) -> list[Metric]:
        return self._families(True)

    def _families(self, filled: bool) -> list[Metric]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString
        with self._lock:
            counts = {n: dict(c) for n, c in self._counts.items()} if filled else {}
            hists = {n: {k: (list(v[0]), v[1]) for k, v in h.items()}
                     for n, h in self._hists.items()} if filled else {}
        out: list[Metric] = []
        for name, (text, labels) in COUNTERS.items():
            counter = CounterMetricFamily(name, text, labels=list(labels))
            for key, value in sorted(counts.get(name, {}).items()):
                counter.add_metric(list(key), value)
            out.append(counter)
        for name, (text, labels, bounds) in HISTOGRAMS.items():
            hist = HistogramMetricFamily(name, text, labels=list(labels))
            for key, (buckets, total) in sorted(hists.get(name, {}).items()):
                cumulative, running = [], 0
                for bound, n in zip((*map(floatToGoString, bounds), "+Inf"), buckets,
                                    strict=True):
                    running += n
                    cumulative.append((bound, running))
                hist.add_metric(list(key), cumulative, total)
            out.append(hist)
        return out


class _SharedCounts:
    """The counts in prometheus_client's own objects, for its multi-process mode (their
    values live in the shared folder's files, which the registry's collector reads)."""

    def __init__(self) -> None:
        import prometheus_client as pc
        self._metrics: dict[str, Any] = {}
        for name, (text, labels) in COUNTERS.items():
            self._metrics[name] = pc.Counter(name, text, list(labels), registry=None)
        for name, (text, labels, bounds) in HISTOGRAMS.items():
            self._metrics[name] = pc.Histogram(name, text, list(labels), buckets=bounds,
                                               registry=None)
        self._children: dict[tuple, Any] = {}

    def _child(self, name: str, labels: tuple[str, ...]) -> Any:
        key = (name, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metrics[name].labels(*labels)
        return child

    def inc(self, name: str, labels: tuple[str, ...], n: float = 1) -> None:
        self._child(name, labels).inc(n)

    def observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        self._child(name, labels).observe(value)


class Metrics:
    """The metrics of one kit in this process (see the module docstring).

    The lifecycle calls the hooks (``queued``, ``started``, ``retried``, ``finished``,
    ``fired``); the store's methods report their errors to ``store_error``. A hook
    costs a dict update under a lock (about a microsecond per job event)."""

    def __init__(self, kit: Cronkit, registry: CollectorRegistry | None = None,
                 per_cron: bool = True):
        pc = prometheus()
        self.kit = kit
        self.per_cron = per_cron
        self.registry = registry if registry is not None else pc.CollectorRegistry()
        # The store's gauges first: an error of the scrape is counted before the
        # counters are read, in the scrape that saw it.
        self.collector = StoreCollector(kit, self)
        self.registry.register(self.collector)
        #: What collects the counts, in the registry (for disable).
        self.collectors: list[Any] = [self.collector]
        shared = multiprocess_dir()
        self.counts: _LocalCounts | _SharedCounts
        if shared is not None:     # the counts live in files; the registry reads them all
            from prometheus_client import multiprocess
            self.counts = _SharedCounts()
            reader = multiprocess.MultiProcessCollector(None, path=shared)
            self.registry.register(reader)
            self.collectors.append(reader)
        else:
            self.counts = _LocalCounts()
            self.registry.register(self.counts)
            self.collectors.append(self.counts)

    # -- the lifecycle's hooks ------------------------------------------------------

    def tally(self, rows: Iterable[dict]) -> Iterable[dict]:
        """``rows`` (about to be queued) as they will be counted by ``queued``."""
        return rows if isinstance(rows, list) else _TypeTally(rows)

    def queued(self, site: str, rows: Iterable[dict], ids: list[int]) -> None:
        """``ids`` were queued from ``rows`` (what ``tally`` gave)."""
        if isinstance(rows, list) and len(rows) == 1 == len(ids):    # the common case
            self.counts.inc("cronkit_jobs_submitted", (site, rows[0]["type"]))
            return
        types = rows.types if isinstance(rows, _TypeTally) else Tally(r["type"] for r in rows)
        if sum(types.values()) != len(ids):     # duplicates left out: ask the store
            types = Tally(self.kit.store.get_job(i)["type"] for i in ids)
        for type_, n in types.items():
            self.counts.inc("cronkit_jobs_submitted", (site, type_), n)

    def queued_one(self, site: str, type_: str) -> None:
        self.counts.inc("cronkit_jobs_submitted", (site, type_))

    def started(self, job: Job) -> None:
        type_ = job.type
        self.counts.inc("cronkit_jobs_started", (job.site.name, type_))
        late = _seconds(job.started_at or self.kit.clock.now(), job.run_after)
        if late is not None:
            self.counts.observe("cronkit_job_lateness_seconds", (type_,), late)

    def retried(self, job: Job) -> None:
        self.counts.inc("cronkit_jobs_retried", (job.site.name, job.type))

    def finished(self, job: Job) -> None:
        type_ = job.type
        self.counts.inc("cronkit_jobs_finished", (job.site.name, type_, str(job.status)))
        took = _seconds(job.finished_at, job.started_at)
        if took is not None:
            self.counts.observe("cronkit_job_duration_seconds", (type_,), took)

    def fired(self, site: str, cron_uid: str, status: str, missed: int = 0) -> None:
        """A firing of ``cron_uid`` ended with a Log of ``status``; ``missed`` firings
        did not run (the firing itself when skipped as missed, those its Log counts)."""
        cron = cron_uid if self.per_cron else ""
        self.counts.inc("cronkit_cron_firings", (site, cron, str(status)))
        if missed:
            self.counts.inc("cronkit_cron_missed_firings", (site, cron), missed)

    def store_error(self, operation: str) -> None:
        self.counts.inc("cronkit_store_errors", (operation,))


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
    for collector in metrics.collectors:
        metrics.registry.unregister(collector)


def metrics_of(kit: Cronkit) -> Metrics | None:
    """``kit``'s Metrics when enabled, else None."""
    return kit.lifecycle.metrics


def exposition(kit: Cronkit) -> tuple[bytes, str]:
    """The text of a scrape of ``kit``'s metrics (enabled if they were not) and its
    content type."""
    pc = prometheus()
    return pc.generate_latest(enable(kit).registry), pc.CONTENT_TYPE_LATEST
