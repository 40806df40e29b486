"""OpenTelemetry traces of jobs (the ``otel`` extra: ``opentelemetry-api``,
``opentelemetry-sdk``).

Two spans per job, off unless configured:

- ``cronkit.submit`` (kind PRODUCER), around the insert of a submission (one job, a
  ``submit_many`` batch, or the firings a crontab's sync queues), child of the span
  current where it was submitted. Its W3C ``traceparent`` is stored in each row it
  inserts (the jobs' ``trace`` column).
- ``cronkit.run`` (kind CONSUMER), one per attempt, in whichever process runs it (a
  worker's thread, the processes executor's child, a Celery worker: each reads the job
  row), child of that ``traceparent``. Its attributes (``ATTRIBUTES``) name the site,
  job id, type, cron uid, attempt and how the attempt ended (``cronkit.job.status``:
  success, failed, canceled or retried); a failure also sets the span's status to
  ERROR and records the exception.

Tracing is on after :func:`enable` (with a tracer provider, or the global one), or when
a global tracer provider is set (``opentelemetry.trace.set_tracer_provider``, or
``opentelemetry-instrument``), or when the standard environment asks for an exporter
(``OTEL_TRACES_EXPORTER``: ``console``, ``otlp``... as the SDK reads it; also
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``): then a tracer provider is built
from it in each process that runs jobs, a spawned child and a Celery worker too.
Without OpenTelemetry, or with none of these, each job costs a check and nothing else.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from .exceptions import CronkitError

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from .jobs import Job

log = logging.getLogger(__name__)

#: The span attributes of a job (``cronkit.cron.uid`` only for a cron's firing).
ATTRIBUTES = ("cronkit.site", "cronkit.job.id", "cronkit.job.type", "cronkit.cron.uid",
              "cronkit.job.attempt", "cronkit.job.status")
#: The names of the two spans.
SUBMIT, RUN = "cronkit.submit", "cronkit.run"
#: The longest traceparent the jobs' ``trace`` column holds.
MAX_TRACE = 200
#: What the error says without OpenTelemetry.
MISSING = "traces need OpenTelemetry: pip install 'cronkit[otel]'"


class _State:
    #: "on" (enable), "off" (disable), or None: on when a global tracer provider is set.
    mode: str | None = None
    tracer: Tracer | None = None
    #: The global provider the cached tracer came from (mode None).
    provider: Any = None
    #: Whether the OTEL_* environment was looked at (once per process).
    environ_read = False


_state = _State()
#: ``opentelemetry.trace`` and the W3C propagator, once imported (see ``_api``).
_trace: Any = None
_propagator: Any = None


def _api() -> Any:
    """``opentelemetry.trace``, imported on first need; None when it is not installed."""
    global _trace, _propagator
    if _trace is None:
        try:
            from opentelemetry import trace
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )
        except ImportError:  # pragma: no cover - the otel extra is installed by the test extra
            return None
        _propagator = TraceContextTextMapPropagator()
        _trace = trace
    return _trace


def _environ_asks() -> bool:
    """Whether the environment configures OpenTelemetry (an exporter or a provider)."""
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    return exporters not in ("", "none") or "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


def _version() -> str:
    from . import __version__
    return __version__


def enable(tracer_provider: TracerProvider | None = None) -> None:
    """Trace jobs with ``tracer_provider`` (by default the global one, or one built
    from the OTEL_* environment when none is set). CronkitError without OpenTelemetry."""
    api = _api()
    if api is None:     # pragma: no cover - the otel extra is installed by the test extra
        raise CronkitError(MISSING)
    provider = tracer_provider
    if provider is None:
        provider = api.get_tracer_provider()
        if _unset(provider):
            provider = from_environment() or provider
    _state.mode, _state.provider = "on", provider
    _state.tracer = provider.get_tracer("cronkit", _version())


def disable() -> None:
    """Trace no job, whatever tracer provider is set (until :func:`enable`)."""
    _state.mode, _state.tracer, _state.provider = "off", None, None


def reset() -> None:
    """Forget :func:`enable` and :func:`disable`: on only when a global tracer
    provider is set (or the environment asks for an exporter)."""
    _state.mode, _state.tracer, _state.provider = None, None, None


def _unset(provider: Any) -> bool:
    return isinstance(provider, (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider))


def tracer() -> Tracer | None:
    """The tracer of cronkit's spans, or None when tracing is off (a check only:
    OpenTelemetry is not even imported until someone imports it or the environment
    configures it)."""
    if _state.mode is not None:
        return _state.tracer
    api = _trace
    if api is None:
        if "opentelemetry.trace" not in sys.modules and (
                _state.environ_read or not _environ_asks()):
            _state.environ_read = True
            return None
        api = _api()
        if api is None:   # pragma: no cover - the otel extra is installed by the test extra
            return None
    provider = api.get_tracer_provider()
    if _unset(provider):
        if _state.environ_read:
            return None
        _state.environ_read = True
        built = from_environment()
        if built is None:
            return None
        enable(built)
        return _state.tracer
    if provider is not _state.provider:
        _state.provider, _state.tracer = provider, provider.get_tracer("cronkit", _version())
    return _state.tracer


def from_environment() -> TracerProvider | None:
    """A tracer provider with the exporters ``OTEL_TRACES_EXPORTER`` names (each with
    a batch span processor; ``OTEL_SERVICE_NAME`` defaults to "cronkit"), or None
    when it names none (unset, or "none") or the SDK is not installed. CronkitError
    for an exporter that is not installed."""
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [n for n in names if n and n != "none"]
    if not names or _api() is None:
        return None
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:    # pragma: no cover - the otel extra installs the SDK
        return None
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: "cronkit"}
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in names:
        found = list(entry_points(group="opentelemetry_traces_exporter", name=name))
        if not found:
            raise CronkitError(f"OTEL_TRACES_EXPORTER names {name!r}: no such span "
                               "exporter is installed")
        provider.add_span_processor(BatchSpanProcessor(found[0].load()()))
    return provider


def flush(timeout: float = 5.0) -> None:
    """Export the spans still held (a child process calls it before it exits); an
    exporter's error is logged, never raised."""
    provider = _state.provider
    force_flush = getattr(provider, "force_flush", None)
    if _state.tracer is None or force_flush is None:
        return
    try:
        force_flush(int(timeout * 1000))
    except Exception:  # pragma: no cover - an exporter's own failure
        log.exception("exporting the last spans failed")


# -- the spans ----------------------------------------------------------------------------

@contextmanager
def submitting(tracer: Tracer, site_name: str) -> Iterator[tuple[Span, str | None]]:
    """The submission span (current inside), and its traceparent."""
    with tracer.start_as_current_span(SUBMIT, kind=_trace.SpanKind.PRODUCER, attributes={
            "cronkit.site": site_name, "messaging.system": "cronkit",
            "messaging.operation.type": "send"}) as span:
        carrier: dict[str, str] = {}
        assert _propagator is not None
        _propagator.inject(carrier)
        text = carrier.get("traceparent")
        yield span, text if text is not None and len(text) <= MAX_TRACE else None


def with_trace(rows: Iterable[dict], traceparent: str | None) -> Iterable[dict]:
    """``rows`` with their ``trace`` set (a list stays a list; an iterable is mapped
    as it is read)."""
    if traceparent is None:    # pragma: no cover - a span without a valid context
        return rows
    if isinstance(rows, list):
        for row in rows:
            row["trace"] = traceparent
        return rows
    return (dict(row, trace=traceparent) for row in rows)


def submitted(span: Span, ids: list[int]) -> None:
    """Name what the submission span queued."""
    span.set_attribute("cronkit.jobs", len(ids))
    if len(ids) == 1:
        span.set_attribute("cronkit.job.id", ids[0])
        span.set_attribute("messaging.message.id", str(ids[0]))


def run_started(job: Job, row: Any) -> Span | None:
    """The run span of ``job``'s attempt (its parent the ``trace`` of ``row``, the job's
    row), started; None when tracing is off."""
    tracer_ = tracer()
    if tracer_ is None:
        return None
    trace = row.get("trace") if isinstance(row, dict) else getattr(row, "trace", None)
    parent = None
    if trace:
        assert _propagator is not None
        parent = _propagator.extract({"traceparent": trace})
    attributes: dict[str, Any] = {
        "cronkit.site": job.site.name, "cronkit.job.id": job.id, "cronkit.job.type": job.type,
        "cronkit.job.attempt": job.attempts or 1, "messaging.system": "cronkit",
        "messaging.operation.type": "process", "messaging.message.id": str(job.id)}
    if job.cron_uid is not None:
        attributes["cronkit.cron.uid"] = job.cron_uid
    return tracer_.start_span(RUN, context=parent, kind=_trace.SpanKind.CONSUMER,
                              attributes=attributes)


def run_ended(span: Span | None, status: str, error: BaseException | str | None = None) -> None:
    """End the run span: how the attempt ended (``status``: success, failed, canceled,
    retried), and a failure's error."""
    if span is None:
        return
    span.set_attribute("cronkit.job.status", str(status))
    if error is not None:
        if isinstance(error, BaseException):
            span.record_exception(error)
        description = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if str(status) == "failed":
            span.set_status(_trace.Status(_trace.StatusCode.ERROR, description))
        else:
            span.set_attribute("cronkit.job.reason", description)
    span.end()
