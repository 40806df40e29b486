"""cronkit at Zope start: the database remembered, the worker started in the instance
(on, off, or only on chosen instances) and every marked site's cron jobs restored; the
settings read from zope.conf's product-config and the environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from zope.event import notify
from zope.processlifetime import DatabaseOpenedWithRoot, ProcessStarting

import cronkit
import cronkit.zope
from cronkit.interfaces import ISite
from cronkit.zope import Settings, ZopeConfigError, lifetime

from .conftest import layered
from .layers import CRONKIT_PLONE_FUNCTIONAL_TESTING
from .test_zope_runner import MakeDocument

layer = layered(CRONKIT_PLONE_FUNCTIONAL_TESTING)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No CRONKIT_* variable of the machine's leaks into a test."""
    for name in list(os.environ):
        if name.startswith("CRONKIT_"):
            monkeypatch.delenv(name)
    yield monkeypatch


def crons_on_both_sites(layer: Any) -> dict[str, cronkit.Cron]:
    crons = {}
    for name in ("plone", "plone2"):
        site = ISite(layer["app"][name])
        site.register_runner(MakeDocument, name="make-document")
        cron = cronkit.Cron(uid=f"nightly-{name}", name="make-document",
                            periodicity="0 3 * * *", environ={"id": "nightly"})
        site.crontab.add_cron(cron)
        site.crontab.save()
        crons[site.name] = cron
    return crons


def restart(layer: Any) -> cronkit.Cronkit:
    """Wipe every pending cron job from the queue, then start again as Zope does: a new
    kit on the same store file, the database opened, the process starting."""
    old = layer["cronkit"]
    for name in ("/plone", "/plone2"):
        site = old.site(name)
        for job in site.jobs.list(status=cronkit.Status.PENDING):
            site.jobs.remove(job.id)
        assert not site.jobs.list(status=cronkit.Status.PENDING)
    new = cronkit.Cronkit(store=old.store.url, clock=layer["clock"])
    layer["restarted"] = new
    cronkit.zope.set_kit(new)
    cronkit.zope.set_database(None)
    notify(DatabaseOpenedWithRoot(layer["zodbDB"]))
    notify(ProcessStarting())
    return new


@pytest.fixture
def restarted(layer: Any) -> Iterator[None]:
    yield
    lifetime.stop_worker()
    if "restarted" in layer:
        layer["restarted"].close()
        del layer["restarted"]


def pending(kit: cronkit.Cronkit, crons: dict[str, cronkit.Cron]) -> dict[str, bool]:
    return {name: kit.site(name).jobs.is_job_pending(kit.site(name).crontab.by_uid(cron.uid))
            for name, cron in crons.items()}


def test_a_restart_restores_every_marked_sites_cron_jobs(layer, env, restarted):
    crons = crons_on_both_sites(layer)
    new = restart(layer)
    assert cronkit.zope.database() is layer["zodbDB"]
    worker = lifetime.worker()
    assert worker is not None and worker.kit is new
    assert pending(new, crons) == {"/plone": True, "/plone2": True}
    [job] = new.site("/plone").jobs.list(status=cronkit.Status.PENDING)
    assert job.run_after.hour == 3


def test_with_the_worker_off_the_instance_starts_none(layer, env, restarted):
    env.setenv("CRONKIT_ZOPE_WORKER", "off")
    crons = crons_on_both_sites(layer)
    new = restart(layer)
    assert lifetime.worker() is None
    assert cronkit.zope.database() is layer["zodbDB"]
    assert pending(new, crons) == {"/plone": False, "/plone2": False}


@pytest.mark.parametrize("instance, started", [("instance2", True), ("instance3", False)])
def test_the_worker_starts_only_in_the_instances_listed(layer, env, restarted, instance,
                                                        started):
    env.setenv("CRONKIT_ZOPE_WORKER", "instance1, instance2")
    env.setenv("CRONKIT_ZOPE_INSTANCE", instance)
    crons = crons_on_both_sites(layer)
    new = restart(layer)
    assert (lifetime.worker() is not None) is started
    assert pending(new, crons) == {"/plone": started, "/plone2": started}


def test_the_worker_is_started_once_and_stopped(layer, env):
    first = lifetime.start_worker(concurrency=1)
    assert lifetime.start_worker() is first is lifetime.worker()
    assert first.concurrency == 1
    lifetime.stop_worker()
    assert lifetime.worker() is None
    lifetime.stop_worker()          # stopping none is nothing


def test_the_process_kit_is_created_on_first_use_from_the_settings(tmp_path, env):
    cronkit.zope.set_kit(None)
    env.setenv("CRONKIT_STORE", f"sqlite:///{tmp_path}/process.db")
    made = cronkit.zope.kit()
    try:
        assert cronkit.zope.kit() is made
        assert made.store.url == f"sqlite:///{tmp_path}/process.db"
    finally:
        cronkit.zope.set_kit(None)
        made.close()


# -- settings -------------------------------------------------------------------


def test_defaults(tmp_path):
    settings = Settings.read({}, environ={}, instance_home=str(tmp_path))
    assert settings.store == f"sqlite:///{tmp_path}/var/cronkit.db"
    assert settings.worker is True and settings.worker_here()
    assert settings.instance
    assert (settings.concurrency, settings.conflict_retries, settings.dashboard_url) == (2, 3, None)


def test_the_product_config_is_read_before_the_environment():
    settings = Settings.read(
        {"store": "postgresql://cronkit@db/cronkit", "worker": "a b", "instance": "b",
         "concurrency": "4", "dashboard-url": "https://cron.example.org/",
         "conflict-retries": "0"},
        environ={"CRONKIT_STORE": "sqlite:///elsewhere.db", "CRONKIT_ZOPE_INSTANCE": "c"})
    assert settings == Settings(store="postgresql://cronkit@db/cronkit", worker=("a", "b"),
                                instance="b", concurrency=4,
                                dashboard_url="https://cron.example.org", conflict_retries=0)
    assert settings.worker_here()


def test_the_environment_is_the_fallback_of_every_key():
    settings = Settings.read({}, environ={
        "CRONKIT_STORE": "sqlite:///x.db", "CRONKIT_ZOPE_WORKER": "OFF",
        "CRONKIT_ZOPE_INSTANCE": "i1", "CRONKIT_ZOPE_CONCURRENCY": "3",
        "CRONKIT_DASHBOARD_URL": "/cronkit", "CRONKIT_ZOPE_CONFLICT_RETRIES": "5"})
    assert settings == Settings(store="sqlite:///x.db", worker=False, instance="i1",
                                concurrency=3, dashboard_url="/cronkit", conflict_retries=5)
    assert not settings.worker_here()


def test_zope_confs_product_config_section_is_read(env):
    from App.config import getConfiguration

    config = getConfiguration()
    before = getattr(config, "product_config", None)
    config.product_config = {"cronkit": {"worker": "off", "instance": "zeo-client-1"}}
    try:
        settings = cronkit.zope.settings()
    finally:
        config.product_config = before
    assert (settings.worker, settings.instance) == (False, "zeo-client-1")


@pytest.mark.parametrize("config, environ, words", [
    ({"concurrency": "many"}, {}, "<product-config cronkit> concurrency: 'many' is not an "
                                  "integer >= 1"),
    ({}, {"CRONKIT_ZOPE_CONCURRENCY": "0"}, "CRONKIT_ZOPE_CONCURRENCY (concurrency): '0' is not an "
                                            "integer"),
    ({"conflict-retries": "-1"}, {}, "conflict-retries: '-1' is not an integer >= 0"),
    ({"store": "mysql://db"}, {}, "store: 'mysql://db' is not a cronkit store URL"),
    ({}, {"CRONKIT_ZOPE_WORKER": "on; off"}, "CRONKIT_ZOPE_WORKER (worker): 'on; off' is "
                                             "neither on, "
                                             "off nor a list of instance names"),
    ({"instance": "my instance"}, {}, "instance: 'my instance' is not an instance name"),
    ({"dashboard-url": "cron.example.org"}, {}, "dashboard-url: 'cron.example.org' is not"),
    ({"wroker": "on"}, {}, "unknown key 'wroker'"),
])
def test_bad_values_are_refused_by_name(config, environ, words):
    with pytest.raises(ZopeConfigError) as raised:
        Settings.read(config, environ=environ)
    assert words in str(raised.value)
    assert isinstance(raised.value, cronkit.CronkitError)
    assert raised.value.key in str(raised.value)
