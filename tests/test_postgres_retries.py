"""PostgreSQL through lost connections: an operation not safe to repeat is done exactly
once (issue 12), a repeatable one is retried as it is.

A real server sits behind a TCP proxy (``LossyProxy``) that can lose the next COMMIT
in three ways: its answer (the server committed, the client sees its connection die),
the COMMIT itself (nothing committed), or the client's end only (the server's session
lives on, idle in its transaction). For every unsafe operation of the contract
(``cronkit.stores.base.UNSAFE``) each loss is followed by a check of the rows: the
change is there once, and the call returned what one call returns.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from cronkit import StoreError
from cronkit.stores import open_store, postgres
from cronkit.stores.base import REPEATABLE, UNSAFE
from cronkit.stores.sql import SQLStore

NOW = datetime(2008, 1, 1, 1, 3, tzinfo=UTC)
# psycopg sends COMMIT as a simple query: 'Q', length 11, "COMMIT", NUL.
COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"


class LossyProxy:
    """A TCP proxy to the test server that loses the next COMMIT when told to:
    ``"answer"``: forwarded, the server's answer swallowed, both ends closed;
    ``"commit"``: never forwarded, both ends closed;
    ``"hold"``: never forwarded, the client's end closed, the server's kept open."""

    def __init__(self, port: int):
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lost: list[str] = []
        self.held: list[socket.socket] = []
        self._mode: str | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_next_commit(self, mode: str) -> None:
        with self._lock:
            self._mode = mode

    def _take(self) -> str | None:
        with self._lock:
            mode, self._mode = self._mode, None
            return mode

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            swallow = threading.Event()
            threading.Thread(target=self._up, args=(client, server, swallow), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, swallow), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, swallow: threading.Event) -> None:
        while data := _recv(client):
            mode = self._take() if COMMIT in data else None
            if mode in ("commit", "hold"):
                self.lost.append(mode)
                _close(client)
                if mode == "hold":
                    self.held.append(server)
                else:
                    _close(server)
                return
            if mode == "answer":
                swallow.set()
            try:
                server.sendall(data)
            except OSError:
                return
            if mode == "answer":
                return
        _close(server)

    def _down(self, server: socket.socket, client: socket.socket, swallow: threading.Event) -> None:
        while data := _recv(server):
            if swallow.is_set():        # the answer to the COMMIT: it never arrives
                self.lost.append("answer")
                _close(client)
                _close(server)
                return
            try:
                client.sendall(data)
            except OSError:
                return
        if server not in self.held:
            _close(client)

    def close(self) -> None:
        _close(self.listener)
        for sock in self._sockets:
            _close(sock)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture
def proxy(postgres_server) -> Iterator[LossyProxy]:
    proxy = LossyProxy(postgres_server.port)
    yield proxy
    proxy.close()


@pytest.fixture
def direct(pg_db):
    """The store on the database itself: sets up and checks."""
    store = open_store(pg_db)
    yield store
    store.close()


@pytest.fixture
def lossy(pg_db, proxy, direct):
    """The store under test, through the proxy (the schema already made by ``direct``)."""
    url = sa.engine.make_url(pg_db).set(port=proxy.port, query={"sslmode": "disable"})
    store = postgres.PostgresStore(url.render_as_string(hide_password=False), retry_for=30)
    yield store
    store.close()


def row(**fields: Any) -> dict[str, Any]:
    data = {"site": "plone", "type": "export", "name": "export", "status": "pending",
            "payload": {}, "run_after": NOW, "created_at": NOW}
    data.update(fields)
    return data


def cron(uid: str) -> dict[str, Any]:
    return {"uid": uid, "name": "mycron", "periodicity": "@hourly", "timezone": None,
            "activated": True, "environ": {}, "logs_limit": 5, "user": None,
            "misfire": "once", "misfire_grace": None, "position": 1.0}


def entry(minute: int) -> dict[str, Any]:
    return {"date": NOW + timedelta(minutes=minute), "status": "OK", "messages": [f"m{minute}"]}


def claimed(store, worker: str = "w:1") -> int:
    [job_id] = store.add_jobs([row()])
    store.claim(NOW, 1, worker, 1)
    return job_id


# -- one case per unsafe operation: set up (direct), call (lossy), check (direct) --------

Setup = Callable[[Any], Any]
Call = Callable[[Any, Any], Any]
Check = Callable[[Any, Any, Any], None]


def _add_jobs_check(store, _ctx, ids):
    assert ids == [j["id"] for j in store.list_jobs(oldest_first=True)] and len(ids) == 2


def _save_crontab_check(store, _ctx, result):
    version, ids = result
    [a] = store.load_crontab("plone")["crons"]
    assert sorted(e["id"] for e in a["logs"]) == sorted(ids) and len(ids) == 2
    assert version == store.crontab_version("plone")


def _add_log_check(store, _ctx, result):
    log_id, version = result
    [a] = store.load_crontab("plone")["crons"]
    assert [e["id"] for e in a["logs"]] == [log_id] and version == store.crontab_version("plone")


def _claim_check(store, _ctx, rows):
    assert len(rows) == 1 and rows[0]["attempts"] == 1
    assert store.count_jobs(status="running") == 1 and store.count_jobs(status="pending") == 1


def _lease_check(store, job, rows):
    [leased] = store.list_jobs()
    assert [r["id"] for r in rows] == [leased["id"]]
    assert (leased["status"], leased["worker"]) == ("pending", "w:1")


def _leased(store) -> int:
    [job_id] = store.add_jobs([row(run_after=NOW + timedelta(seconds=30))])
    store.lease(NOW, NOW + timedelta(seconds=60), 1, "w:1", 1, NOW + timedelta(seconds=90))
    return job_id


CASES: dict[str, tuple[Setup, Call, Check]] = {
    "add_jobs": (lambda s: None, lambda s, _: s.add_jobs([row(), row(name="other")]),
                 _add_jobs_check),
    "add_jobs[firings]": (
        lambda s: None,
        lambda s, _: s.add_jobs([row(cron_uid="c1", fire_at=NOW)]),
        lambda s, _, ids: ids == [j["id"] for j in s.list_jobs()] == [ids[0]]),
    "add_unique_job": (
        lambda s: None, lambda s, _: s.add_unique_job(row(unique_key="k")),
        lambda s, _, got: got == (s.list_jobs()[0]["id"], True) and s.count_jobs() == 1),
    "save_crontab": (
        lambda s: None,
        lambda s, _: s.save_crontab("plone", None, [cron("a")], [], [("a", entry(1)),
                                                                     ("a", entry(2))], []),
        _save_crontab_check),
    "add_log": (lambda s: s.save_crontab("plone", None, [cron("a")], [], [], []),
                lambda s, _: s.add_log("plone", "a", entry(1), 5), _add_log_check),
    "add_history": (
        lambda s: s.add_jobs([row()])[0], lambda s, job: s.add_history(job, NOW, "note"),
        lambda s, job, _: s.history(job) == [{"date": NOW, "status": "info", "comment": "note"}]),
    "append_text": (
        lambda s: s.add_jobs([row()])[0], lambda s, job: s.append_text(job, "more"),
        lambda s, job, _: s.get_job(job)["status_text"] == "more"),
    "finish_job": (
        claimed, lambda s, job: s.finish_job(job, "success", NOW, "done", attempt=1),
        lambda s, job, got: got == "success" == s.get_job(job)["status"]),
    "resume": (lambda s: s.pause("plone", "mail", NOW), lambda s, _: s.resume("plone", "mail"),
               lambda s, _, got: got is True and s.pauses("plone") == []),
    "claim[limits]": (lambda s: s.add_jobs([row(), row()]),
                      lambda s, _: s.claim(NOW, 2, "w:1", 1, limits={row()["type"]: (1, None)}),
                      _claim_check),
    "requeue_job": (
        claimed, lambda s, job: s.requeue_job(job, NOW, "again", attempt=1),
        lambda s, job, got: got is True and s.get_job(job)["status"] == "pending"),
    "adopt_job": (
        lambda s: claimed(s, "owner"),
        lambda s, job: s.adopt_job(job, 1, "owner", "w:2", 7, NOW),
        lambda s, job, got: got["worker"] == "w:2" == s.get_job(job)["worker"]),
    "cancel_pending": (
        lambda s: s.add_jobs([row()])[0], lambda s, job: s.cancel_pending(job, NOW),
        lambda s, job, got: got is True and s.get_job(job)["status"] == "canceled"),
    "remove_job": (
        lambda s: s.add_jobs([row()])[0], lambda s, job: s.remove_job(job),
        lambda s, _, got: got is None and s.count_jobs() == 0),
    "delete_jobs": (
        lambda s: s.add_jobs([row()])[0], lambda s, job: s.delete_jobs([job]),
        lambda s, _, got: got == 1 and s.count_jobs() == 0),
    "delete_pending_cron_jobs": (
        lambda s: s.add_jobs([row(cron_uid="c1", fire_at=NOW)]),
        lambda s, _: s.delete_pending_cron_jobs("plone", ["c1"]),
        lambda s, _, got: got == 1 and s.count_jobs() == 0),
    "delete_workers": (
        lambda s: s.register_worker({"id": "h:1", "host": "h", "pid": 1, "executor": "threads",
                                     "concurrency": 1, "state": "stopped", "started_at": NOW,
                                     "heartbeat": NOW, "version": "", "info": {}}),
        lambda s, _: s.delete_workers(NOW + timedelta(days=1)),
        lambda s, _, got: got == 1 and s.list_workers() == []),
    "cleanup": (
        lambda s: s.finish_job(claimed(s), "success", NOW - timedelta(days=40)),
        lambda s, _: s.cleanup(NOW - timedelta(days=30), None),
        lambda s, _, got: got == 1 and s.count_jobs() == 0),
    "claim": (lambda s: s.add_jobs([row(), row()]), lambda s, _: s.claim(NOW, 1, "w:1", 1),
              _claim_check),
    "finish_jobs": (
        claimed,
        lambda s, job: s.finish_jobs([{"job_id": job, "status": "success", "now": NOW,
                                       "attempt": 1}]),
        lambda s, job, got: got == ["success"] and s.get_job(job)["status"] == "success"),
    "lease": (
        lambda s: s.add_jobs([row(run_after=NOW + timedelta(seconds=30))])[0],
        lambda s, _: s.lease(NOW, NOW + timedelta(seconds=60), 1, "w:1", 1,
                             NOW + timedelta(seconds=90)),
        _lease_check),
    "start_leased": (
        _leased,
        lambda s, job: s.start_leased([job], NOW + timedelta(seconds=30), "w:1", 1),
        lambda s, job, got: [r["id"] for r in got] == [job]
        and s.get_job(job)["status"] == "running" and s.get_job(job)["attempts"] == 1),
}


def run_case(name, direct, lossy, proxy, mode):
    setup, call, check = CASES[name]
    ctx = setup(direct)
    proxy.lose_next_commit(mode)
    result = call(lossy, ctx)
    assert proxy.lost == [mode], "the COMMIT was not lost: the test proves nothing"
    assert check(direct, ctx, result) in (None, True)


def test_every_unsafe_operation_has_a_case():
    assert {name.split("[")[0] for name in CASES} == UNSAFE


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_unsafe_operation_whose_commit_answer_is_lost_is_not_done_again(
        name, direct, lossy, proxy, caplog):
    with caplog.at_level(logging.WARNING, logger="cronkit.stores.postgres"):
        run_case(name, direct, lossy, proxy, "answer")
    assert "its COMMIT went through" in caplog.text


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_unsafe_operation_whose_commit_never_arrived_is_done_once(name, direct, lossy, proxy):
    run_case(name, direct, lossy, proxy, "commit")


@pytest.mark.parametrize("name", ["add_jobs", "claim", "add_unique_job"])
def test_a_transaction_left_in_progress_is_ended_before_the_retry(
        name, direct, lossy, proxy, caplog):
    """The server's session outlived the client's connection, idle in its transaction
    (holding its locks): the retry ends it, finds it aborted, and does the work once."""
    with caplog.at_level(logging.WARNING, logger="cronkit.stores.postgres"):
        run_case(name, direct, lossy, proxy, "hold")
    assert "still in progress after its connection was lost" in caplog.text
    with direct.engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%'")).scalar() == 0


def test_a_claim_that_took_nothing_is_run_again_after_a_lost_commit(
        direct, lossy, proxy, caplog):
    """A claim is one pipeline then COMMIT; one that found no job has no transaction
    id (it wrote nothing): after a lost answer it runs again, nothing to ask."""
    [later] = direct.add_jobs([row(run_after=NOW + timedelta(seconds=60))])
    proxy.lose_next_commit("answer")
    with caplog.at_level(logging.WARNING, logger="cronkit.stores.postgres"):
        assert lossy.claim(NOW, 1, "w:1", 1) == []
    assert proxy.lost == ["answer"]
    assert "its COMMIT went through" not in caplog.text
    assert direct.get_job(later)["status"] == "pending"


def test_a_job_added_with_its_id_is_added_as_it_is(direct):
    assert direct.add_jobs([row(id=4242)]) == [4242]
    assert direct.get_job(4242)["status"] == "pending"


@pytest.mark.parametrize("name", ["update_job", "cancel_job", "heartbeat", "mark_site"])
def test_a_repeatable_operation_is_retried_as_it_is(name, direct, lossy, proxy):
    assert name in REPEATABLE
    job_id = claimed(direct)
    proxy.lose_next_commit("answer")
    if name == "update_job":
        lossy.update_job(job_id, progress=40)
        assert direct.get_job(job_id)["progress"] == 40
    elif name == "cancel_job":
        assert lossy.cancel_job(job_id, NOW) == "running"
        assert direct.is_canceled(job_id)
    elif name == "heartbeat":
        lossy.heartbeat([job_id], NOW + timedelta(seconds=5))
        assert direct.get_job(job_id)["heartbeat"] == NOW + timedelta(seconds=5)
    else:
        lossy.mark_site("plone")
        assert direct.marked_sites() == ["plone"]
    assert proxy.lost == ["answer"]


def test_an_operation_marked_neither_way_is_never_retried(monkeypatch, direct):
    calls = []

    def unmarked(self):
        calls.append(1)
        raise postgres._ConnectionLost("server closed the connection unexpectedly")

    monkeypatch.setattr(SQLStore, "unmarked", unmarked, raising=False)
    method = postgres._never_retried("unmarked")
    with pytest.raises(StoreError, match="not retried") as info:
        method(direct)
    assert not isinstance(info.value, postgres._ConnectionLost) and calls == [1]


def test_every_public_method_of_the_store_is_marked_or_local():
    public = {n for n in dir(postgres.PostgresStore) if not n.startswith("_")
              and callable(getattr(postgres.PostgresStore, n))}
    listening = {"start_listener", "stop_listener", "wait_for_notify"}
    assert public == REPEATABLE | UNSAFE | postgres.LOCAL | listening
