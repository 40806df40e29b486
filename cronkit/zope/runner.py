"""cronkit.zope.Runner: a cronkit runner run in the ZODB, on its Zope or Plone site."""

from __future__ import annotations

from typing import Any

import cronkit


class Runner(cronkit.Runner):
    """A runner whose ``run()`` runs in a ZODB connection and transaction of its own,
    on its Zope or Plone site (being written: see run_in_context)."""

    conflict_retries: int | None = None
    context: Any
