"""The process's cronkit inside Zope: its settings, its kit and its ZODB database.

Settings come from zope.conf::

    <product-config cronkit>
        store postgresql://cronkit@db/cronkit
        worker instance1 instance2
        instance instance1
    </product-config>

each key with an environment fallback (used when zope.conf does not set it):

=================== ============================== ==========================================
key                 environment                    value (default)
=================== ============================== ==========================================
``store``           ``CRONKIT_STORE``              a cronkit store URL (``sqlite:///`` +
                                                   ``<INSTANCE_HOME or cwd>/var/cronkit.db``)
``worker``          ``CRONKIT_ZOPE_WORKER``        ``on`` (default), ``off``, or instance
                                                   names (space or comma separated): on
                                                   only in those instances
``instance``        ``CRONKIT_ZOPE_INSTANCE``      this instance's name (the host name)
``concurrency``     ``CRONKIT_ZOPE_CONCURRENCY``   the worker's threads, an integer >= 1 (2)
``dashboard-url``   ``CRONKIT_DASHBOARD_URL``      where cronkit's dashboard is served, for
                                                   the control panel's link (none)
``conflict-retries`` ``CRONKIT_ZOPE_CONFLICT_RETRIES`` retries of a job's attempt after a
                                                   ZODB ConflictError, an integer >= 0 (3)
=================== ============================== ==========================================

A bad value, or a key zope.conf's section does not know, raises
:class:`~cronkit.zope.exceptions.ZopeConfigError` naming the key and the value.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cronkit

from .exceptions import ZopeConfigError, ZopeRunnerError

# key -> its environment variable
ENVIRON = {
    "store": "CRONKIT_STORE",
    "worker": "CRONKIT_ZOPE_WORKER",
    "instance": "CRONKIT_ZOPE_INSTANCE",
    "concurrency": "CRONKIT_ZOPE_CONCURRENCY",
    "dashboard-url": "CRONKIT_DASHBOARD_URL",
    "conflict-retries": "CRONKIT_ZOPE_CONFLICT_RETRIES",
}
_STORES = ("sqlite://", "postgresql://", "postgresql+", "postgres://", "memory://")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class Settings:
    """cronkit's settings in this Zope process (see the module's docstring)."""

    store: str
    worker: tuple[str, ...] | bool   # True: on; False: off; names: on only there
    instance: str
    concurrency: int = 2
    dashboard_url: str | None = None
    conflict_retries: int = 3

    @classmethod
    def read(cls, product_config: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None,
             instance_home: str | None = None) -> Settings:
        """The settings from ``product_config`` (zope.conf's ``<product-config cronkit>``
        section as a mapping; None reads Zope's own), with ``environ`` (``os.environ``
        when None) as the fallback of every key.

        :raises ZopeConfigError: a bad value or an unknown key, named in the message.
        """
        if product_config is None:
            product_config = zope_product_config()
        environ = os.environ if environ is None else environ
        unknown = sorted(set(product_config) - set(ENVIRON))
        if unknown:
            raise ZopeConfigError(
                f"<product-config cronkit>: unknown key {unknown[0]!r} (known: "
                f"{', '.join(ENVIRON)})", unknown[0], str(product_config[unknown[0]]))

        def value(key: str) -> tuple[str, str | None]:
            if key in product_config and product_config[key] is not None:
                return f"<product-config cronkit> {key}", str(product_config[key]).strip()
            raw = environ.get(ENVIRON[key])
            return f"{ENVIRON[key]} ({key})", None if raw is None else raw.strip()

        home = instance_home or environ.get("INSTANCE_HOME") or _zope_instance_home() \
            or os.getcwd()
        where, store = value("store")
        if not store:
            store = "sqlite:///" + os.path.join(home, "var", "cronkit.db")
        elif not store.startswith(_STORES):
            raise ZopeConfigError(f"{where}: {store!r} is not a cronkit store URL "
                                  "(sqlite:///..., postgresql://...)", "store", store)
        return cls(store=store, worker=_worker(*value("worker")),
                   instance=_instance(*value("instance")),
                   concurrency=_integer(*value("concurrency"), key="concurrency",
                                        default=2, least=1),
                   dashboard_url=_url(*value("dashboard-url")),
                   conflict_retries=_integer(*value("conflict-retries"),
                                             key="conflict-retries", default=3, least=0))

    def worker_here(self) -> bool:
        """Whether this instance runs cronkit's worker: ``worker`` is on, or names
        this ``instance``."""
        if isinstance(self.worker, bool):
            return self.worker
        return self.instance in self.worker


def _worker(where: str, raw: str | None) -> tuple[str, ...] | bool:
    if raw is None or raw.lower() in ("on", ""):
        return True
    if raw.lower() == "off":
        return False
    names = tuple(n for n in re.split(r"[\s,]+", raw) if n)
    for name in names:
        if not _NAME.match(name):
            raise ZopeConfigError(f"{where}: {raw!r} is neither on, off nor a list of "
                                  f"instance names ({name!r} is not a name)", "worker", raw)
    return names


def _instance(where: str, raw: str | None) -> str:
    if not raw:
        return socket.gethostname()
    if not _NAME.match(raw):
        raise ZopeConfigError(f"{where}: {raw!r} is not an instance name (letters, digits, "
                              "'.', '_', '-')", "instance", raw)
    return raw


def _integer(where: str, raw: str | None, key: str, default: int, least: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        number = int(raw)
    except ValueError:
        number = least - 1
    if number < least:
        raise ZopeConfigError(f"{where}: {raw!r} is not an integer >= {least}", key, raw)
    return number


def _url(where: str, raw: str | None) -> str | None:
    if not raw:
        return None
    if not raw.startswith(("http://", "https://", "/")):
        raise ZopeConfigError(f"{where}: {raw!r} is not an http(s) URL or an absolute path",
                              "dashboard-url", raw)
    return raw.rstrip("/")


def zope_product_config() -> Mapping[str, Any]:
    """zope.conf's ``<product-config cronkit>`` section, or ``{}``."""
    from App.config import getConfiguration

    return (getattr(getConfiguration(), "product_config", None) or {}).get("cronkit") or {}


def _zope_instance_home() -> str | None:
    from App.config import getConfiguration

    return getattr(getConfiguration(), "instancehome", None)


# -- the process's kit and database --------------------------------------------

_lock = threading.Lock()
_kit: cronkit.Cronkit | None = None
_database: Any = None


def settings() -> Settings:
    """This process's settings, read now from zope.conf and the environment.

    :raises ZopeConfigError: a bad value, named."""
    return Settings.read()


def kit() -> cronkit.Cronkit:
    """The process's kit: the one given to :func:`set_kit`, else one created on first
    use on ``settings().store`` (with the system clock)."""
    global _kit
    with _lock:
        if _kit is None:
            _kit = cronkit.Cronkit(store=settings().store)
        return _kit


def set_kit(new: cronkit.Cronkit | None) -> None:
    """Make ``new`` the process's kit (tests: one with a FakeClock on a store file in a
    temporary directory); None forgets it (the next :func:`kit` creates one again). The
    kit replaced is not closed: its owner closes it."""
    global _kit
    with _lock:
        _kit = new


def database() -> Any:
    """The ZODB database jobs run in (Zope's, set at its start).

    :raises ZopeRunnerError: none was set."""
    if _database is None:
        raise ZopeRunnerError("no ZODB database: cronkit.zope.set_database(db) was not "
                              "called (Zope calls it when its database is opened)")
    return _database


def set_database(db: Any) -> None:
    """Make ``db`` (a ``ZODB.DB``) the database jobs run in; None forgets it."""
    global _database
    _database = db
