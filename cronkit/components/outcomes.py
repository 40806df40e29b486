"""What a run's outcome means for a job: its end (status, message, progress, result),
a cron firing's Log, the limits a job type is claimed under. Pure: nothing here reads
the store or the clock; the lifecycle (``lifecycle.py``) writes what these decide."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, NamedTuple

from ..exceptions import CronkitError, InvalidResult
from ..jobs import Job, Status
from ..model import LogStatus
from ..model.validation import MAX_JSON_BYTES, json_bytes, json_problem
from ..runner import Outcome, messages_of

if TYPE_CHECKING:
    from ..site import Site

#: (LogStatus, messages) of a cron firing's end.
LogEntry = tuple[LogStatus, list[str]]


def _failure(out: Outcome) -> str | None:
    """The job message of a failed run: the error, then its traceback."""
    return out.error if out.trace is None else f"{out.error}\n{out.trace}"


class RunRequest(NamedTuple):
    """A job's steps ask for its runner to run: ``call_runner(site, job, check_canceled)``."""

    site: Site
    job: Job
    check_canceled: bool


class TypeLimit(NamedTuple):
    """How a job type is limited where jobs are claimed: at most ``max_running`` running
    at once (None: no limit), at most ``rate[0]`` started per ``rate[1]`` seconds."""

    max_running: int | None
    rate: tuple[int, float] | None

    def stricter(self, other: TypeLimit | None) -> TypeLimit:
        """The stricter of this limit and ``other`` on each count."""
        if other is None:
            return self
        running = [x for x in (self.max_running, other.max_running) if x is not None]
        rates = [r for r in (self.rate, other.rate) if r is not None]
        return TypeLimit(min(running, default=None),
                         min(rates, key=lambda r: r[0] / r[1], default=None))


_RATE = re.compile(r"\s*([0-9]+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*", re.IGNORECASE)
_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(text: Any, name: str = "") -> tuple[int, float] | None:
    """A runner's ``rate_limit`` ("10/s", "100/m", "1000/h") as (count, seconds); None
    for None. CronkitError naming the runner for anything else."""
    if text is None:
        return None
    m = _RATE.fullmatch(text) if isinstance(text, str) else None
    if m is None or int(m.group(1)) < 1:
        raise CronkitError(f"runner {name!r}: invalid rate_limit {text!r}: expected "
                           "N/s, N/m or N/h with N at least 1")
    return int(m.group(1)), _PERIODS[m.group(2)[0].lower()]


#: How many times a runner whose ``retries`` is 0 may ask for a retry (cronkit.Retry).
RETRY_ASKED_DEFAULT = 3

#: The longest message a result is shown as (its JSON text, cut).
RESULT_MESSAGE = 1000


def result_of(value: Any) -> tuple[Any, str | None]:
    """A submitted job's result and message from what its runner returned: a str or a
    list of them is the message too (lines), another JSON value is stored as the
    result and shown as its JSON text. InvalidResult when it is no JSON value a store
    can hold and give back (see ``json_problem``), or over the payloads' 1 MiB."""
    if value is None:
        return None, None
    problem = json_problem(value)
    if problem is not None:
        path, what = problem
        where = "".join(f"[{p!r}]" for p in path)
        raise InvalidResult(f"the runner returned a value that is not a storable JSON "
                            f"result: result{where} {what}")
    size = json_bytes(value)
    if size > MAX_JSON_BYTES:
        raise InvalidResult(f"the runner's result is {size} bytes of JSON, over the 1 MiB "
                            "limit")
    if isinstance(value, str) or (isinstance(value, (list, tuple))
                                  and all(isinstance(v, str) for v in value)):
        return value, "\n".join(messages_of(value)) or None
    text = json.dumps(value, ensure_ascii=False)
    return value, text if len(text) <= RESULT_MESSAGE else text[:RESULT_MESSAGE - 4] + " ..."


def end_of(out: Outcome) -> tuple[Status, str | None, int | None, Any]:
    """A submitted job's end from its runner's outcome: (status, message, progress,
    result). A result that cannot be stored fails the job, naming why."""
    if out.status == Status.FAILED:
        return Status.FAILED, _failure(out), None, None
    try:
        result, message = result_of(out.result)
    except InvalidResult as exc:
        return Status.FAILED, f"InvalidResult: {exc}", None, None
    return out.status, message, 100 if out.status == Status.SUCCESS else None, result


def firing_end_of(out: Outcome, name: str) -> tuple[Status, str | None, LogEntry]:
    """A cron firing's end from its runner's outcome (DESIGN rule 2): (job status, job
    message, log). No runner -> NOTRUN; exception -> FAILURE; canceled midway ->
    NOTRUN; None -> OK; messages -> WARN."""
    if out.unknown:
        text = f"not run: no runner named {name!r}"
        return Status.CANCELED, text, (LogStatus.NOTRUN, [text])
    if out.status == Status.FAILED:
        return Status.FAILED, _failure(out), (LogStatus.FAILURE, [out.error or "failed"])
    if out.status == Status.CANCELED:
        text = "not run to its end: canceled"
        return Status.CANCELED, text, (LogStatus.NOTRUN, [text])
    messages = messages_of(out.result)
    return (Status.SUCCESS, "\n".join(messages) or None,
            (LogStatus.WARN if messages else LogStatus.OK, messages))


def log_of(status: Status, message: str | None) -> LogEntry:
    """The Log of a firing ended from outside its run (reaped, timed out, killed)."""
    first = (message or "").split("\n", 1)[0]
    if status == Status.FAILED:
        return LogStatus.FAILURE, [first or "failed"]
    if status == Status.CANCELED:
        return LogStatus.NOTRUN, [first or "canceled"]
    return LogStatus.OK, []
