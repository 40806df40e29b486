"""The file of a SQLite store: how its connections open it (read-write, or read-only
when asked to or when it cannot be written), and whether it is still the file the
store opened.

**The mode.** ``mode=ro`` in a store URL (``sqlite:///cronkit.db?mode=ro``), or
``read_only=True``, opens the store read-only: every read works, every write is refused
with ReadOnlyStore (see ``cronkit.stores.base``). ``mode=rw`` opens an existing store
read-write and never creates one; ``mode=rwc`` (the default, SQLite's) creates the file
when there is none. The same option is read from every store URL (memory://,
postgresql://), not only SQLite's.

**Read-only when it cannot be written.** Without a mode, a store whose file is not
writable, whose folder is not (SQLite writes its ``-wal`` and ``-shm`` files beside the
database) or which is on a read-only file system opens read-only, and says why in its
refusals. Connections then use SQLite's ``mode=ro``, and nothing is written on opening
(the schema version is read, not migrated: a store that would need a migration cannot
be opened read-only). A WAL database in a folder that cannot be written can only be read
that way while its ``-shm`` and ``-wal`` files are there, and a store closed cleanly
leaves neither: it is then opened ``immutable=1`` (no locks, no ``-shm``), which is exact
because no ``-wal`` file holds changes the database file lacks and no process can write
the file without writing its folder. A ``-wal`` file left with changes but no ``-shm``
file (a store killed, then made read-only) cannot be read in place; opening says so.

**Identity.** The file's (st_dev, st_ino) is noted once the store is open; ``problem()``
says when the path names no file any more, or another file. Connections opened after
the first use ``mode=rw``: a store whose file was deleted never makes an empty one in
its place.

**Creation.** Opening a path where no file is creates a new, empty store (logged at
INFO): that is how a store starts. It is also what a submitter does when the file was
deleted under a running worker: its work goes to a new file that the worker (which
detects the deletion, see ``Store.check``) no longer reads. Give ``mode=rw`` where a
process must never start a store of its own.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from urllib.parse import quote, unquote

from ..exceptions import StoreError

log = logging.getLogger("cronkit.stores")

MODES = ("ro", "rw", "rwc")
_NO_SHM = ("SQLITE_CANTOPEN", "SQLITE_READONLY_DIRECTORY")
ASKED = "opened read-only"


def split_mode(url: str) -> tuple[str, str | None]:
    """``url`` without its ``mode=`` option, and that mode (None when not given); the
    other options stay as they are written. StoreError for a mode other than ro, rw,
    rwc, or a mode given twice."""
    base, sep, query = url.partition("?")
    if not sep:
        return url, None
    kept, modes = [], []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "mode":
            modes.append(unquote(value))
        else:
            kept.append(part)
    if len(modes) > 1 or (modes and modes[0] not in MODES):
        raise StoreError(f"invalid store URL {url!r}: mode must be given once, as one of "
                         f"{', '.join(MODES)}")
    rest = "&".join(p for p in kept if p)
    return (f"{base}?{rest}" if rest else base), (modes[0] if modes else None)


def _on_read_only_fs(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def not_writable(path: str) -> str | None:
    """Why SQLite cannot write the database ``path`` (it, or its folder, is not
    writable), or None."""
    folder = os.path.dirname(path)
    for what, target in (("its file", path), ("its folder", folder)):
        if os.path.exists(target) and not os.access(target, os.W_OK):
            fs = " (a read-only file system)" if _on_read_only_fs(target) else ""
            return f"{what} {target!r} is not writable{fs}"
    return None


class SQLiteFile:
    """The database file of a SQLite store at ``path`` (made absolute: the process may
    change its working folder), opened with ``mode`` (see the module docstring);
    ``read_only`` when asked for. StoreError when it cannot be opened so."""

    def __init__(self, url: str, path: str, mode: str | None = None, read_only: bool = False):
        self.url = url
        self.path = os.path.abspath(path)
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            raise StoreError(f"cannot open store {url!r}: folder {folder!r} does not exist")
        exists = os.path.exists(self.path)
        #: None when writable, else why not (the refusals say it).
        self.read_only: str | None = ASKED if read_only or mode == "ro" else None
        if self.read_only is None:
            why = not_writable(self.path)
            if why is not None:
                if not exists:
                    raise StoreError(f"cannot create store {url!r}: {why}")
                if mode is not None:
                    raise StoreError(f"cannot open store {url!r} with mode={mode}: {why}")
                self.read_only = why
        if not exists and self.read_only:
            raise StoreError(f"cannot open store {url!r} read-only: there is no file "
                             f"{self.path!r}")
        if not exists and mode == "rw":
            raise StoreError(f"cannot open store {url!r}: there is no file {self.path!r} "
                             "(mode=rw opens an existing store only)")
        self.created = not exists
        self.immutable = bool(self.read_only) and self._needs_immutable(folder)
        self.identity: tuple[int, int] | None = None

    def _uri(self, query: str) -> str:
        return f"file:{quote(self.path)}?{query}"

    def _needs_immutable(self, folder: str) -> bool:
        """Whether read-only connections need ``immutable=1`` (see the module docstring):
        a first read-only connection tells."""
        try:
            conn = sqlite3.connect(self._uri("mode=ro"), uri=True, timeout=60)
            try:
                conn.execute("PRAGMA schema_version").fetchone()
                return False
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            # SQLite cannot make the -shm file: it says so one way or the other.
            if getattr(exc, "sqlite_errorname", None) not in _NO_SHM \
                    or os.access(folder, os.W_OK):
                raise StoreError(f"cannot open store {self.url!r}: {exc}") from None
        wal = f"{self.path}-wal"
        if os.path.exists(wal) and os.path.getsize(wal) > 0:
            raise StoreError(
                f"cannot read store {self.url!r}: its folder is not writable and {wal!r} "
                "holds changes not yet in the database, which SQLite reads only through a "
                f"{self.path + '-shm'!r} file it cannot create: open the store once where "
                "its folder is writable, or copy its files to such a folder")
        log.info("store %s: a WAL database in a folder that is not writable, without its "
                 "-shm file: read as immutable", self.url)
        return True

    def connect(self) -> sqlite3.Connection:
        """A new sqlite3 connection to the file in its mode (never creating it once the
        store is open)."""
        if self.read_only:
            query = "mode=ro&immutable=1" if self.immutable else "mode=ro"
        else:
            query = "mode=rwc" if self.identity is None and self.created else "mode=rw"
        return sqlite3.connect(self._uri(query), uri=True, timeout=60, check_same_thread=False)

    def opened(self) -> None:
        """Note the identity of the file the store has just opened."""
        st = os.stat(self.path)
        self.identity = (st.st_dev, st.st_ino)
        if self.created:
            log.info("store %s: created a new, empty store in %s", self.url, self.path)

    def problem(self) -> str | None:
        """Why the path no longer names the file that was opened, or None. StoreError
        when that cannot be told."""
        if self.identity is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return (f"store {self.url!r}: its file {self.path!r} was deleted after the store "
                    "was opened (what this process writes now is lost, and others write "
                    "to a new file)")
        except OSError as exc:
            raise StoreError(f"store {self.url!r}: cannot look at its file: {exc}") from None
        if (st.st_dev, st.st_ino) != self.identity:
            return (f"store {self.url!r}: its file {self.path!r} was replaced by another file "
                    "after the store was opened")
        return None
