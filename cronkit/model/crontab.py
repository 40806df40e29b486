"""Crontab: the ordered collection of a site's crons, and what it must save."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zope.interface import implementer

from ..exceptions import CronkitError, InvalidCron, InvalidCrontab, NoSuchCron
from ..interfaces import ICrontab
from .cron import Cron
from .log import Log
from .validation import CRON_FIELDS, as_bool, json_bool, json_input, new_uid, shown

if TYPE_CHECKING:
    from ..site import Site


class CronRecord(Mapping[str, Any]):
    """One cron as a save writes it: its fields (``CRON_FIELDS``) and ``position``, a
    read-only mapping over one tuple of their values taken when the save began. A
    dict per cron would double what a save of 100,000 crons holds (ISSUE 16).

    ``record.row`` is that tuple, in the order of ``CronRecord.KEYS``: a store writing
    100,000 records reads them so, not key by key."""

    __slots__ = ("_values",)

    KEYS = (*CRON_FIELDS, "position")
    _INDEX = {name: i for i, name in enumerate(KEYS)}

    def __init__(self, values: tuple[Any, ...]):
        if len(values) != len(self.KEYS):
            raise ValueError(f"a cron record has {len(self.KEYS)} values, got {len(values)}")
        self._values = values

    @property
    def row(self) -> tuple[Any, ...]:
        """The values, in the order of ``KEYS``."""
        return self._values

    def __getitem__(self, key: str) -> Any:
        return self._values[self._INDEX[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    def __repr__(self) -> str:
        return f"CronRecord({dict(self)!r})"


_UID = CronRecord.KEYS.index("uid")


@dataclass(frozen=True)
class CrontabChanges:
    """What a save must write, from ``Crontab.changes()``; the arguments of the store's
    ``save_crontab``, then of ``Crontab.saved()`` once it is written."""

    #: The uid of the one cron this save writes, or None for the whole crontab.
    only: str | None = None
    #: The new state of the crontab's switch, or None when it did not change.
    activated: bool | None = None
    #: The crons to insert or update: their fields and ``position`` (CronRecord mappings).
    upserts: list[CronRecord] = field(default_factory=list)
    #: Uids of the crons to delete (with their logs).
    deletes: list[str] = field(default_factory=list)
    #: (cron uid, log dict with an aware ``date``) to insert, oldest first per cron.
    new_logs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: Ids of the stored logs to delete.
    deleted_logs: list[int] = field(default_factory=list)
    #: The Log objects of ``new_logs``, in the same order: they get the new ids.
    logs: list[Log] = field(default_factory=list)


def _taken(rows: list[Any]) -> Iterator[Any]:
    """The items of ``rows`` in order, each removed from it as it is given."""
    rows.reverse()
    while rows:
        yield rows.pop()


class CronMap(OrderedDict[str, Cron]):
    """uid -> Cron, in order; deleting a cron records it for the next save."""

    def __init__(self, crontab: Crontab):
        super().__init__()
        self._crontab = crontab

    def __setitem__(self, uid: str, cron: Cron) -> None:
        if not isinstance(cron, Cron):
            raise InvalidCrontab(f"crontab entries must be Cron objects, got {cron!r}")
        if cron.uid != uid:
            raise InvalidCrontab(f"key {uid!r} is not the cron's uid {cron.uid!r}")
        self._crontab.add_cron(cron)

    def __delitem__(self, uid: str) -> None:
        cron = self[uid]
        OrderedDict.__delitem__(self, uid)
        object.__setattr__(cron, "_crontab", None)
        self._crontab._cron_deleted(cron)

    def pop(self, uid: str, *default: Any) -> Any:
        if uid not in self:
            if default:
                return default[0]
            raise KeyError(uid)
        cron = self[uid]
        del self[uid]
        return cron

    def clear(self) -> None:
        for uid in list(self):
            del self[uid]

    def _put(self, cron: Cron) -> None:
        """Hold ``cron`` at the end, as it is: no change is recorded."""
        OrderedDict.__setitem__(self, cron.uid, cron)
        object.__setattr__(cron, "_crontab", self._crontab)


@implementer(ICrontab)
class Crontab:
    """The ordered collection of a site's crons, with a global switch.

    **Persistence API** (for the storage side: the crontab registry manager, the
    site and the cron manager; applications use ``save()``). ``data`` is what the
    store's ``load_crontab`` returns: ``{"version", "activated", "crons": [row]}``
    with rows as :meth:`Cron.from_row` reads them; it is trusted, not validated.

    ``Crontab.from_store(data, site=None)``
        A new crontab showing ``data``, with nothing to save, at its version.
    ``crontab.version``
        The store version this crontab shows (read-only); None before a load or save.
    ``crontab.refresh_from(data)``
        Show ``data`` in place, keeping the Cron objects of the uids it still holds
        (the others leave the crontab); every unsaved change is forgotten.
    ``crontab.changes(only=None)``
        A :class:`CrontabChanges`: what a save of the crontab (or of the cron of uid
        ``only``) must write. New crons get positions after the others, in order.
    ``crontab.saved(changes, version, log_ids)``
        The store wrote ``changes``, the crontab is at ``version`` and ``log_ids``
        are the ids of ``changes.new_logs``. Returns False when others wrote in
        between: the crontab then keeps its old version, and should be refreshed
        (``refresh_from``) unless it is ``dirty``.
    ``crontab.mark_saved(version, only=None)``
        Forget the unsaved changes (all, or those of the cron ``only``); show ``version``.
    ``crontab.log_added(uid, log, version)``
        The store appended ``log`` (its id set) to cron ``uid``, which made ``version``:
        show it at once if this crontab holds no unsaved change and was at
        ``version - 1`` (it shows everything then); return whether it was shown.

    A cron deleted and added again under its uid (before a save) is a new cron: the
    logs the store holds for the deleted one are deleted by the save, unless the new
    one shows them.
    """

    def __init__(self, crons: Iterable[Cron] | None = None, activated: Any = True,
                 read_only: Any = False):
        self.site: Site | None = None     # set by Site when this is a site's live crontab
        self._version: int | None = None  # store version this object reflects
        self._changed: set[str] = set()
        # uid -> ids of the logs the store holds for a cron deleted since the last save.
        self._deleted: dict[str, tuple[int, ...]] = {}
        self._activated_changed = False
        self.crons = CronMap(self)
        self._activated = as_bool("activated", activated, InvalidCrontab)
        self.read_only = as_bool("read_only", read_only, InvalidCrontab)
        for cron in crons or ():
            self.add_cron(cron)

    @property
    def activated(self) -> bool:
        return self._activated

    @activated.setter
    def activated(self, value: Any) -> None:
        value = as_bool("activated", value, InvalidCrontab)
        if value != self._activated:
            self._activated = value
            self._activated_changed = True

    @property
    def dirty(self) -> bool:
        """True while this crontab holds changes not saved yet."""
        return bool(self._changed or self._deleted or self._activated_changed)

    def add_cron(self, cron: Cron) -> Cron:
        """Add ``cron``; a uid already used by another cron gets a new uid."""
        if not isinstance(cron, Cron):
            raise InvalidCrontab(f"add_cron takes a Cron, got {cron!r}")
        if cron.crontab is self and cron.uid in self.crons:
            return cron
        if cron.crontab is not None:
            del cron.crontab.crons[cron.uid]
        while cron.uid in self.crons:
            object.__setattr__(cron, "uid", new_uid())
        self.crons._put(cron)
        if self.site is not None:
            cron._drawn_in_site()
        replaced = self._deleted.pop(cron.uid, None)
        if replaced is not None:
            cron._inherit_log_ids(replaced)
        self._changed.add(cron.uid)
        return cron

    def by(self, **criteria: Any) -> list[Cron]:
        """Crons whose attributes equal every given criterion (None means any)."""
        wanted = {k: v for k, v in criteria.items() if v is not None}
        for key in wanted:
            if key not in CRON_FIELDS:
                raise InvalidCrontab(f"cannot search crons by {key!r}")
        return [c for c in self.crons.values()
                if all(getattr(c, k) == v for k, v in wanted.items())]

    def by_name(self, name: str) -> list[Cron]:
        return self.by(name=name)

    def by_uid(self, uid: str) -> Cron:
        try:
            return self.crons[uid]
        except KeyError:
            raise NoSuchCron(f"no cron with uid {uid!r}") from None

    def save(self) -> None:
        """Persist what changed and sync the queue (the site's registry manager)."""
        self._site().save_crontab(self)

    def save_cron(self, cron: Cron) -> None:
        self._site().save_crontab(self, only=cron.uid)

    def _site(self) -> Site:
        if self.site is None:
            raise CronkitError("this crontab belongs to no site: use site.crontab")
        return self.site

    def to_dict(self) -> dict[str, Any]:
        return {"activated": self.activated, "crons": [c.to_dict() for c in self.crons.values()]}

    dump = to_dict

    @classmethod
    def from_dict(cls, data: Any) -> Crontab:
        """A Crontab from its dump (or collective.cron's bare list of crons). Strict:
        ``activated`` and ``read_only`` are booleans, ``crons`` a list of cron dumps
        with one uid each; anything else raises InvalidCrontab naming it."""
        if isinstance(data, list):  # collective.cron dumps a bare list of crons
            data = {"crons": data}
        if not isinstance(data, dict):
            raise InvalidCrontab(f"a crontab must be a JSON object, got {shown(data)}")
        unknown = set(data) - {"activated", "crons", "read_only"}
        if unknown:
            raise InvalidCrontab(
                f"unknown crontab field(s): {', '.join(sorted(map(shown, unknown)))}")
        crons = data.get("crons", [])
        if not isinstance(crons, list):
            raise InvalidCrontab(f"invalid crons {shown(crons)}: expected a list")
        switches = {key: json_bool(key, data[key], InvalidCrontab)
                    for key in ("activated", "read_only") if key in data}
        loaded: dict[str, Cron] = {}
        for entry in crons:
            try:
                cron = Cron.load(entry)
            except InvalidCron as exc:
                raise InvalidCrontab(f"invalid cron: {exc}") from None
            if cron.uid in loaded:
                raise InvalidCrontab(f"invalid crons: uid {cron.uid!r} is given twice")
            loaded[cron.uid] = cron
        return cls(loaded.values(), switches.get("activated", True),
                   switches.get("read_only", False))

    @classmethod
    def load(cls, data: Crontab | dict[str, Any] | list[Any] | str | bytes) -> Crontab:
        if isinstance(data, Crontab):
            return data
        return cls.from_dict(json_input(data, "crontab", InvalidCrontab))

    def similar(self, other: Crontab) -> bool:
        """Same switch and the same crons, in order, by definition."""
        return (isinstance(other, Crontab) and self.activated == other.activated
                and len(self.crons) == len(other.crons)
                and all(a.similar(b) for a, b in zip(self.crons.values(), other.crons.values(), strict=True)))

    def __repr__(self) -> str:
        state = "ON" if self.activated else "OFF"
        return f"<Crontab {state} {len(self.crons)} crons{' (unsaved)' if self.dirty else ''}>"

    # -- change tracking, told by its crons ---------------------------------------

    def _cron_changed(self, uid: str) -> None:
        self._changed.add(uid)

    def _cron_deleted(self, cron: Cron) -> None:
        self._changed.discard(cron.uid)
        self._deleted[cron.uid] = cron._log_ids

    # -- persistence API (see the class docstring) ---------------------------------

    @classmethod
    def from_store(cls, data: Mapping[str, Any], site: Site | None = None, *,
                   consume: bool = False) -> Crontab:
        """A new crontab showing the store's ``data``, with nothing to save (see
        ``refresh_from`` for ``consume``)."""
        crontab = cls()
        crontab.site = site
        crontab.refresh_from(data, consume=consume)
        return crontab

    @property
    def version(self) -> int | None:
        """The store version this crontab shows; None before a load or save."""
        return self._version

    def refresh_from(self, data: Mapping[str, Any], *, consume: bool = False) -> None:
        """Show the store's ``data`` in place, keeping Cron objects; forget changes.
        With ``consume`` the rows are taken out of ``data["crons"]`` as they are read
        (it is left empty): a caller that read ``data`` only for this holds each row
        only until its cron is made, not the rows of 100,000 crons beside them."""
        self._activated = bool(data["activated"])
        old = dict(self.crons)
        OrderedDict.clear(self.crons)
        rows = data["crons"]
        if old:
            for uid in old.keys() - {row["uid"] for row in rows}:
                object.__setattr__(old[uid], "_crontab", None)   # deleted in the store meanwhile
        for row in _taken(rows) if consume else rows:
            cron = old.get(row["uid"])
            if cron is None:
                cron = Cron.from_row(row)
            else:
                cron._restore(row)
            self.crons._put(cron)
        self.mark_saved(data["version"])

    def changes(self, only: str | None = None) -> CrontabChanges:
        """What a save (of everything, or of the cron ``only``) must write."""
        changed = self._changed
        uids = [only] if only is not None else [u for u in self.crons if u in changed]
        top = max((c._position or 0.0 for c in self.crons.values()), default=0.0)
        upserts: list[CronRecord] = []
        new_logs, deleted_logs, logs = [], [], []
        for uid in uids:
            cron = self.crons.get(uid)
            if cron is None:
                continue
            position = cron._position
            if position is None:
                top += 1.0
                position = top
            upserts.append(CronRecord((*cron._definition_values(), position)))
            if not (cron._logs or cron._log_ids):   # most crons of a big crontab
                continue
            fresh, dropped = cron._unsaved_logs()
            deleted_logs.extend(dropped)
            for entry in fresh:             # oldest first, so ids grow with dates
                new_logs.append((uid, entry.to_dict() | {"date": entry.date}))
                logs.append(entry)
        whole = only is None
        return CrontabChanges(
            only=only, upserts=upserts, new_logs=new_logs, deleted_logs=deleted_logs, logs=logs,
            deletes=list(self._deleted) if whole else [],
            activated=self.activated if whole and self._activated_changed else None)

    def saved(self, changes: CrontabChanges, version: int, log_ids: Iterable[int]) -> bool:
        """The store wrote ``changes`` at ``version``; False when others wrote meanwhile."""
        for entry, log_id in zip(changes.logs, log_ids, strict=True):
            entry.id = log_id
        crons = self.crons
        for record in changes.upserts:
            row = record.row
            cron = crons.get(row[_UID])
            if cron is not None:
                cron._saved(row[-1])
        previous = self._version
        self.mark_saved(version, changes.only)
        if previous is None or version != previous + 1:
            # The store holds writes this crontab does not show: its version says so,
            # so that it is read again (at once if clean, else after the next save).
            self._version = previous
            return False
        return True

    def mark_saved(self, version: int, only: str | None = None) -> None:
        """Forget the unsaved changes (all, or the cron ``only``'s); show ``version``."""
        if only is None:
            self._changed.clear()
            self._deleted.clear()
            self._activated_changed = False
        else:
            self._changed.discard(only)
        self._version = version


    def log_added(self, uid: str, log: Log, version: int) -> bool:
        """The store appended ``log`` to cron ``uid`` at ``version``: show it if this
        crontab is clean and was at ``version - 1``; return whether it was shown."""
        if self.dirty or self._version != version - 1:
            return False
        cron = self.crons.get(uid)
        if cron is None:
            return False
        cron._log_stored(log)
        self._version = version
        return True
