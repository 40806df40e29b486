"""Workers in the store: a worker registers, heartbeats, shows its state and stops;
one that stopped heartbeating is reported lost; ``cronkit workers`` and
``GET /api/v1/workers`` show the same JSON. The store operations themselves are in the
contract suite (tests/contracts/test_store_contract.py: memory://, SQLite, PostgreSQL).
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from datetime import timedelta

import pytest

import cronkit
from cronkit import cli
from cronkit.web import create_app
from cronkit.workers import LOST, list_workers, worker_dict, worker_status
from tests.helpers import wait_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


class Waits(cronkit.Runner):
    """Runs until it is asked to stop."""

    def run(self):
        while not self.job.canceled:
            time.sleep(0.02)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'workers.db'}"
    return request.getfixturevalue("pg_db")


@pytest.fixture
def kit(url, clock):
    kit = cronkit.Cronkit(store=url, clock=clock, error_timeout=60)
    yield kit
    kit.close()


def test_a_worker_registers_heartbeats_and_stops_in_the_store(kit, clock):
    worker = kit.worker(concurrency=3, executor="threads", heartbeat_interval=10,
                        claim_ahead=0)
    worker.start()
    try:
        [row] = kit.store.list_workers()
        assert row["id"] == kit.worker_id and row["host"] == socket.gethostname()
        assert row["pid"] == os.getpid() and row["executor"] == "threads"
        assert row["concurrency"] == 3 and row["state"] == "running"
        assert row["version"] == cronkit.__version__ and row["started_at"] == clock.now()
        assert row["info"]["claim_ahead"] == 0 and row["info"]["drain_timeout"] == 30
        clock.advance(seconds=30)
        worker.wake()
        wait_for(lambda: kit.store.list_workers()[0]["heartbeat"] == clock.now(),
                 what="the worker's heartbeat")
        worker.pause()
        assert kit.store.list_workers()[0]["state"] == "paused"
        worker.resume()
        assert kit.store.list_workers()[0]["state"] == "running"
    finally:
        worker.stop()
    [row] = kit.store.list_workers()
    assert row["state"] == "stopped" and row["stopped_at"] == clock.now()


def test_a_paused_worker_claims_nothing_until_resumed(kit, clock):
    site = kit.site("plone")
    site.register_runner(Waits, name="waits")
    worker = kit.worker(concurrency=1, claim_ahead=0)
    worker.pause()
    worker.tick()
    job = site.submit("waits")
    worker.tick()
    assert site.jobs.get(job.id).status == cronkit.Status.PENDING
    worker.resume()
    worker.start()
    try:
        wait_for(lambda: site.jobs.get(job.id).status == cronkit.Status.RUNNING,
                 what="the job running")
        [shown] = list_workers(kit.store, clock.now(), kit.error_timeout)
        assert shown["jobs"] == [job.id]
    finally:
        site.jobs.cancel(job.id)
        worker.stop()


def test_a_worker_whose_row_was_deleted_registers_again_at_its_heartbeat(kit, clock):
    worker = kit.worker(heartbeat_interval=1, claim_ahead=0)
    worker.register()
    worker.tick()
    assert kit.store.delete_workers(clock.now() + timedelta(seconds=1)) == 1
    clock.advance(seconds=5)
    worker.tick()
    [row] = kit.store.list_workers()
    assert row["id"] == kit.worker_id and row["heartbeat"] == clock.now()


def test_the_cleanup_deletes_workers_stopped_long_ago(kit, clock):
    old = kit.worker(cleanup_interval=1, claim_ahead=0)
    kit.store.register_worker({"id": "gone:1", "host": "gone", "pid": 1, "executor": "threads",
                               "concurrency": 1, "state": "running", "started_at": clock.now(),
                               "heartbeat": clock.now(), "version": "", "info": {}})
    clock.advance(seconds=old.WORKERS_KEPT + 10)
    old.register()
    old.tick()
    assert [w["id"] for w in kit.store.list_workers()] == [kit.worker_id]


# -- lost workers ------------------------------------------------------------------------


def _row(clock, state="running", **fields):
    return {"id": "h:1", "host": "h", "pid": 1, "executor": "threads", "concurrency": 2,
            "state": state, "started_at": clock.now(), "heartbeat": clock.now(),
            "stopped_at": None, "version": "1", "info": {}, **fields}


def test_a_worker_is_lost_once_its_heartbeat_is_older_than_the_error_timeout(clock):
    row = _row(clock)
    assert worker_status(row, clock.now() + timedelta(seconds=60), 60) == "running"
    assert worker_status(row, clock.now() + timedelta(seconds=61), 60) == LOST
    assert worker_status(_row(clock, "draining"), clock.now() + timedelta(hours=1), 60) == LOST


def test_a_stopped_worker_is_never_lost(clock):
    row = _row(clock, "stopped", stopped_at=clock.now())
    assert worker_status(row, clock.now() + timedelta(days=3), 60) == "stopped"


def test_the_json_of_a_worker(clock):
    shown = worker_dict(_row(clock), clock.now() + timedelta(minutes=5), 60, jobs=[7, 3])
    assert shown["status"] == LOST and shown["lost"] is True and shown["state"] == "running"
    assert shown["started_at"] == clock.now().isoformat() and shown["stopped_at"] is None
    assert shown["jobs"] == [3, 7]
    json.dumps(shown)


# -- cronkit workers and /api/v1/workers -------------------------------------------------


@pytest.fixture
def real_kit(url):
    """A kit on the real clock, as the CLI's (which reads the time itself)."""
    kit = cronkit.Cronkit(store=url, error_timeout=60)
    yield kit
    kit.close()


@pytest.fixture
def two_workers(real_kit):
    """A worker running job 'waits' (a real Worker), one stopped, one lost."""
    kit = real_kit
    site = kit.site("plone")
    site.register_runner(Waits, name="waits")
    store, now = kit.store, kit.clock.now()
    long_ago = now - timedelta(minutes=10)
    store.register_worker(_row(kit.clock, id="old:1", host="old", started_at=long_ago,
                               heartbeat=long_ago))
    store.stop_worker("old:1", long_ago)
    store.register_worker(_row(kit.clock, id="lost:2", host="lost",
                               started_at=now - timedelta(minutes=5),
                               heartbeat=now - timedelta(minutes=5)))
    worker = kit.worker(concurrency=1, claim_ahead=0)
    job = site.submit("waits")
    worker.start()
    wait_for(lambda: site.jobs.get(job.id).status == cronkit.Status.RUNNING, what="running")
    yield worker, job
    site.jobs.cancel(job.id)
    worker.stop()


def test_cronkit_workers_shows_a_table_of_the_workers_not_stopped(real_kit, url, two_workers,
                                                                   capsys):
    kit = real_kit
    worker, job = two_workers
    assert cli.main(["--store", url, "workers"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ID", "HOST", "PID", "EXECUTOR", "CONCURRENCY", "STATE",
                              "STARTED", "HEARTBEAT", "JOBS"]
    assert len(out) == 3
    assert out[1].startswith(kit.worker_id) and out[1].split()[5] == "running"
    assert out[1].split()[-1] == str(job.id)
    assert out[2].startswith("lost:2") and " lost " in out[2]


def test_cronkit_workers_json_all_is_what_the_api_answers(real_kit, url, two_workers, capsys):
    kit = real_kit
    assert cli.main(["--store", url, "workers", "--json", "--all"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [w["id"] for w in shown] == [kit.worker_id, "lost:2", "old:1"]
    assert [w["status"] for w in shown] == ["running", "lost", "stopped"]
    client = TestClient(create_app(kit))
    got = client.get("/api/v1/workers", params={"all": "true"}).json()
    assert [w["id"] for w in got] == [w["id"] for w in shown]
    assert got[0]["jobs"] == shown[0]["jobs"] and got[1]["lost"] is True
    assert [w["id"] for w in client.get("/api/v1/workers").json()] == [kit.worker_id, "lost:2"]


def test_cronkit_workers_on_an_empty_store_says_so(url, capsys):
    assert cli.main(["--store", url, "workers"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no workers running" in captured.err


def test_api_workers_follows_the_auth_rule_and_refuses_a_bad_flag(kit):
    client = TestClient(create_app(kit, auth_token="s3cret"))
    assert client.get("/api/v1/workers").status_code == 401
    ok = client.get("/api/v1/workers", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json() == []
    bad = client.get("/api/v1/workers", params={"all": "maybe"},
                     headers={"Authorization": "Bearer s3cret"})
    assert bad.status_code == 400 and bad.json()["field"] == "all"
