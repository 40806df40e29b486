"""The ``threads`` executor (default): claimed jobs run on a thread pool."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .base import BaseExecutor


class ThreadExecutor(BaseExecutor):
    """Runs jobs on ``concurrency`` threads. A timeout cannot kill a thread: the job is
    failed "timed out" and its ``canceled`` flag set, so a cooperative runner stops."""

    def __init__(self, concurrency: int = 6):
        super().__init__(concurrency)
        # Claimed jobs queue in the pool so a thread that ends a job starts the next at
        # once, without waiting for the worker's next claim.
        self.prefetch = concurrency
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="cronkit-job")

    def submit(self, row: dict, done: Callable[[int], None]) -> None:
        self._add(row)
        self._pool.submit(self._safe_execute, row, done)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
