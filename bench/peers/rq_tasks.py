"""RQ's task for the benchmark."""

from bench.record import record


def noop():
    record()
