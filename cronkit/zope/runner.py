"""``cronkit.zope.Runner``: a cronkit runner run in the ZODB, on its Zope or Plone site.

Each attempt of a job gets a ZODB connection of its own (from ``cronkit.zope.database()``)
under the thread's transaction manager, the Zope application wrapped in a request (also
zope.globalrequest's), its site traversed to by the cronkit site's name (the physical
path, ``"/plone"``) with the site hooks set as a request sets them, and the security
manager of the job's user. ``run()`` sees ``self.context`` (and ``self.portal``): the site
in that connection, and ``self.app``: the Zope application; ``self.site`` stays the
cronkit site. The transaction is committed when ``run()`` returns and aborted when it
raises; a ``ZODB.POSException.ConflictError`` (from ``run()`` or from the commit) runs the
attempt again, up to ``conflict_retries`` times, each retry noted on the job.

**Two stores, at least once.** A job's ZODB work and its end in cronkit's store are two
transactions in two databases, written one after the other: the ZODB commit first, then
the job's end. Should the ZODB commit succeed and the end then not be written (the
process dies, cronkit's store is unreachable), the job stays RUNNING until the reaper
finds its worker gone (``error_timeout``) and fails it with "worker lost", or retries it
when the runner has ``retries`` left: then ``run()`` runs again over changes already
committed. As with every at-least-once queue, write runners to be idempotent (look for
what a previous run made before making it again). The other order (the end written, the
ZODB commit lost) cannot happen: the end is written only after the commit returned.
"""

from __future__ import annotations

import contextvars
import inspect
import threading
from typing import Any

import transaction
from AccessControl import SpecialUsers
from AccessControl.SecurityManagement import (
    getSecurityManager,
    newSecurityManager,
    setSecurityManager,
)
from Testing.makerequest import makerequest
from ZODB.POSException import ConflictError
from zope.component.hooks import getSite, setSite
from zope.component.interfaces import ISite as IComponentSite
from zope.event import notify
from zope.globalrequest import getRequest, setRequest
from zope.traversing.interfaces import BeforeTraverseEvent

import cronkit

from .config import database, settings
from .exceptions import ZopeRunnerError


class Runner(cronkit.Runner):
    """A runner whose ``run()`` runs in a ZODB connection and transaction of its own, on
    its Zope or Plone site, as the job's user (see the module's docstring).

    ``conflict_retries``: how many times an attempt that met a ZODB ConflictError runs
    again (None: the ``conflict-retries`` setting, 3 by default, as Zope's publisher).

    The user is the submitted job's ``user``, else the cron's ``user``: that id is looked
    up in the site's ``acl_users``, then in the Zope root's; a user found in neither
    fails the job, naming the user and the site (it never runs as someone else). With no
    user the job runs as Zope's system user, unrestricted, as a script run by
    ``zconsole run`` does.

    ``run()`` must be synchronous: an ``async def run`` fails the job (a coroutine's
    work could not run inside the job's transaction and security context).
    """

    conflict_retries: int | None = None
    #: The site object in the job's connection (as is ``portal``), and the Zope app.
    context: Any
    portal: Any
    app: Any

    def run_in_context(self) -> Any:
        if inspect.iscoroutinefunction(self.run):
            raise ZopeRunnerError(
                f"{type(self).__name__}.run is a coroutine function (async def): a "
                "cronkit.zope.Runner runs in a ZODB transaction and must be synchronous")
        if _under_way():
            # The calling thread has a transaction of its own (kit.run_pending() in a
            # request or a test): never commit or abort it; run in a thread of our own.
            return _in_thread(self._attempts)
        return self._attempts()

    def user_id(self) -> str | None:
        """Who the job runs as: the job's ``user``, else its cron's (None: the system
        user)."""
        user = getattr(self.job, "user", None)
        if not user and self.cron is not None:
            user = self.cron.user
        return user or None

    def _retries(self) -> int:
        """How many times an attempt that met a conflict runs again (read only once one
        did: the settings are not read for every job)."""
        if self.conflict_retries is not None:
            return self.conflict_retries
        return settings().conflict_retries

    def _attempts(self) -> Any:
        attempt = 0
        retries: int | None = None
        while True:
            try:
                return self._attempt()
            except ConflictError as exc:
                if retries is None:
                    retries = self._retries()
                if attempt >= retries:
                    raise
                attempt += 1
                self.job.note(f"ZODB conflict, attempt {attempt} of {retries + 1} runs "
                              f"again: {exc}", status="warning")

    def _attempt(self) -> Any:
        db = database()
        path = self.site.name
        if not path.startswith("/"):
            raise ZopeRunnerError(f"cronkit site {path!r} is not a Zope site (its name is "
                                  "not a physical path such as '/plone')")
        old_site, old_request, old_security = getSite(), getRequest(), getSecurityManager()
        transaction.begin()
        conn = db.open()
        app = request = None
        try:
            app = makerequest(conn.root()["Application"])
            request = app.REQUEST
            setRequest(request)
            site = _traverse(app, path)
            request["PARENTS"] = [site, app]
            notify(BeforeTraverseEvent(site, request))
            if IComponentSite.providedBy(site):
                setSite(site)
            self._login(app, site, request)
            self.context = self.portal = site
            self.app = app
            result = self.run()
            if inspect.isawaitable(result):
                getattr(result, "close", lambda: None)()
                raise ZopeRunnerError(f"{type(self).__name__}.run returned an awaitable: "
                                      "a cronkit.zope.Runner must be synchronous")
            transaction.commit()
            return result
        except BaseException:
            transaction.abort()
            raise
        finally:
            setSecurityManager(old_security)
            setSite(old_site)
            setRequest(old_request)
            if request is not None:
                request.close()
            conn.close()

    def _login(self, app: Any, site: Any, request: Any) -> None:
        uid = self.user_id()
        if uid is None:
            # Read when used: SpecialUsers.system is set when AccessControl.users is
            # imported, which may come after this module's import.
            newSecurityManager(None, SpecialUsers.system)
            return
        for folder in (site.acl_users, app.acl_users):   # a plain folder acquires the root's
            user = folder.getUserById(uid)
            if user is not None:
                if not hasattr(user, "aq_base"):
                    user = user.__of__(folder)
                newSecurityManager(request, user)
                return
        raise ZopeRunnerError(f"no user {uid!r} in {self.site.name}/acl_users nor in the "
                              "Zope root's acl_users: the job does not run as anyone else")


def _traverse(app: Any, path: str) -> Any:
    try:
        return app.unrestrictedTraverse(path.lstrip("/"))
    except (KeyError, AttributeError, LookupError) as exc:
        raise ZopeRunnerError(f"no Zope site at {path!r} (the cronkit site's name): "
                              f"{type(exc).__name__}: {exc}") from None


def _under_way() -> bool:
    """Whether this thread has a transaction begun (a request's, a test's, a script's),
    even one with nothing joined yet: its owner commits or aborts it, never a job."""
    return transaction.manager.manager._txn is not None


def _in_thread(fn: Any) -> Any:
    """``fn()`` in a new thread (with this context: the job's output capture), its
    result returned or its exception raised here."""
    context = contextvars.copy_context()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = context.run(fn)
        except BaseException as exc:  # re-raised in the calling thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="cronkit-zope-job", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")
