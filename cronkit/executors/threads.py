"""The ``threads`` executor (default): claimed jobs run on a thread pool."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..runner import LoopThread
from .base import BaseExecutor


class ThreadExecutor(BaseExecutor):
    """Runs jobs on ``concurrency`` threads. A timeout cannot kill a thread: the job is
    failed "timed out" and its ``canceled`` flag set, so a cooperative runner stops.

    Async runners run on one event-loop thread of the executor (``cronkit-async``), all
    concurrently; each still counts as one of the ``concurrency`` jobs at once (its pool
    thread waits for it). A timeout also cancels its task."""

    def __init__(self, concurrency: int = 6):
        super().__init__(concurrency)
        # Claimed jobs queue in the pool so a thread that ends a job starts the next at
        # once, without waiting for the worker's next claim.
        self.prefetch = concurrency
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="cronkit-job")
        self._loop = LoopThread("cronkit-async")

    def submit(self, row: dict, done: Callable[[int], None]) -> None:
        self._add(row)
        self._pool.submit(self._run, row, done)

    def _run(self, row: dict, done: Callable[[int], None]) -> None:
        with self._loop.bound():
            self._safe_execute(row, done)

    def _stop_job(self, job_id: int) -> None:
        super()._stop_job(job_id)
        self._loop.cancel(job_id)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
        if wait:    # every job ended: no task is left on the loop
            self._loop.close()
