"""The example runners, registered when this module is imported: for ``--import
examples.jobs`` and ``CRONKIT_IMPORTS=examples.jobs`` (a Celery worker imports
modules; it loads no profile). ``examples/site.zcml`` registers the same runner, and
its crontab too."""

from __future__ import annotations

import cronkit

from .runners import Heartbeat

cronkit.register_runner(Heartbeat, name="heartbeat")
