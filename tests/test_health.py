"""Health checks (cronkit.health): /healthz and /readyz on the web app and on a worker's
--health-port, with the store reachable, unreadable (SQLite file removed or replaced),
stopped (PostgreSQL), or at another schema version; the ops server's own rules."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import threading

import httpx
import pytest

import cronkit
from cronkit.health import OpsServer, Readiness
from cronkit.stores.schema import SCHEMA_VERSION
from tests.children import child_env, command
from tests.helpers import ROOT, WebServers, wait_for
from tests.servers import free_port
from tests.test_metrics import spoil

WAIT = 60


@pytest.fixture
def web():
    """``start(kit, **options)``: the web app of ``kit`` on a free loopback port; its URL."""
    servers = WebServers()
    yield servers.start
    servers.stop()


def test_healthz_and_readyz_answer_ok_unauthenticated(kit, web):
    base = web(kit, token="a-token", password="a-password")
    for path in ("/healthz", "/readyz"):
        response = httpx.get(base + path)
        assert (response.status_code, response.text) == (200, "ok\n")
        assert response.headers["cache-control"] == "no-store"
    assert httpx.get(base + "/api/v1/sites").status_code == 401     # the rest is not open


@pytest.mark.parametrize("how", ["removed", "garbage"])
def test_readyz_is_503_when_the_sqlite_store_is_unreadable(kit, db_url, web, how):
    base = web(kit)
    spoil(db_url, how)
    response = httpx.get(base + "/readyz", timeout=30)
    assert response.status_code == 503
    assert response.text == "store not reachable\n"          # no path, no URL
    assert httpx.get(base + "/healthz").status_code == 200   # the process is up


def test_readyz_is_503_naming_the_versions_when_the_schema_is_not_current(kit, db_url, web):
    base = web(kit)
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE cronkit_meta SET value = ? WHERE key = 'schema_version'",
                     (str(SCHEMA_VERSION - 1),))
    response = httpx.get(base + "/readyz")
    assert (response.status_code, response.text) == (
        503, f"store schema version {SCHEMA_VERSION - 1}, expected {SCHEMA_VERSION}\n")


def test_readyz_follows_a_postgresql_server_that_stops_and_starts(pg_db, postgres_server,
                                                                  web):
    kit = cronkit.Cronkit(store=pg_db)
    try:
        base = web(kit)
        assert httpx.get(base + "/readyz").status_code == 200
        postgres_server.stop()
        try:
            response = httpx.get(base + "/readyz", timeout=30)
            assert response.status_code == 503
            assert response.text.startswith("store not reachable")
            assert "postgres" not in response.text and "@" not in response.text
        finally:
            postgres_server.start()
        wait_for(lambda: httpx.get(base + "/readyz", timeout=30).status_code == 200, WAIT,
                 "ready again")
    finally:
        kit.close()


def test_a_store_that_never_answers_is_not_ready_within_the_timeout(kit):
    gate = threading.Event()
    kit.store.schema_version = lambda: gate.wait(WAIT) and SCHEMA_VERSION   # hangs until released
    ready = Readiness(kit, timeout=0.2)
    try:
        assert ready.reason() == "store not reachable (no answer within 0.2 s)"
        assert ready.reason().startswith("store not reachable")   # the same probe waited on
    finally:
        gate.set()
    wait_for(lambda: ready.reason() is None, WAIT, "the probe's end")


def test_ops_server_serves_health_and_metrics_and_stops(kit):
    server = OpsServer(kit, port=0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(base + "/healthz").text == "ok\n"
        assert httpx.get(base + "/readyz").text == "ok\n"
        assert "cronkit_store_up 1.0" in httpx.get(base + "/metrics").text
        assert httpx.head(base + "/healthz").status_code == 200
        assert httpx.get(base + "/other").status_code == 404
    finally:
        server.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(base + "/healthz")


def test_ops_server_off_loopback_needs_a_token_for_metrics(kit):
    with pytest.raises(cronkit.CronkitError, match="without authentication"):
        OpsServer(kit, "0.0.0.0", 0)
    with pytest.raises(cronkit.CronkitError, match="blank"):
        OpsServer(kit, port=0, token="  ")
    OpsServer(kit, "0.0.0.0", 0, metrics=False)        # health alone: nothing to hide
    server = OpsServer(kit, port=0, token="t0ken").start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(base + "/metrics").status_code == 401
        ok = httpx.get(base + "/metrics", headers={"Authorization": "Bearer t0ken"})
        assert ok.status_code == 200
        assert httpx.get(base + "/healthz").status_code == 200
    finally:
        server.stop()


def test_ops_server_on_a_taken_port_names_it(kit):
    first = OpsServer(kit, port=0, metrics=False).start()
    try:
        with pytest.raises(cronkit.CronkitError, match=f"127.0.0.1:{first.port}"):
            OpsServer(kit, port=first.port, metrics=False).start()
    finally:
        first.stop()


def test_worker_health_port_as_a_real_process(db_url, tmp_path):
    health, metrics = free_port(), free_port()
    proc = subprocess.Popen(
        [*command("cronkit"), "worker", "--store", db_url, "--poll", "0.2",
         "--health-port", str(health), "--metrics-port", str(metrics)],
        env=child_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def get(port, path):
            try:
                return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
            except httpx.TransportError:
                return None

        wait_for(lambda: get(health, "/healthz") or proc.poll() is not None, WAIT, "health")
        assert proc.poll() is None, proc.communicate()
        assert get(health, "/readyz").text == "ok\n"
        assert get(health, "/metrics").status_code == 404       # on its own port
        assert get(metrics, "/healthz").status_code == 404
        assert "cronkit_store_up" in get(metrics, "/metrics").text
        spoil(db_url, "garbage")
        response = get(health, "/readyz")
        assert response is None or response.status_code == 503  # or it stopped: gone
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=WAIT)


def test_loopback_names():
    from cronkit.health import is_loopback
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
