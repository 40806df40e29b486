"""Jobs: statuses, parameter formats, and the Job object runners work with."""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from zope.interface import implementer

from .exceptions import CronkitError, InvalidParameters
from .interfaces import IJob
from .model.validation import json_problem, shown, storable_text

if TYPE_CHECKING:
    from .model import Cron
    from .site import Site

log = logging.getLogger("cronkit.jobs")


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"


FINISHED = frozenset({Status.SUCCESS, Status.FAILED, Status.CANCELED})
PARAM_TYPES = ("bool", "int", "select", "string")


@dataclass(frozen=True)
class Param:
    """One field of a runner's parameter format (COmanage Registry's job parameters)."""

    type: str
    required: bool = False
    choices: tuple | list | None = None
    help: str = ""
    default: Any = None

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise CronkitError(f"invalid Param type {self.type!r}: expected one of {', '.join(PARAM_TYPES)}")
        if self.type == "select" and not self.choices:
            raise CronkitError("a select Param needs choices")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))

    def check(self, value: Any) -> str | None:
        """Return what is wrong with ``value``, or None."""
        if self.type == "bool" and not isinstance(value, bool):
            return f"expected true or false, got {shown(value)}"
        if self.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            return f"expected an integer, got {shown(value)}"
        if self.type in ("string", "select") and not isinstance(value, str):
            return f"expected a string, got {shown(value)}"
        if self.choices is not None and value not in self.choices:
            return f"{shown(value)} is not one of {', '.join(map(repr, self.choices))}"
        return None

    def coerce(self, text: str) -> Any:
        """Read a value typed by a person (CLI ``--param k=v``, a web form)."""
        if self.type == "bool":
            low = text.strip().lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off", ""):
                return False
            return text
        if self.type == "int":
            try:
                return int(text.strip())
            except ValueError:
                return text
        return text

    def describe(self) -> dict:
        return {"type": self.type, "required": self.required,
                "choices": list(self.choices) if self.choices else None,
                "help": self.help, "default": self.default}


def validate_payload(parameters: dict[str, Param] | None, payload: Any) -> dict:
    """Check ``payload`` against a parameter format; return it with defaults filled in.
    Every field at fault is named in one InvalidParameters.

    Whatever the format, the payload must be a JSON object the store can hold and
    give back the same (``cronkit.model.validation.json_problem``): no NaN or
    infinity, no text UTF-8 cannot encode (a lone surrogate), no nesting deeper than
    MAX_JSON_DEPTH. The field named is the payload's top-level key at fault."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise InvalidParameters(f"payload must be a JSON object, got {shown(payload)}",
                                {"payload": "expected a JSON object"})
    unstorable = json_problem(payload)
    if unstorable is not None:
        path, message = unstorable
        field = str(path[0]) if path else "payload"
        where = "".join(f"[{p!r}]" for p in path)
        raise InvalidParameters(f"invalid payload{where and ' at ' + where}: {message}",
                                {field: message})
    if not parameters:
        return payload
    errors: dict[str, str] = {}
    for key in payload:
        if key not in parameters:
            errors[key] = "unknown parameter"
    out = dict(payload)
    for key, param in parameters.items():
        if key not in payload or payload[key] is None:
            if param.required:
                errors[key] = "required"
            elif param.default is not None:
                out[key] = param.default
            continue
        problem = param.check(payload[key])
        if problem:
            errors[key] = problem
    if errors:
        detail = "; ".join(f"{k}: {v}" for k, v in errors.items())
        raise InvalidParameters(f"invalid parameters: {detail}", errors)
    return out


# -- output capture -----------------------------------------------------------

# A context variable, not a thread-local: async jobs sharing one event-loop thread each
# print into their own job (a task runs in a copy of the context it was started from).
_current: contextvars.ContextVar[Job | None] = contextvars.ContextVar("cronkit_job", default=None)


class _StdoutRouter:
    """Routes what a running job prints to that job; anything else to the real stream."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        job = _current.get()
        if job is None:
            return self._stream.write(text)
        job._output(text)
        return len(text)

    def flush(self) -> None:
        if _current.get() is None:
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


_router_lock = threading.Lock()


class capture_output:
    """Context manager: inside it, this thread's stdout (and that of the tasks started
    from it) goes to ``job``'s status_text."""

    def __init__(self, job: Job):
        self.job = job

    def __enter__(self) -> Job:
        with _router_lock:
            if not isinstance(sys.stdout, _StdoutRouter):
                sys.stdout = _StdoutRouter(sys.stdout)
        self._token = _current.set(self.job)
        return self.job

    def __exit__(self, *exc: Any) -> None:
        _current.reset(self._token)
        self.job._flush_output()


class OrderedWrites:
    """A job's store writes while its runner is a coroutine: each call returns at once,
    the writes are done one after the other, in call order, on ``pool``'s threads, so
    that the event loop never waits for a store round trip. ``wait()`` blocks until all
    are done and raises the first that failed."""

    def __init__(self, pool: Executor):
        self._pool = pool
        self._lock = threading.Lock()
        self._queue: deque[tuple[Callable[..., Any], tuple]] = deque()
        self._busy = False
        self._idle = threading.Event()
        self._idle.set()
        self.error: Exception | None = None

    def put(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            self._queue.append((fn, args))
            if self._busy:
                return
            self._busy = True
            self._idle.clear()
        self._pool.submit(self._drain)

    def _drain(self) -> None:
        # One write per turn: jobs that write without pause share the pool fairly.
        with self._lock:
            fn, args = self._queue.popleft()
        try:
            fn(*args)
        except Exception as exc:  # raised by wait(): the job fails, its run goes on
            log.warning("a job write failed: %s: %s", type(exc).__name__, exc)
            if self.error is None:
                self.error = exc
        with self._lock:
            more = bool(self._queue)
            if not more:
                self._busy = False
                self._idle.set()
        if more:
            self._pool.submit(self._drain)

    def wait(self) -> None:
        self._idle.wait()
        if self.error is not None:
            raise self.error


# -- the Job ------------------------------------------------------------------

_ROW_FIELDS = ("id", "type", "name", "priority", "payload", "run_after", "cron_uid", "fire_at",
               "progress", "status_text", "message", "pid", "worker", "heartbeat", "created_at",
               "started_at", "finished_at", "user", "timeout", "attempts", "result", "after_ids")


@implementer(IJob)
class Job:
    """A job as read from the store, and the runner's handle on it.

    Data attributes are a snapshot (``refresh()`` reads them again); ``canceled`` and
    ``history`` always read the store. While an async runner runs (see
    ``cronkit.runner``), ``canceled`` is a flag refreshed in the background, and its
    writes (update, note, what it prints) are queued in order and return at once.
    """

    # The row's fields (see the store's job rows), set by ``_set``.
    id: int
    type: str
    name: str
    status: Status
    site_name: str
    priority: int
    payload: dict[str, Any]
    run_after: datetime
    cron_uid: str | None
    fire_at: datetime | None
    progress: int
    status_text: str
    message: str | None
    pid: int | None
    worker: str | None
    heartbeat: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    user: str | None
    timeout: float | None
    attempts: int
    result: Any                 # what the runner returned (JSON), once it succeeded
    after_ids: list[int] | None  # the jobs a continuation waits for
    cron: Cron | None

    def __init__(self, site: Site, row: dict, debug: bool = False):
        self.site = site
        self._store = site.kit.store
        self._clock = site.kit.clock
        self._debug = debug          # a debug run changes nothing in the store
        self._ended: tuple[Status, str | None] | None = None
        #: The end was handed to the lifecycle's writer (written in a batch, later).
        self._end_queued = False
        self._buffer = ""
        self.cron = None
        #: While an async runner runs: its queued writes, and whether a stop was asked.
        self._writes: OrderedWrites | None = None
        self._stop_asked = False
        self._set(row)

    def _set(self, row: dict) -> None:
        # The fields are plain attributes (no property among them): set in one update.
        get = row.get
        self.__dict__.update({name: get(name) for name in _ROW_FIELDS})
        self.status = Status(row["status"])
        self.site_name = row["site"]

    def refresh(self) -> Job:
        self._set(self._store.get_job(self.id))
        return self

    @property
    def canceled(self) -> bool:
        """True once a cancel was asked for this job (read from the store; for an async
        runner, the flag its watcher last read)."""
        if self._writes is not None:
            return self._stop_asked
        return self._store.is_canceled(self.id)

    @property
    def history(self) -> list[dict]:
        """Job History records, oldest first: {date, status, comment}."""
        return self._store.history(self.id)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    # -- runner side ------------------------------------------------------------

    def update(self, progress: int | float | None = None, text: str | None = None) -> None:
        """Set the percent complete (0..100) and/or the status text."""
        fields: dict[str, Any] = {}
        if progress is not None:
            if isinstance(progress, bool) or not isinstance(progress, (int, float)):
                raise CronkitError(f"progress must be a number from 0 to 100, got {progress!r}")
            self.progress = max(0, min(100, int(progress)))
            fields["progress"] = self.progress
        if text is not None:
            self.status_text = storable_text(str(text))
            fields["status_text"] = self.status_text
        if not fields:
            return
        if self._debug:
            print(f"[progress {self.progress}%] {self.status_text}", file=sys.__stdout__)
            return
        self._write(self.site.kit.lifecycle.progress, self, fields.get("progress"),
                    fields.get("status_text"))

    def increment_progress(self, n: int | float = 1, text: str | None = None) -> None:
        self.update(progress=(self.progress or 0) + n, text=text)

    def note(self, comment: str, status: str = "info") -> None:
        """Add a Job History record (instead of printing)."""
        if self._debug:
            print(f"[{status}] {comment}", file=sys.__stdout__)
            return
        self._write(self._store.add_history, self.id, self._clock.now(),
                    storable_text(str(comment)), storable_text(str(status)))

    def _write(self, fn: Callable[..., Any], *args: Any) -> None:
        """Write now, or, while an async runner runs, queue the write (in order)."""
        if self._writes is None:
            fn(*args)
        else:
            self._writes.put(fn, *args)

    def finish(self, summary: str | None = None, status: str = Status.SUCCESS) -> None:
        """End the job (SUCCESS unless ``status`` says FAILED or CANCELED) with an
        optional summary: it becomes the job's ``message`` and the last line of its
        status text. The job ends when run() returns."""
        status = Status(status)
        if status not in FINISHED:
            raise CronkitError(f"a job finishes as success, failed or canceled, not {status.value!r}")
        text = None if summary is None else str(summary)
        if text:
            self._append_line(text)
        self._ended = (status, text)

    def fail(self, message: str) -> None:
        """End the job as FAILED with ``message`` (when run() returns)."""
        self.finish(message, Status.FAILED)

    def _append_line(self, text: str) -> None:
        current = self.status_text or ""
        self.update(text=f"{current}\n{text}" if current and not current.endswith("\n")
                    else current + text)

    # -- output -----------------------------------------------------------------

    def _output(self, text: str) -> None:
        if self._debug:
            print(text, end="", file=sys.__stdout__)
            return
        self._buffer += text
        if "\n" in self._buffer:
            head, _, self._buffer = self._buffer.rpartition("\n")
            self._append(head + "\n")

    def _flush_output(self) -> None:
        if self._buffer and not self._debug:
            self._append(self._buffer)
        self._buffer = ""

    def _append(self, text: str) -> None:
        text = storable_text(text)
        current = self.status_text or ""
        if current and not current.endswith("\n") and text:
            text = "\n" + text       # printed output starts a line of its own
        self.status_text = current + text
        self._write(self._store.append_text, self.id, text)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.type} {self.status.value} {self.progress}%>"


def payload_size(payload_json: str) -> int:
    return len(payload_json.encode("utf-8"))


def aware(dt: Any, what: str) -> datetime:
    if not isinstance(dt, datetime) or dt.tzinfo is None:
        raise InvalidParameters(f"{what} must be a timezone-aware datetime, got {dt!r}",
                                {what: "expected an aware datetime"})
    return dt
