"""A cronkit worker process through the Python API, for when the ``cronkit`` CLI is
not there: ``python -m bench.cronkit_worker STORE_URL CONCURRENCY``."""

import sys

import bench.runners  # noqa: F401  (registers "noop")
import cronkit

if __name__ == "__main__":
    kit = cronkit.Cronkit(store=sys.argv[1])
    kit.worker(concurrency=int(sys.argv[2])).run_forever()
