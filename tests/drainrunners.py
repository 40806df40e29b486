"""Runners for the shutdown tests (``--import tests.drainrunners`` in a real worker)."""

from __future__ import annotations

import time

import cronkit


class Quick(cronkit.Runner):
    """Sleeps payload["seconds"] (never looking at canceled), then succeeds."""

    def run(self):
        time.sleep(self.job.payload.get("seconds", 1))
        return None


class Polite(cronkit.Runner):
    """Sleeps up to payload["seconds"], returning as soon as it is asked to stop."""

    def run(self):
        end = time.monotonic() + self.job.payload.get("seconds", 60)
        while time.monotonic() < end:
            if self.job.canceled:
                return None
            time.sleep(0.05)
        return None


class Stubborn(cronkit.Runner):
    """Sleeps payload["seconds"] and never looks at canceled."""

    def run(self):
        time.sleep(self.job.payload.get("seconds", 60))
        return None


RUNNERS = {"drain-quick": Quick, "drain-polite": Polite, "drain-stubborn": Stubborn}


def register() -> None:
    for name, cls in RUNNERS.items():
        cronkit.register_runner(cls, name=name, replace=True)


register()
