"""Storage backends, built from a URL through the ``cronkit.stores`` entry points."""

from __future__ import annotations

import os
from importlib.metadata import entry_points

from ..exceptions import StoreError

DEFAULT_STORE = "sqlite:///cronkit.db"
_BUILTIN = {
    "memory": "cronkit.stores.memory:MemoryStore",
    "sqlite": "cronkit.stores.sql:SQLStore",
    "postgresql": "cronkit.stores.postgres:PostgresStore",
    "postgres": "cronkit.stores.postgres:PostgresStore",
}


def _load(ref: str):
    module, _, attr = ref.partition(":")
    mod = __import__(module, fromlist=[attr])
    return getattr(mod, attr)


def store_url(url: str | None = None) -> str:
    """The store URL: the argument, else ``CRONKIT_STORE``, else the embedded SQLite file."""
    return url or os.environ.get("CRONKIT_STORE") or DEFAULT_STORE


def open_store(url: str | None = None, read_only: bool = False):
    """Build the store named by ``url`` (see :func:`store_url`); raise StoreError.
    ``read_only`` opens it read-only, as ``mode=ro`` in the URL does (reads work, writes
    raise ReadOnlyStore); a SQLite store whose file or folder cannot be written opens
    read-only by itself."""
    url = store_url(url)
    if not isinstance(url, str) or "://" not in url:
        raise StoreError(f"invalid store URL {url!r}: expected e.g. sqlite:///cronkit.db, "
                         "memory:// or postgresql://user@host/db")
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    found = {ep.name: ep for ep in entry_points(group="cronkit.stores")}
    if scheme in found:
        factory = found[scheme].load()
    elif scheme in _BUILTIN:
        factory = _load(_BUILTIN[scheme])
    else:
        known = ", ".join(sorted(set(found) | set(_BUILTIN)))
        raise StoreError(f"unknown store scheme {scheme!r} in {url!r}: known schemes are {known}")
    return factory(url, read_only=True) if read_only else factory(url)
