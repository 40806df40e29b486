"""Registers the runners of :mod:`tests.contracts.runner_classes` globally, for worker
and Celery processes started with ``--import tests.contracts.runners``."""

from .runner_classes import RAN_TABLE, Count, Noop, Slow, Tick, count, register_globally  # noqa: F401

register_globally()
