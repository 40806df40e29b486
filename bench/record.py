"""What every no-op job does, whatever runs it: append its start time to a file.

The file named by ``$BENCH_RECORD`` gets one fixed-size record per job
(``time.time()`` as 17 characters and a newline), written with one ``O_APPEND``
``write()``, atomic between threads and processes. The harness counts completions
as ``size // RECORD`` and reads the start times for lateness and per-job overhead:
the same counting for cronkit and every peer.
"""

from __future__ import annotations

import os
import threading
import time

RECORD = 18
_fd: int | None = None
_pid = 0
_lock = threading.Lock()


def record() -> None:
    """The body of every benchmark job."""
    global _fd, _pid
    now = time.time()
    if _fd is None or _pid != os.getpid():
        with _lock:
            if _fd is None or _pid != os.getpid():
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
                _fd = os.open(os.environ["BENCH_RECORD"], flags, 0o644)
                _pid = os.getpid()
    os.write(_fd, b"%017.6f\n" % now)


def count(path: str) -> int:
    try:
        return os.stat(path).st_size // RECORD
    except FileNotFoundError:
        return 0


def starts(path: str) -> list[float]:
    with open(path, "rb") as f:
        return sorted(float(line) for line in f.read().split(b"\n") if line)


def reset(path: str) -> None:
    with open(path, "wb"):
        pass
