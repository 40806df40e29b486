"""Profiles: configure cronkit with ZCML (``zcml.py``, ``meta.zcml``) and import or
export a site's crons in collective.cron's crons.xml format (``cronsxml.py``).

Both formats end here, in :func:`apply_entries`: a list of :class:`CronEntry` (add,
edit or remove one cron, by uid, in document order) is first played on copies, where
every value is validated, and only then on the site's live crontab, which is saved
once. An entry at fault raises :class:`~cronkit.ProfileError` naming its file and
line, and nothing changes, neither in memory nor in the store.

A profile file is refused before it is read whole when it is over ``MAX_PROFILE_BYTES``
(10 MiB), and its parse stops at the first element beyond ``MAX_PROFILE_CRONS``
(100,000) crons, or twice as many elements: :func:`read_profile` and
:class:`ElementCount`. Both limits are read when a profile is loaded: set them here,
or give ``max_bytes`` / ``max_crons`` to ``import_crons`` or ``load_profile``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..components.crontab_registry_manager import check_environ_of
from ..exceptions import InvalidCron, ProfileError
from ..interfaces import ICrontabRegistryManager
from ..model import CRON_FIELDS, Cron, Crontab
from ..model.validation import text_bool

#: Attributes a profile may give a cron (``logs`` never: they cannot be imported).
CRON_ATTRIBUTES = tuple(f for f in CRON_FIELDS if f != "uid")
#: Attributes where an empty value means "none" (clears the field).
OPTIONAL_ATTRIBUTES = ("timezone", "user", "misfire_grace")
#: The largest profile file (crons.xml or ZCML, each included file too), in bytes.
MAX_PROFILE_BYTES = 10 * 1024 * 1024
#: The most crons one profile load may declare (a ZCML profile: with its includes).
MAX_PROFILE_CRONS = 100_000

__all__ = ["CRON_ATTRIBUTES", "MAX_PROFILE_BYTES", "MAX_PROFILE_CRONS", "CronEntry",
           "ElementCount", "apply_entries", "limits", "plan_entries", "read_profile"]


# -- limits -------------------------------------------------------------------------


def limits(max_bytes: int | None = None, max_crons: int | None = None) -> tuple[int, int]:
    """(max_bytes, max_crons): those given, else the module's (read now, so that
    setting ``cronkit.profiles.MAX_PROFILE_BYTES`` takes effect at once)."""
    return (MAX_PROFILE_BYTES if max_bytes is None else max_bytes,
            MAX_PROFILE_CRONS if max_crons is None else max_crons)


def _too_big(size: int, max_bytes: int) -> str:
    return (f"the file is {size} bytes, over the limit of {max_bytes} bytes for a profile "
            "(cronkit.profiles.MAX_PROFILE_BYTES)")


def check_size(size: int, max_bytes: int, file: str | None) -> None:
    """Refuse a profile of ``size`` bytes over ``max_bytes`` (ProfileError naming ``file``)."""
    if size > max_bytes:
        raise ProfileError(_too_big(size, max_bytes), file=file)


def read_profile(path: str, max_bytes: int) -> bytes:
    """The bytes of the profile file at ``path``; ProfileError naming the file when it
    cannot be read or is over ``max_bytes``, found before it is read (and, should it
    grow meanwhile, after ``max_bytes + 1`` bytes at most)."""
    try:
        with open(path, "rb") as f:
            check_size(os.fstat(f.fileno()).st_size, max_bytes, path)
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise ProfileError(f"cannot read {path!r}: {exc.strerror or exc}", file=path) from None
    check_size(len(data), max_bytes, path)
    return data


def decode_profile(data: bytes, file: str) -> str:
    """``data`` as UTF-8 text; ProfileError naming the file, line and column of the
    first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ProfileError(f"not UTF-8 text: byte {data[exc.start]:#04x} at column {column}",
                           file=file, line=line) from None


class ElementCount:
    """Counts the elements of a profile as its parser meets them; ``add`` raises
    ProfileError (file and line) at the first cron beyond ``max_crons``, or element
    beyond twice as many (and a few more: a document's root and directives)."""

    def __init__(self, file: str | None, max_crons: int):
        self.file = file
        self.max_crons = max_crons
        self.max_elements = 2 * max_crons + 1000
        self.crons = self.elements = 0

    def add(self, line: int | None, cron: bool) -> None:
        self.elements += 1
        self.crons += cron
        if self.crons > self.max_crons:
            raise ProfileError(f"more than {self.max_crons} crons: over the limit for a "
                               "profile (cronkit.profiles.MAX_PROFILE_CRONS)",
                               file=self.file, line=line)
        if self.elements > self.max_elements:
            raise ProfileError(f"more than {self.max_elements} elements: over the limit for "
                               f"a profile of at most {self.max_crons} crons "
                               "(cronkit.profiles.MAX_PROFILE_CRONS)", file=self.file, line=line)


# -- entries ------------------------------------------------------------------------


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
            cron = state[entry.uid] = Cron(**data)
            if crontab.site is not None:    # its environ against its runner's format
                check_environ_of(crontab.site, cron.uid, cron.name, cron.environ)
        except InvalidCron as exc:
            raise entry.error(f"cron {entry.uid!r}: {exc}") from None
    return state, fresh


def apply_entries(crontab: Crontab, entries: list[CronEntry], default_activated: bool,
                  activated: bool | str | None = None, source: str | None = None,
                  line: int | None = None) -> Crontab:
    """Apply ``entries`` (and the crontab switch ``activated``, unless None) to the
    site's live ``crontab``, whole or not at all, then save it if anything changed."""
    if activated is not None and not isinstance(activated, bool):
        try:
            activated = text_bool("activated", activated, ValueError)
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
