"""IQueueManager: a site's job queue (``site.jobs``)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from zope.component import adapter
from zope.interface import implementer

from ..exceptions import CronkitError, InvalidParameters, NoSuchJob, UnknownRunner
from ..interfaces import IQueueManager, ISite
from ..jobs import FINISHED, Job, Status, aware, validate_payload
from ..model.validation import MAX_JSON_BYTES, shown, text_problem
from ..runner import runner_factory
from ..stores.base import WAITING
from ..stores.bulk import FiringRows

MAX_PAYLOAD = MAX_JSON_BYTES
#: The longest delay or timeout: ten years, in seconds.
MAX_SECONDS = 10 * 365 * 86400
#: The range of a priority (the store's integer column).
MAX_PRIORITY = 2 ** 31 - 1
#: The longest text of a job's name and user (the store's columns).
MAX_NAME, MAX_USER = 500, 200
#: The most specs one ``submit_many`` takes: they are inserted in one transaction.
MAX_BATCH = 100_000
#: What a spec of ``submit_many`` may hold: the keyword arguments of ``submit``.
SPEC_FIELDS = ("type", "payload", "name", "priority", "delay", "unique", "user", "timeout",
               "run_after", "after")
_BATCH_ERROR = re.compile(r"job (\d+): (.*)\Z", re.S)


def batch_error(index: int, exc: InvalidParameters | UnknownRunner) -> CronkitError:
    """``exc`` as the error of the ``index``-th spec of a batch: the same type, its
    message "job 3: ..." and (InvalidParameters) its fields keyed "3.priority"."""
    if isinstance(exc, InvalidParameters):
        return InvalidParameters(f"job {index}: {exc}", {
            f"{index}.{field}": problem for field, problem in exc.errors.items()})
    return UnknownRunner(f"job {index}: {exc}")


def batch_index(exc: BaseException) -> tuple[int, str] | None:
    """(index, what is wrong) of an error :func:`batch_error` made, else None."""
    match = _BATCH_ERROR.match(str(exc))
    return (int(match[1]), match[2]) if match else None


def _uid(cron: Any) -> str:
    return cron if isinstance(cron, str) else cron.uid


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0 <= value <= MAX_SECONDS:   # also refuses NaN
        raise InvalidParameters(f"{what} must be seconds from 0 to {MAX_SECONDS} (ten years) "
                                f"or a timedelta, got {shown(value)}",
                                {what: f"expected seconds from 0 to {MAX_SECONDS}"})
    return float(value)


def _text(value: Any, what: str, longest: int) -> str:
    """``value`` if the store can hold it as the job's ``what``; else InvalidParameters."""
    if not isinstance(value, str):
        raise InvalidParameters(f"{what} must be a string, got {shown(value)}",
                                {what: "expected a string"})
    problem = text_problem(value) or (f"longer than {longest} characters"
                                      if len(value) > longest else None)
    if problem is not None:
        raise InvalidParameters(f"invalid {what} {shown(value)}: {problem}", {what: problem})
    return value


@implementer(IQueueManager)
@adapter(ISite)
class QueueManager:
    def __init__(self, site):
        self.site = site
        self.store = site.kit.store
        self.clock = site.kit.clock

    # -- submit ---------------------------------------------------------------

    def submit(self, type: str, payload: Any = None, name: str | None = None, priority: int = 0,
               delay: Any = 0, unique: bool | str = False, user: str | None = None,
               timeout: Any = None, run_after: datetime | None = None,
               after: Any = None) -> Job:
        """Validate and queue a PENDING job; return it at once.

        ``unique=True`` merges the submission into an identical job (same type and
        payload) that is pending or running, and returns that one (Yii BackJob's rule);
        ``unique="pending"`` only into a pending one. ``after`` (a Job, an id, or a list
        of them) makes a continuation: it waits until every one of them has succeeded,
        then is due at once; it ends CANCELED, naming the job, when one of them fails or
        is canceled (Hangfire's ContinueJobWith). A continuation takes no delay or
        run_after."""
        row = self._row(type, payload, name, priority, delay, unique, user, timeout,
                        run_after, after, self.clock.now())
        lifecycle = self.site.kit.lifecycle
        if unique:
            job_id, created = lifecycle.queue_unique(self.site, row, running=unique is True)
            if not created:
                return self.get(job_id)      # merged into the job already pending/running
        else:
            job_id = lifecycle.queue(self.site, [row])[0]
        if "after_ids" in row:     # its jobs may have ended already
            lifecycle.continue_after(self.site, row["after_ids"])
            return self.get(job_id)
        return Job(self.site, dict(row, id=job_id))

    def submit_many(self, specs: Iterable[Mapping[str, Any]]) -> list[Job]:
        """Validate every spec, then queue them all in one transaction; return the jobs
        in the order of ``specs``. A spec is a mapping of :meth:`submit`'s keyword
        arguments (``type`` required); ``unique`` is refused (each unique submission is
        checked against the queue on its own: use :meth:`submit`). Nothing is queued
        when one spec is refused: the error (InvalidParameters, UnknownRunner) names its
        index and field ("job 3: priority must be ...", ``errors`` keyed "3.priority").
        At most MAX_BATCH specs per call."""
        now = self.clock.now()
        factories: dict[str, Any] = {}
        known: set[int] = set()
        rows: list[dict[str, Any]] = []
        for index, spec in enumerate(specs):
            if index == MAX_BATCH:
                raise InvalidParameters(f"submit_many takes at most {MAX_BATCH:,} jobs per "
                                        "call: split them", {"jobs": f"over {MAX_BATCH}"})
            rows.append(self._spec_row(index, spec, now, factories, known))
        if not rows:
            return []
        lifecycle = self.site.kit.lifecycle
        ids = lifecycle.queue(self.site, rows)
        site = self.site
        jobs = [Job(site, dict(row, id=job_id)) for row, job_id in zip(rows, ids, strict=True)]
        if known:    # continuations: their jobs may have ended already
            lifecycle.continue_after(site, sorted(known))
            for job in jobs:
                if job.after_ids:
                    job.refresh()
        return jobs

    def _spec_row(self, index: int, spec: Any, now: datetime, factories: dict[str, Any],
                  known: set[int]) -> dict[str, Any]:
        """The row of ``spec``, the ``index``-th of a submit_many; its errors name both."""
        if not isinstance(spec, Mapping):
            raise InvalidParameters(f"job {index}: expected a mapping of submit's arguments, "
                                    f"got {shown(spec)}", {str(index): "expected an object"})
        for key in spec:
            if key not in SPEC_FIELDS:
                raise InvalidParameters(f"job {index}: unknown field {shown(key)} (a spec "
                                        f"takes {', '.join(SPEC_FIELDS)})",
                                        {f"{index}.{key}": "unknown field"})
        if "type" not in spec:
            raise InvalidParameters(f"job {index}: type is required",
                                    {f"{index}.type": "required"})
        if spec.get("unique"):
            raise InvalidParameters(f"job {index}: unique is not taken in a batch (each "
                                    "unique submission is checked against the queue on its "
                                    "own): submit that job alone",
                                    {f"{index}.unique": "not taken by submit_many"})
        try:
            return self._row(spec["type"], spec.get("payload"), spec.get("name"),
                             spec.get("priority", 0), spec.get("delay", 0), False,
                             spec.get("user"), spec.get("timeout"), spec.get("run_after"),
                             spec.get("after"), now, factories, known)
        except (InvalidParameters, UnknownRunner) as exc:
            raise batch_error(index, exc) from None

    def _row(self, type: Any, payload: Any, name: Any, priority: Any, delay: Any, unique: Any,
             user: Any, timeout: Any, run_after: Any, after: Any, now: datetime,
             factories: dict[str, Any] | None = None,
             known: set[int] | None = None) -> dict[str, Any]:
        """The store row of one submission, every argument checked: the one set of rules
        of submit and submit_many. ``factories`` caches the runners looked up by type,
        ``known`` the ids of the predecessors found (and gathers them); raise
        UnknownRunner, or InvalidParameters naming the field."""
        factory = None
        if isinstance(type, str):
            factory = factories.get(type) if factories is not None else None
            if factory is None:
                factory = runner_factory(self.site, type)
                if factories is not None and factory is not None:
                    factories[type] = factory
        if factory is None:
            raise UnknownRunner(f"no runner named {type!r} for site {self.site.name!r}")
        payload = validate_payload(getattr(factory, "parameters", None), payload)
        if payload:
            try:   # sorted: also refuses keys JSON cannot order (a str and an int)
                size = len(json.dumps(payload, sort_keys=True, ensure_ascii=False,
                                      allow_nan=False).encode("utf-8"))
            except (TypeError, ValueError) as exc:
                raise InvalidParameters(f"payload is not JSON-serialisable: {exc}",
                                        {"payload": "not JSON-serialisable"}) from None
            if size > MAX_PAYLOAD:
                raise InvalidParameters(f"payload is {size} bytes of JSON, over the 1 MiB "
                                        "limit", {"payload": "over 1 MiB"})
        if isinstance(priority, bool) or not isinstance(priority, int) \
                or not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
            raise InvalidParameters(f"priority must be an integer from {-MAX_PRIORITY} to "
                                    f"{MAX_PRIORITY}, got {shown(priority)}",
                                    {"priority": "expected an integer"})
        name = _text(type if name is None or name == "" else name, "name", MAX_NAME)
        if user is not None:
            user = _text(user, "user", MAX_USER)
        if run_after is not None:
            start = aware(run_after, "run_after")
        elif isinstance(delay, int) and not isinstance(delay, bool) and delay == 0:
            start = now
        else:
            start = now + timedelta(seconds=_seconds(delay, "delay"))
        if timeout is not None:
            timeout = _seconds(timeout, "timeout") or None
        if unique not in (False, True, "pending"):
            raise InvalidParameters(f"unique must be True, False or 'pending', got "
                                    f"{shown(unique)}", {"unique": "expected a boolean"})
        row = {"site": self.site.name, "type": type, "name": name, "status": "pending",
               "priority": priority, "payload": payload, "run_after": start, "created_at": now,
               "user": user, "timeout": timeout, "progress": 0, "status_text": "",
               "attempts": 0, "canceled": False}
        if after is not None:
            after_ids = self._predecessors(after, known)
            if after_ids:
                if run_after is not None or delay:
                    raise InvalidParameters("a continuation (after) is due when its jobs "
                                            "succeed: it takes no delay or run_after",
                                            {"after": "with delay"})
                row.update(after_ids=after_ids, run_after=WAITING,
                           status_text="waiting for job " + ", ".join(map(str, after_ids)))
        if unique:
            text = json.dumps(payload, sort_keys=True, allow_nan=False)
            row["unique_key"] = hashlib.sha256(
                f"{self.site.name}\0{type}\0{text}".encode()).hexdigest()
        return row

    def _predecessors(self, after: Any, known: set[int] | None = None) -> list[int]:
        """The ids of the jobs ``after`` names (a Job, an id, or a list of them), each a
        job of this site; InvalidParameters naming the one at fault. ``known`` holds
        ids found already (not looked up again) and gathers those found."""
        if after is None:
            return []
        items = list(after) if isinstance(after, (list, tuple, set, frozenset)) else [after]
        ids: list[int] = []
        for item in items:
            job_id = item.id if isinstance(item, Job) else item
            if isinstance(job_id, bool) or not isinstance(job_id, int):
                raise InvalidParameters(f"after must name jobs (a Job or an id), got "
                                        f"{shown(item)}", {"after": "expected job ids"})
            if known is None or job_id not in known:
                try:
                    self.get(job_id)
                except NoSuchJob:
                    raise InvalidParameters(f"after: no job {job_id} in site "
                                            f"{self.site.name!r}",
                                            {"after": f"no job {job_id}"}) from None
                if known is not None:
                    known.add(job_id)
            if job_id not in ids:
                ids.append(job_id)
        return ids

    def dependents(self, job_id: int) -> list[Job]:
        """The continuations submitted to run after job ``job_id``, waiting or not."""
        return [self._job(r) for r in self.store.continuations(job_id, waiting=False)
                if r["site"] == self.site.name]

    def retry(self, job_id: int) -> Job:
        """Submit a finished job again (same type, payload, name, priority)."""
        old = self.get(job_id)
        return self.submit(old.type, old.payload, name=old.name, priority=old.priority,
                           user=old.user, timeout=old.timeout)

    # -- cron jobs ------------------------------------------------------------

    def register_cron_jobs(self, entries: list[tuple[Any, datetime, datetime | None]]) -> list:
        """Queue firings: (cron, run_after, fire_at or None for a forced run); a firing
        already in the store is skipped. Return the ids of the new jobs."""
        # One transaction; the rows made as they are inserted (bounded memory for a
        # huge crontab), or laid out from the crons by the store (see FiringRows).
        rows = FiringRows(self.site.name, self.clock.now(), entries)
        return self.site.kit.lifecycle.queue(self.site, rows, ignore_duplicates=True)

    # -- queries --------------------------------------------------------------

    def _job(self, row: dict) -> Job:
        return Job(self.site, row)

    def get(self, job_id: int | str | None) -> Job:
        """The job ``job_id`` of this site (an int, or its text); raise NoSuchJob."""
        if isinstance(job_id, bool) or not isinstance(job_id, (int, str)):
            raise NoSuchJob(f"no job with id {job_id!r}")
        try:
            row = self.store.get_job(int(job_id))
        except ValueError:
            raise NoSuchJob(f"no job with id {job_id!r}") from None
        if row["site"] != self.site.name:
            raise NoSuchJob(f"no job with id {job_id!r} in site {self.site.name!r}")
        return self._job(row)

    def list(self, cron: Any = None, status: Any = None, type: str | None = None,
             limit: int | None = None, offset: int = 0) -> list[Job]:
        """Jobs of the site, newest first."""
        rows = self.store.list_jobs(site=self.site.name, cron_uid=_uid(cron) if cron else None,
                                    status=status, type=type, limit=limit, offset=offset)
        return [self._job(r) for r in rows]

    def count(self, cron: Any = None, status: Any = None, type: str | None = None) -> int:
        return self.store.count_jobs(site=self.site.name, cron_uid=_uid(cron) if cron else None,
                                     status=status, type=type)

    def cancel(self, job_id: int, force: bool = False) -> Job:
        """A pending job never starts; a running one sees ``canceled``. With ``force`` a
        job run by the processes executor on this host is killed and ends CANCELED."""
        job = self.get(job_id)
        self.site.kit.lifecycle.cancel(self.site, job.id, force=force)
        return self.get(job_id)

    def cancel_all(self, status: Any = Status.PENDING, type: str | None = None) -> int:
        """Cancel every job of the site in ``status`` (pending and/or running), as
        AtroCore's "cancel by status"; return how many were canceled."""
        statuses = {Status(s) for s in ([status] if isinstance(status, str) else status)}
        if not statuses <= {Status.PENDING, Status.RUNNING}:
            raise InvalidParameters(f"only pending or running jobs can be canceled, not {status!r}",
                                    {"status": "expected pending or running"})
        rows = self.store.list_jobs(site=self.site.name, status=[str(s) for s in statuses], type=type)
        cancel = self.site.kit.lifecycle.cancel
        ended = (Status.CANCELED, Status.RUNNING)
        return sum(1 for r in rows if cancel(self.site, r["id"]) in ended)

    def run(self, job_id: int, debug: bool = False) -> Job:
        """Run one job now in this thread, whatever its state (a manual run). With
        ``debug`` its status, progress and history are left as they are; what it prints
        and reports goes to stdout instead."""
        job = self.get(job_id)
        lifecycle = self.site.kit.lifecycle
        if debug:
            return lifecycle.execute(self.store.get_job(job.id), debug=True)
        return lifecycle.execute(lifecycle.start_now(job.id))

    def remove(self, job_id: int) -> None:
        """Delete a job from the queue whatever its state."""
        self.get(job_id)
        self.store.remove_job(int(job_id))

    def _statuses(self, cron: Any) -> set[str]:
        return self.store.cron_job_statuses(self.site.name, _uid(cron))

    def is_job_present(self, cron: Any) -> bool:
        return bool(self._statuses(cron) & {Status.PENDING, Status.RUNNING})

    def is_job_pending(self, cron: Any) -> bool:
        return Status.PENDING in self._statuses(cron)

    def is_job_running(self, cron: Any) -> bool:
        return Status.RUNNING in self._statuses(cron)

    def is_job_finished(self, cron: Any) -> bool:
        statuses = self._statuses(cron)
        return bool(statuses & FINISHED) and not statuses & {Status.PENDING, Status.RUNNING}
