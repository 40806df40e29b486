"""Profiles: configure cronkit with ZCML (``zcml.py``, ``meta.zcml``) and import or
export a site's crons in collective.cron's crons.xml format (``cronsxml.py``).

Both formats end here, in :func:`apply_entries`: a list of :class:`CronEntry` (add,
edit or remove one cron, by uid, in document order) is first played on copies, where
every value is validated, and only then on the site's live crontab, which is saved
once. An entry at fault raises :class:`~cronkit.ProfileError` naming its file and
line, and nothing changes, neither in memory nor in the store.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import InvalidCron, ProfileError
from ..interfaces import ICrontabRegistryManager
from ..model import CRON_FIELDS, Cron, Crontab, as_bool

#: Attributes a profile may give a cron (``logs`` never: they cannot be imported).
CRON_ATTRIBUTES = tuple(f for f in CRON_FIELDS if f != "uid")
#: Attributes where an empty value means "none" (clears the field).
OPTIONAL_ATTRIBUTES = ("timezone", "user", "misfire_grace")

__all__ = ["CRON_ATTRIBUTES", "CronEntry", "apply_entries", "plan_entries"]


@dataclass
class CronEntry:
    """One cron of a profile: ``remove`` it, or add / edit it with ``attrs``.

    ``attrs`` holds only the attributes the profile gives (raw values: text or
    Python values); an edit changes those and nothing else."""

    uid: str
    attrs: dict[str, Any] = field(default_factory=dict)
    remove: bool = False
    file: str | None = None
    line: int | None = None

    def error(self, message: str) -> ProfileError:
        return ProfileError(message, file=self.file, line=self.line)


def _clean(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if k in OPTIONAL_ATTRIBUTES and v == "" else v) for k, v in attrs.items()}


def plan_entries(crontab: Crontab, entries: list[CronEntry],
                 default_activated: bool) -> tuple[OrderedDict[str, Cron], set[str]]:
    """Play ``entries`` on copies of ``crontab``'s crons.

    Return (uid -> the validated Cron each uid ends as, in order; the uids whose cron
    is new: added, or removed and added again). Raise ProfileError at the first entry
    at fault. ``crontab`` is only read."""
    state: OrderedDict[str, Cron] = OrderedDict(
        (uid, Cron(**cron.definition())) for uid, cron in crontab.crons.items())
    fresh: set[str] = set()
    for entry in entries:
        if entry.remove:
            state.pop(entry.uid, None)
            fresh.discard(entry.uid)
            continue
        attrs = _clean(entry.attrs)
        current = state.get(entry.uid)
        if current is None:
            missing = [k for k in ("name", "periodicity") if attrs.get(k) in (None, "")]
            if missing:
                raise entry.error(f"new cron {entry.uid!r} needs {' and '.join(missing)}")
            data = {"activated": default_activated} | attrs
            fresh.add(entry.uid)
        else:
            data = current.definition() | attrs
        data["uid"] = entry.uid
        try:
            state[entry.uid] = Cron(**data)
        except InvalidCron as exc:
            raise entry.error(f"cron {entry.uid!r}: {exc}") from None
    return state, fresh


def apply_entries(crontab: Crontab, entries: list[CronEntry], default_activated: bool,
                  activated: bool | str | None = None, source: str | None = None,
                  line: int | None = None) -> Crontab:
    """Apply ``entries`` (and the crontab switch ``activated``, unless None) to the
    site's live ``crontab``, whole or not at all, then save it if anything changed."""
    if activated is not None:
        try:
            activated = as_bool("activated", activated, ValueError)
        except ValueError as exc:
            raise ProfileError(str(exc), file=source, line=line) from None
    state, fresh = plan_entries(crontab, entries, default_activated)  # raises before any change
    if crontab.read_only:
        raise ProfileError(f"the crontab of site {getattr(crontab.site, 'name', None)!r} is "
                           "read-only: nothing was imported", file=source, line=line)
    try:
        for uid in list(crontab.crons):
            if uid not in state or uid in fresh:
                # A uid removed and added again is a new cron: the model deletes the
                # logs the store still holds for the old one when it is saved.
                del crontab.crons[uid]
        for uid, cron in state.items():
            if uid in fresh:
                crontab.add_cron(cron)      # in document order: the store keeps it
                continue
            live = crontab.crons[uid]
            for key in CRON_ATTRIBUTES:
                if getattr(live, key) != getattr(cron, key):
                    setattr(live, key, getattr(cron, key))
        if activated is not None:
            crontab.activated = activated
        if crontab.dirty:
            crontab.save()
    except BaseException:
        # Only the store can fail here: show what it holds again, so the live crontab
        # is left as it was saved.
        if crontab.site is not None:
            crontab.site.registry.getAdapter(crontab.site, ICrontabRegistryManager).refresh(crontab)
        raise
    return crontab
