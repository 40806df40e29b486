"""collective.cron compatibility: ``from cronkit.zope import crontab``, then
``class MyCronJob(crontab.Runner)`` as collective.cron's add-ons wrote it."""

from __future__ import annotations

from .runner import Runner

__all__ = ["Runner"]
