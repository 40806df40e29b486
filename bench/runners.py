"""The cronkit side of the benchmark: the ``noop`` runner (``--import bench.runners``)."""

import cronkit
from bench.record import record


@cronkit.runner("noop")
def noop(job):
    """A no-op job for the benchmarks: records its start time."""
    record()
