"""Registers the runners of :mod:`tests.contracts.runner_classes` globally, for worker
and Celery processes started with ``--import tests.contracts.runners``."""

import cronkit

from .runner_classes import RAN_TABLE, Count, Noop, Slow, Tick, count  # noqa: F401

cronkit.register_runner(Count, name="count")
cronkit.register_runner(Tick, name="tick")
cronkit.register_runner(Slow, name="slow")
cronkit.register_runner(Noop, name="noop")
