"""cronkit.zope.Runner on a real Plone 6 site: each job in a ZODB connection and
transaction of its own (committed, aborted, retried on a conflict), as its user."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import transaction
from plone.app.testing import SITE_OWNER_NAME

import cronkit
import cronkit.zope
from cronkit import LogStatus, Status
from cronkit.interfaces import ISite
from cronkit.zope import lifetime
from cronkit.zope.runner import _under_way

from .conftest import layered
from .layers import CRONKIT_PLONE_FUNCTIONAL_TESTING

layer = layered(CRONKIT_PLONE_FUNCTIONAL_TESTING)


class MakeDocument(cronkit.zope.Runner):
    """Adds the Document environ["id"] to the site."""

    def run(self) -> None:
        self.context.invokeFactory("Document", self.environ["id"], title="Made by a cron")


class MakeThenFail(cronkit.zope.Runner):
    def run(self) -> None:
        self.context.invokeFactory("Document", self.environ["id"])
        raise RuntimeError("the feed is down")


class Bump(cronkit.zope.Runner):
    """Adds 1 to the site's counter; in its first attempt another connection adds 10 to
    the same object and commits first: a ZODB conflict."""

    attempts: list[int] = []

    def run(self) -> None:
        portal = self.context
        portal.counter = getattr(portal, "counter", 0) + 1
        type(self).attempts.append(portal.counter)
        if len(type(self).attempts) == 1:
            with connection(cronkit.zope.database()) as app:
                other = app[portal.getId()]
                other.counter = getattr(other, "counter", 0) + 10
                app._p_jar.transaction_manager.commit()


class Conflicts(cronkit.zope.Runner):
    conflict_retries = 1

    def run(self) -> None:
        from ZODB.POSException import ConflictError
        raise ConflictError("always in conflict")


class Whoami(cronkit.zope.Runner):
    def run(self) -> str:
        from AccessControl import getSecurityManager
        return getSecurityManager().getUser().getUserName()


@contextmanager
def connection(db: Any) -> Iterator[Any]:
    """The Zope app in a new connection with a transaction manager of its own."""
    conn = db.open(transaction_manager=transaction.TransactionManager())
    try:
        yield conn.root()["Application"]
    finally:
        conn.transaction_manager.abort()
        conn.close()


def fire(layer: Any, site: Any, name: str, environ: dict | None = None,
         user: str | None = None) -> cronkit.Cron:
    """Add an every-5-minutes cron of runner ``name`` and move the clock to its firing."""
    cron = cronkit.Cron(uid=f"cron-{name}", name=name, periodicity="*/5 * * * *",
                        environ=environ or {}, user=user)
    site.crontab.add_cron(cron)
    site.crontab.save()
    layer["clock"].advance(minutes=5)
    return cron


def last_log(site: Any, cron: cronkit.Cron) -> Any:
    return site.crontab.by_uid(cron.uid).logs[0]


def ran(site: Any, layer: Any, factory: Any, name: str, payload: Any = None,
        **options: Any) -> Any:
    """A job of ``factory`` (registered on ``site`` as ``name``) submitted, what is due
    run, and the job as it ended."""
    site.register_runner(factory, name=name)
    job = site.submit(name, payload, **options)
    layer["cronkit"].run_pending()
    return site.jobs.get(job.id)


def test_a_cron_fires_and_its_document_is_there_after_the_transaction(layer):
    site = ISite(layer["portal"])
    site.register_runner(MakeDocument, name="make-document")
    cron = fire(layer, site, "make-document", {"id": "news"})
    jobs = layer["cronkit"].run_pending()
    assert [job.status for job in jobs] == [Status.SUCCESS], jobs[0].message
    assert last_log(site, cron).status == LogStatus.OK
    with connection(layer["zodbDB"]) as app:
        assert app["plone"]["news"].title == "Made by a cron"
        assert app["plone"]["news"].portal_type == "Document"


def test_a_cron_fires_in_a_started_worker(layer):
    site = ISite(layer["portal"])
    site.register_runner(MakeDocument, name="make-document")
    cron = fire(layer, site, "make-document", {"id": "from-worker"})
    lifetime.start_worker(concurrency=1)
    deadline = time.monotonic() + 60
    while not site.jobs.list(cron=cron, status=Status.SUCCESS):
        assert time.monotonic() < deadline, site.jobs.list(cron=cron)
        time.sleep(0.05)
    with connection(layer["zodbDB"]) as app:
        assert "from-worker" in app["plone"].objectIds()


def test_a_failing_runner_leaves_no_content_and_logs_failure(layer):
    site = ISite(layer["portal"])
    site.register_runner(MakeThenFail, name="make-then-fail")
    cron = fire(layer, site, "make-then-fail", {"id": "half-done"})
    [job] = layer["cronkit"].run_pending()
    assert job.status == Status.FAILED
    assert "the feed is down" in job.message
    log = last_log(site, cron)
    assert log.status == LogStatus.FAILURE
    assert any("the feed is down" in m for m in log.messages)
    with connection(layer["zodbDB"]) as app:
        assert "half-done" not in app["plone"].objectIds()


def test_a_zodb_conflict_is_retried_and_each_change_is_kept_once(layer):
    Bump.attempts = []
    site = ISite(layer["portal"])
    site.register_runner(Bump, name="bump")
    fire(layer, site, "bump")
    [job] = layer["cronkit"].run_pending()
    assert job.status == Status.SUCCESS, job.message
    assert Bump.attempts == [1, 11]     # the retry saw the other connection's commit
    with connection(layer["zodbDB"]) as app:
        assert app["plone"].counter == 11
    notes = [entry for entry in job.history if "ZODB conflict" in str(entry)]
    assert len(notes) == 1


def test_conflicts_after_the_last_retry_fail_the_job(layer):
    job = ran(ISite(layer["portal"]), layer, Conflicts, "conflicts")
    assert job.status == Status.FAILED
    assert "ConflictError" in job.message and "always in conflict" in job.message
    assert len([e for e in job.history if "ZODB conflict" in str(e)]) == 1


def test_two_plone_sites_keep_separate_crontabs(layer):
    app = layer["app"]
    plone, plone2 = ISite(app["plone"]), ISite(app["plone2"])
    assert (plone.name, plone2.name) == ("/plone", "/plone2")
    for site, uid in ((plone, "a"), (plone2, "b")):
        site.register_runner(MakeDocument, name="make-document")
        site.crontab.add_cron(cronkit.Cron(uid=uid, name="make-document",
                                           periodicity="*/5 * * * *", environ={"id": uid}))
        site.crontab.save()
    assert list(plone.crontab.crons) == ["a"]
    assert list(plone2.crontab.crons) == ["b"]
    layer["clock"].advance(minutes=5)
    jobs = layer["cronkit"].run_pending()
    assert sorted(job.status for job in jobs) == [Status.SUCCESS] * 2
    with connection(layer["zodbDB"]) as root:
        assert "a" in root["plone"].objectIds() and "a" not in root["plone2"].objectIds()
        assert "b" in root["plone2"].objectIds() and "b" not in root["plone"].objectIds()


def add_member(portal: Any, uid: str, roles: tuple[str, ...] = ("Member", "Contributor")) -> None:
    pas = portal["acl_users"]
    pas.source_users.addUser(uid, uid, "secret-" + uid)
    for role in roles:
        pas.portal_role_manager.doAssignRoleToPrincipal(uid, role)
    transaction.commit()


def test_a_cron_runs_as_its_user(layer):
    add_member(layer["portal"], "jane")
    site = ISite(layer["portal"])
    site.register_runner(MakeDocument, name="make-document")
    fire(layer, site, "make-document", {"id": "janes"}, user="jane")
    [job] = layer["cronkit"].run_pending()
    assert job.status == Status.SUCCESS, job.message
    with connection(layer["zodbDB"]) as app:
        doc = app["plone"]["janes"]
        assert (doc.Creator(), doc.creators) == ("jane", ("jane",))


def test_a_submitted_job_runs_as_its_user_found_in_the_zope_root(layer):
    job = ran(ISite(layer["portal"]), layer, Whoami, "whoami", user=SITE_OWNER_NAME)
    assert (job.status, job.result) == (Status.SUCCESS, SITE_OWNER_NAME)


def test_without_a_user_a_job_runs_as_the_system_user(layer):
    site = ISite(layer["portal"])
    site.register_runner(Whoami, name="whoami")
    job = site.submit("whoami")
    layer["cronkit"].run_pending()
    assert site.jobs.get(job.id).result == "System Processes"


def test_an_unknown_user_fails_the_job_naming_the_user_and_the_site(layer):
    site = ISite(layer["portal"])
    site.register_runner(MakeDocument, name="make-document")
    cron = fire(layer, site, "make-document", {"id": "nobodys"}, user="nobody")
    [job] = layer["cronkit"].run_pending()
    assert job.status == Status.FAILED
    assert "'nobody'" in job.message and "/plone" in job.message
    assert last_log(site, cron).status == LogStatus.FAILURE
    with connection(layer["zodbDB"]) as app:
        assert "nobodys" not in app["plone"].objectIds()


def test_run_pending_inside_a_transaction_under_way_leaves_it_alone(layer):
    portal = layer["portal"]
    portal.probe = "the test's own change"          # joins the test's transaction
    assert _under_way()
    site = ISite(portal)
    site.register_runner(MakeDocument, name="make-document")
    job = site.submit("make-document", payload={"id": "beside"})
    layer["cronkit"].run_pending()
    assert site.jobs.get(job.id).status == Status.SUCCESS
    assert _under_way() and portal.probe == "the test's own change"
    with connection(layer["zodbDB"]) as app:
        assert "beside" in app["plone"].objectIds()
        assert not hasattr(app["plone"].aq_base, "probe")   # not committed by the job


def test_the_runner_sees_its_site_its_app_and_the_site_hooks(layer):
    seen: dict[str, Any] = {}

    class Look(cronkit.zope.Runner):
        def run(self) -> None:
            from zope.component.hooks import getSite
            from zope.globalrequest import getRequest
            seen.update(context=self.context.getPhysicalPath(), portal=self.portal is self.context,
                        app=self.app.getPhysicalPath(), site=self.site.name,
                        hook=getSite().getPhysicalPath(),
                        request=getRequest() is self.context.REQUEST)

    site = ISite(layer["portal"])
    site.register_runner(Look, name="look")
    job = site.submit("look")
    layer["cronkit"].run_pending()
    assert site.jobs.get(job.id).status == Status.SUCCESS
    assert seen == {"context": ("", "plone"), "portal": True, "app": ("",), "site": "/plone",
                    "hook": ("", "plone"), "request": True}


def test_an_async_run_is_refused_with_a_clear_error(layer):
    class Async(cronkit.zope.Runner):
        async def run(self) -> None:
            pass

    job = ran(ISite(layer["portal"]), layer, Async, "async")
    assert job.status == Status.FAILED
    assert "async def" in job.message and "synchronous" in job.message


def test_a_run_that_returns_an_awaitable_is_refused_and_its_work_aborted(layer):
    class Sneaky(cronkit.zope.Runner):
        def run(self) -> Any:
            self.context.invokeFactory("Document", "sneaky")

            async def later() -> None:
                pass
            return later()

    job = ran(ISite(layer["portal"]), layer, Sneaky, "sneaky")
    assert job.status == Status.FAILED and "returned an awaitable" in job.message
    with connection(layer["zodbDB"]) as app:
        assert "sneaky" not in app["plone"].objectIds()


def test_a_failure_beside_a_transaction_under_way_fails_the_job_and_leaves_it(layer):
    portal = layer["portal"]
    portal.probe = "the test's own change"
    site = ISite(portal)
    job = ran(site, layer, MakeThenFail, "make-then-fail", payload={"id": "half"})
    assert job.status == Status.FAILED and "RuntimeError: the feed is down" in job.message
    assert _under_way() and portal.probe == "the test's own change"
    assert "half" not in portal.objectIds()


@pytest.mark.parametrize("name, words", [("/no-such-site", "no Zope site at '/no-such-site'"),
                                         ("plain", "is not a Zope site")])
def test_a_cronkit_site_that_is_no_zope_site_fails_its_jobs(layer, name, words):
    site = layer["cronkit"].site(name)
    job = ran(site, layer, Whoami, "whoami")
    assert job.status == Status.FAILED and words in job.message


def test_without_a_database_a_job_fails_saying_so(layer):
    cronkit.zope.set_database(None)
    job = ran(ISite(layer["portal"]), layer, Whoami, "whoami")
    assert job.status == Status.FAILED and "no ZODB database" in job.message
    with pytest.raises(cronkit.zope.ZopeRunnerError):
        cronkit.zope.database()
