"""Example runners. Importing this module registers nothing: ``examples/site.zcml``
does, with ``<cron:runner>``."""

from __future__ import annotations

import cronkit

#: What the example subscriber saw: (cron uid, log status) of each finished firing.
SEEN: list[tuple[str, str]] = []


class Heartbeat(cronkit.Runner):
    """Say that the scheduler is alive (every minute in examples/site.zcml)."""

    def run(self):
        message = self.environ.get("message", "alive")
        self.job.note(f"heartbeat: {message}")
        print(f"heartbeat: {message}")
        return None


def noted(event: cronkit.FinishedCronJobEvent) -> None:
    """Subscriber of FinishedCronJobEvent: remember how each firing ended."""
    log = event.log
    SEEN.append((event.cron.uid, log.status.value if log is not None else "?"))
