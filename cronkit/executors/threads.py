"""The ``threads`` executor (default): claimed jobs run on a thread pool."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor

from ..components.outcomes import RunRequest
from ..jobs import Job, Status
from ..runner import LoopThread, Outcome, acall_runner, is_async, runner_factory
from .base import BaseExecutor, StartGate, log


def _step(steps: Generator[RunRequest, Outcome, Job], out: Outcome | None) -> RunRequest | None:
    """The next RunRequest of a job's steps (``out`` sent back), or None at their end
    (a StopIteration cannot cross into a coroutine)."""
    try:
        return next(steps) if out is None else steps.send(out)
    except StopIteration:
        return None


class ThreadExecutor(BaseExecutor):
    """Runs jobs on ``concurrency`` threads. A timeout cannot kill a thread: the job is
    failed "timed out" and its ``canceled`` flag set, so a cooperative runner stops.

    Async runners run on one event-loop thread of the executor (``cronkit-async``), all
    concurrently, and hold no pool thread while they await: the steps around the run
    (events, the end) run in the loop's I/O threads. Each counts as one of the
    ``concurrency`` jobs at once. A timeout also cancels its task."""

    #: Plain jobs' ends are written in batches by the lifecycle's writer (group commit).
    group_commit = True
    #: Jobs started ahead wait for their due instant in their thread (see StartGate).
    gated = True
    #: While the jobs run take less than this on average (seconds), the prefetch grows
    #: to BURST_PREFETCH times the concurrency: one claim then feeds many short jobs.
    SHORT_JOB = 0.005
    BURST_PREFETCH = 8

    def __init__(self, concurrency: int = 6):
        super().__init__(concurrency)
        # Claimed jobs queue in the pool so a thread that ends a job starts the next at
        # once, without waiting for the worker's next claim. A job claimed ahead is
        # RUNNING from its claim, as every claimed job is; so the queue stays one job
        # per thread unless the jobs are short (a burst of tiny jobs), when waiting for
        # a thread costs a few milliseconds at most.
        self._mean_run = 1.0    # seconds, a moving average of the runs measured
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="cronkit-job")
        self._loop = LoopThread("cronkit-async")

    @property
    def prefetch(self) -> int:     # type: ignore[override]
        if self._mean_run < self.SHORT_JOB:
            return self.capacity * self.BURST_PREFETCH
        return self.capacity

    def submit(self, row: dict, done: Callable[[int], None],
               gate: StartGate | None = None) -> None:
        """Run the claimed job; ``gate``: it was started ahead, and runs at the gate's
        instant unless canceled meanwhile."""
        factory = runner_factory(self.kit.site(row["site"]), row["type"])
        self._add(row, factory)
        if is_async(factory):
            asyncio.run_coroutine_threadsafe(self._run_async(row, done, gate),
                                             self._loop.running_loop())
        else:
            self._pool.submit(self._run, row, done, gate)

    def _passed(self, row: dict, gate: StartGate) -> bool:
        """Wait at ``gate``; False (the job ended CANCELED, its runner never run) if it
        was canceled since its start was written."""
        if gate.wait(row["id"]):
            return True
        self.kit.lifecycle.finish(row, Status.CANCELED, "canceled before it started")
        return False

    async def _run_async(self, row: dict, done: Callable[[int], None],
                         gate: StartGate | None = None) -> None:
        """Run an async job on the loop: its steps in an I/O thread, its runner awaited."""
        loop, pool = asyncio.get_running_loop(), self._loop.pool
        steps = self.kit.lifecycle.steps(row)
        try:
            if gate is not None and not await loop.run_in_executor(pool, self._passed, row, gate):
                return
            run = await loop.run_in_executor(pool, _step, steps, None)
            while run is not None:
                out = await acall_runner(run.site, run.job, run.check_canceled, self._loop)
                run = await loop.run_in_executor(pool, _step, steps, out)
        except Exception as exc:  # an internal error must not leave the job RUNNING
            log.exception("job %s failed inside cronkit", row["id"])
            why = f"internal error: {type(exc).__name__}: {exc}"
            await loop.run_in_executor(pool, self.kit.lifecycle.finish, row, Status.FAILED, why)
        finally:
            self._remove(row["id"])
            done(row["id"])

    def _run(self, row: dict, done: Callable[[int], None],
             gate: StartGate | None = None) -> None:
        if gate is not None:
            try:
                passed = self._passed(row, gate)
            except Exception as exc:   # the store is away: never left RUNNING here
                log.exception("job %s failed inside cronkit", row["id"])
                passed = False
                try:
                    self.kit.lifecycle.finish(row, Status.FAILED,
                                              f"internal error: {type(exc).__name__}: {exc}")
                except Exception:      # the reaper has it
                    log.exception("job %s: cannot end it", row["id"])
            if not passed:
                self._remove(row["id"])
                done(row["id"])
                return
        began = time.monotonic()
        with self._loop.bound():
            self._safe_execute(row, done, batched=True)
        self._mean_run += (time.monotonic() - began - self._mean_run) * 0.2

    def backlog(self) -> bool:
        """Whether jobs handed in wait for a thread (the pool's queue; a lock-free read)."""
        return not self._pool._work_queue.empty()

    def _stop_job(self, job_id: int) -> None:
        super()._stop_job(job_id)
        self._loop.cancel(job_id)

    def shutdown(self, wait: bool = True) -> None:
        # Not waiting (a drain left threads behind): the jobs queued for a thread never start.
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        if wait:    # every job ended: no task is left on the loop
            self._loop.close()
