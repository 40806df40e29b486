"""The REST API under /api/v1: every endpoint, bad input, auth and errors."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import warnings

import httpx
import pytest

import cronkit
from cronkit.web import create_app, is_loopback, make_server

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

API = "/api/v1/sites/plone"


class Echo(cronkit.Runner):
    """Echo the count.

    Second line of help."""

    parameters = {"count": cronkit.Param("int", required=True, help="how many"),
                  "mode": cronkit.Param("select", choices=["fast", "slow"], default="fast")}

    def run(self):
        return f"count={self.job.payload['count']}"


class Anything(cronkit.Runner):
    def run(self):
        raise RuntimeError("broken")


@pytest.fixture
def site(kit):
    site = kit.site("plone")
    site.register_runner(Echo, name="echo")
    site.register_runner(Anything, name="anything")
    site.crontab.save()  # the site exists in the store from now on
    return site


@pytest.fixture
def client(kit, site):
    return TestClient(create_app(kit))


@pytest.fixture
def cron(site):
    cron = cronkit.Cron(name="echo", periodicity="*/5 * * * *", uid="c1", environ={"count": 1})
    site.crontab.add_cron(cron)
    site.crontab.save()
    return cron


def error_of(response, status, field=...):
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    if field is not ...:
        assert body["field"] == field
    return body


# -- sites and crontab ------------------------------------------------------------


def test_sites_lists_every_site_with_its_switch(client, cron):
    assert client.get("/api/v1/sites").json() == [
        {"name": "plone", "activated": True, "crons": 1, "paused": []}]


def test_crontab_shows_its_crons_with_next_run_and_words(client, cron):
    data = client.get(f"{API}/crontab").json()
    assert data["site"] == "plone" and data["activated"] is True and data["read_only"] is False
    (row,) = data["crons"]
    assert row["uid"] == "c1" and row["description"] == "every 5 minutes"
    assert row["next"] == "2008-01-01T01:05:00+00:00"
    assert row["last"] is None and row["effective_timezone"] == "UTC"


def test_patch_crontab_switches_it_off_and_removes_pending_jobs(client, site, cron):
    assert site.jobs.is_job_pending(cron)
    response = client.patch(f"{API}/crontab", json={"activated": False})
    assert response.status_code == 200 and response.json()["activated"] is False
    assert site.crontab.activated is False
    assert not site.jobs.is_job_pending(cron)
    assert response.json()["crons"][0]["next"] is None


@pytest.mark.parametrize("body, status, field", [
    ({"activated": "maybe"}, 422, "activated"),
    ({}, 422, "activated"),
    ({"activated": True, "other": 1}, 422, "other"),
    ([True], 400, "body"),
])
def test_patch_crontab_refuses_bad_bodies(client, body, status, field):
    error_of(client.patch(f"{API}/crontab", json=body), status, field)


def test_read_only_crontab_gives_409_and_changes_nothing(client, site, cron):
    site.crontab.read_only = True
    error_of(client.patch(f"{API}/crontab", json={"activated": False}), 409)
    error_of(client.patch(f"{API}/crons/c1", json={"logs_limit": 3}), 409)
    error_of(client.delete(f"{API}/crons/c1"), 409)
    error_of(client.post(f"{API}/crons", json={"name": "echo", "periodicity": "@daily"}), 409)
    assert site.crontab.activated is True and cron.logs_limit == 5


def test_failed_save_discards_the_unsaved_edit(client, site, cron, monkeypatch):
    def refuse(*args, **kwargs):
        raise cronkit.StoreError("disk full")

    monkeypatch.setattr(site.kit.store, "save_crontab", refuse)
    body = error_of(client.patch(f"{API}/crons/c1", json={"logs_limit": 3}), 409)
    assert "disk full" in body["error"]
    monkeypatch.undo()
    assert not site.crontab.dirty and site.crontab.crons["c1"].logs_limit == 5


# -- crons --------------------------------------------------------------------


def test_create_cron_returns_201_and_queues_its_job(client, site):
    response = client.post(f"{API}/crons", json={
        "name": "echo", "periodicity": "0 12 * * *", "timezone": "Europe/Paris",
        "environ": {"count": 2}, "logs_limit": 3, "user": "admin", "misfire": "skip",
        "misfire_grace": 30})
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["timezone"] == "Europe/Paris" and data["logs"] == []
    assert data["next"] == "2008-01-01T12:00:00+01:00"
    cron = site.crontab.by_uid(data["uid"])
    assert site.jobs.is_job_pending(cron)
    assert client.get(f"{API}/crons").json()[0]["uid"] == cron.uid


def test_a_cron_environ_its_runner_refuses_is_a_422_naming_environ(client, kit):
    error = error_of(client.post(f"{API}/crons", json={"name": "echo", "periodicity": "@hourly",
                                                       "environ": {"count": "x"}}), 422,
                     "environ")
    assert "count" in error["error"]
    assert kit.store.load_crontab("plone")["crons"] == []


def test_create_cron_with_its_own_uid_then_the_same_uid_conflicts(client):
    body = {"uid": "mine", "name": "echo", "periodicity": "@hourly", "environ": {"count": 1}}
    assert client.post(f"{API}/crons", json=body).json()["uid"] == "mine"
    error_of(client.post(f"{API}/crons", json=body), 409, "uid")


@pytest.mark.parametrize("body, field", [
    ({"name": "echo", "periodicity": "61 * * * *"}, "periodicity"),
    ({"name": "echo", "periodicity": "@hourly", "environ": [1]}, "environ"),
    ({"name": "echo", "periodicity": "@hourly", "logs_limit": 26}, "logs_limit"),
    ({"name": "echo", "periodicity": "@hourly", "timezone": "Mars/Base"}, "timezone"),
    ({"name": "echo", "periodicity": "@hourly", "misfire": "never"}, "misfire"),
    ({"name": "echo", "periodicity": "@hourly", "colour": "red"}, "colour"),
    ({"periodicity": "@hourly"}, "name"),
    ({"name": "echo"}, "periodicity"),
])
def test_create_cron_names_the_field_at_fault(client, site, body, field):
    data = error_of(client.post(f"{API}/crons", json=body), 422, field)
    assert field in data["errors"]
    assert not site.crontab.crons and not site.crontab.dirty


def test_get_cron_shows_its_logs(client, site, cron):
    cron.log("FAILURE", ["boom <b>"])
    cron.save()
    data = client.get(f"{API}/crons/c1").json()
    assert data["last"]["status"] == "FAILURE"
    assert data["logs"] == [{"index": 0, "date": "2008-01-01T01:03:00+00:00",
                             "status": "FAILURE", "messages": ["boom <b>"]}]


def test_patch_cron_changes_only_what_is_sent(client, site, cron):
    response = client.patch(f"{API}/crons/c1", json={"periodicity": "@daily", "user": None})
    assert response.status_code == 200
    assert cron.periodicity == "@daily" and cron.environ == {"count": 1}
    assert response.json()["next"] == "2008-01-02T00:00:00+00:00"
    assert site.jobs.list(cron=cron, status="pending")[0].run_after.day == 2


def test_patch_cron_refuses_a_uid_and_bad_values(client, cron):
    error_of(client.patch(f"{API}/crons/c1", json={"uid": "other"}), 422, "uid")
    error_of(client.patch(f"{API}/crons/c1", json={"logs_limit": 0}), 422, "logs_limit")
    assert cron.logs_limit == 5


def test_delete_cron_removes_it_and_its_pending_job(client, site, cron):
    assert client.delete(f"{API}/crons/c1").status_code == 204
    assert "c1" not in site.crontab.crons
    assert not site.jobs.is_job_pending("c1")
    error_of(client.get(f"{API}/crons/c1"), 404, "uid")


def test_disable_and_enable_cron(client, site, cron):
    assert client.post(f"{API}/crons/c1/disable").json()["activated"] is False
    assert not site.jobs.is_job_pending(cron)
    assert client.post(f"{API}/crons/c1/enable").json()["activated"] is True
    assert site.jobs.is_job_pending(cron)


def test_run_cron_queues_a_firing_due_now(client, site, kit, cron):
    response = client.post(f"{API}/crons/c1/run")
    assert response.status_code == 202
    data = response.json()
    assert data["queued"] is True and data["job"]["run_after"] == "2008-01-01T01:03:00+00:00"
    kit.run_pending()
    assert client.get(f"{API}/crons/c1/logs").json()[0]["status"] == "WARN"


def test_logs_list_and_delete_one(client, site, cron):
    cron.log("OK", ["first"])
    cron.log("FAILURE", ["second"])
    cron.save()
    logs = client.get(f"{API}/crons/c1/logs").json()
    assert [entry["messages"] for entry in logs] == [["second"], ["first"]]
    assert client.delete(f"{API}/crons/c1/logs/0").status_code == 204
    assert [entry["messages"] for entry in client.get(f"{API}/crons/c1/logs").json()] == [["first"]]
    assert [entry.messages for entry in site.crontab.by_uid("c1").logs] == [["first"]]
    error_of(client.delete(f"{API}/crons/c1/logs/5"), 404, "index")


# -- jobs ---------------------------------------------------------------------


def test_submit_job_returns_201_pending_with_defaults(client, site):
    response = client.post(f"{API}/jobs", json={"type": "echo", "payload": {"count": 3},
                                                "name": "Echo 3", "priority": 5})
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["status"] == "pending" and data["payload"] == {"count": 3, "mode": "fast"}
    assert data["name"] == "Echo 3" and data["priority"] == 5 and data["history"] == []
    assert site.jobs.get(data["id"]).status == cronkit.Status.PENDING


def test_submit_unique_job_merges_identical_requests(client):
    body = {"type": "echo", "payload": {"count": 1}, "unique": True, "delay": 60}
    first, second = (client.post(f"{API}/jobs", json=body).json() for _ in range(2))
    assert first["id"] == second["id"]


@pytest.mark.parametrize("body, status, field", [
    ({"type": "echo", "payload": {"count": "x"}}, 422, "count"),
    ({"type": "echo", "payload": {}}, 422, "count"),
    ({"type": "echo", "payload": {"count": 1, "extra": 2}}, 422, "extra"),
    ({"type": "echo", "payload": {"count": 1, "mode": "medium"}}, 422, "mode"),
    ({"type": "nope", "payload": {}}, 422, "type"),
    ({"payload": {}}, 422, "type"),
    ({"type": "echo", "payload": [1]}, 422, "payload"),
    ({"type": "echo", "payload": {"count": 1}, "priority": "high"}, 422, "priority"),
    ({"type": "echo", "payload": {"count": 1}, "priority": 2 ** 40}, 422, "priority"),
    ({"type": "echo", "payload": {"count": 1}, "delay": -1}, 422, "delay"),
    ({"type": "echo", "payload": {"count": 1}, "unique": "yes"}, 422, "unique"),
    ({"type": "echo", "payload": {"count": 1}, "name": 3}, 422, "name"),
    ({"type": "echo", "when": "now"}, 422, "when"),
])
def test_submit_job_names_the_field_at_fault(client, site, body, status, field):
    error_of(client.post(f"{API}/jobs", json=body), status, field)
    assert site.jobs.count() == 0


def test_invalid_parameters_list_every_field(client):
    data = error_of(client.post(f"{API}/jobs", json={"type": "echo", "payload": {"x": 1}}), 422)
    assert data["errors"] == {"x": "unknown parameter", "count": "required"}


@pytest.mark.parametrize("body, ctype, status, field", [
    (b"{not json", "application/json", 400, "body"),
    (b'{"type": "echo", "payload": {"count": NaN}}', "application/json", 400, "payload"),
    (b'{"type": "echo", "payload": {"count": 1e999}}', "application/json", 400, "payload"),
    (b'{"type": "echo", "payload": {"count": 99999999999999999999999}}', "application/json", 400,
     "payload"),
    (b'{"type": "echo", "name": "\\ud800"}', "application/json", 400, "name"),
    (b'[1, "\\ud800"]', "application/json", 400, "body"),
    (b"\xff\xfe", "application/json", 400, "body"),
    (b'"text"', "application/json", 400, "body"),
    (b"type=echo", "application/x-www-form-urlencoded", 415, "body"),
    (b'{"type": "echo"}', "text/plain", 415, "body"),
])
def test_bodies_are_json_objects_only(client, body, ctype, status, field):
    """A body that is not strict JSON is refused (400); when a member of it is at fault
    (NaN, a number out of range, a lone surrogate), the error names that member."""
    error_of(client.post(f"{API}/jobs", content=body, headers={"Content-Type": ctype}), status,
             field)


def test_list_jobs_newest_first_filtered_and_paged(client, site):
    for i in range(5):
        site.submit("echo", {"count": i})
    site.submit("anything", {})
    site.jobs.cancel(1)
    data = client.get(f"{API}/jobs", params={"limit": 2, "offset": 1}).json()
    assert data["total"] == 6 and data["limit"] == 2 and data["offset"] == 1
    assert [j["id"] for j in data["jobs"]] == [5, 4]
    data = client.get(f"{API}/jobs", params={"status": "canceled"}).json()
    assert [j["id"] for j in data["jobs"]] == [1]
    data = client.get(f"{API}/jobs", params={"type": "anything"}).json()
    assert [j["type"] for j in data["jobs"]] == ["anything"]


@pytest.mark.parametrize("params, field", [
    ({"status": "sleeping"}, "status"), ({"limit": "x"}, "limit"), ({"limit": 0}, "limit"),
    ({"limit": 501}, "limit"), ({"offset": -1}, "offset"),
])
def test_list_jobs_refuses_bad_query(client, params, field):
    error_of(client.get(f"{API}/jobs", params=params), 400, field)


def test_get_job_has_history_message_and_timestamps(client, site, kit):
    job = site.submit("anything", {})
    kit.run_pending()
    site.jobs.get(job.id).note("a note")
    data = client.get(f"{API}/jobs/{job.id}").json()
    assert data["status"] == "failed" and "RuntimeError: broken" in data["message"]
    assert data["started_at"] == data["finished_at"] == "2008-01-01T01:03:00+00:00"
    assert data["worker"] and data["pid"]
    assert data["history"][-1]["comment"] == "a note"


def test_cancel_pending_job_then_cancel_again_conflicts(client, site):
    job = site.submit("echo", {"count": 1})
    assert client.post(f"{API}/jobs/{job.id}/cancel").json()["status"] == "canceled"
    error_of(client.post(f"{API}/jobs/{job.id}/cancel"), 409, "id")


def test_cancel_from_the_api_ends_the_job_once(client, site):
    ended = []
    receiver = cronkit.subscribe(cronkit.JobFinishedEvent)(ended.append)
    try:
        job = site.submit("echo", {"count": 1})
        client.post(f"{API}/jobs/{job.id}/cancel")
        client.post(f"{API}/jobs/{job.id}/cancel")   # 409: ends nothing again
    finally:
        cronkit.unsubscribe(cronkit.JobFinishedEvent, receiver)
    assert [(e.job_id, e.status) for e in ended] == [(job.id, "canceled")]


def test_retry_a_failed_job_submits_it_again(client, site, kit):
    job = site.submit("anything", {"a": 1}, priority=3)
    kit.run_pending()
    response = client.post(f"{API}/jobs/{job.id}/retry")
    assert response.status_code == 201
    again = response.json()
    assert again["id"] != job.id and again["status"] == "pending"
    assert again["payload"] == {"a": 1} and again["priority"] == 3


def test_retry_refuses_pending_jobs_and_cron_firings(client, site, cron):
    pending = site.submit("echo", {"count": 1})
    error_of(client.post(f"{API}/jobs/{pending.id}/retry"), 409, "id")
    firing = site.jobs.list(cron=cron)[0]
    site.jobs.cancel(firing.id)
    error_of(client.post(f"{API}/jobs/{firing.id}/retry"), 409, "id")


def test_retry_of_a_job_whose_runner_is_gone_conflicts(client, site):
    job = site.submit("echo", {"count": 1})
    site.jobs.cancel(job.id)
    site.unregister_runner("echo")
    error_of(client.post(f"{API}/jobs/{job.id}/retry"), 409, "type")


@pytest.mark.parametrize("job_id", ["999", str(2 ** 70)])
def test_unknown_job_is_404(client, job_id):
    error_of(client.get(f"{API}/jobs/{job_id}"), 404, "id")
    error_of(client.post(f"{API}/jobs/{job_id}/cancel"), 404, "id")


def test_a_job_of_another_site_is_404(client, kit, site):
    other = kit.site("other")
    other.register_runner(Echo, name="echo")
    job = other.submit("echo", {"count": 1})
    error_of(client.get(f"{API}/jobs/{job.id}"), 404, "id")


def test_types_list_help_and_parameter_format(client):
    types = {t["name"]: t for t in client.get(f"{API}/types").json()}
    assert types["echo"]["help"].startswith("Echo the count.")
    assert types["echo"]["parameters"]["count"] == {
        "type": "int", "required": True, "choices": None, "help": "how many", "default": None}
    assert types["anything"]["parameters"] == {} and types["anything"]["help"] == ""


# -- errors, routing ------------------------------------------------------------


@pytest.mark.parametrize("method, path", [
    ("get", "/crontab"), ("patch", "/crontab"), ("get", "/crons"), ("post", "/crons"),
    ("get", "/crons/c1"), ("patch", "/crons/c1"), ("delete", "/crons/c1"),
    ("post", "/crons/c1/enable"), ("post", "/crons/c1/disable"), ("post", "/crons/c1/run"),
    ("get", "/crons/c1/logs"), ("delete", "/crons/c1/logs/0"), ("get", "/jobs"),
    ("post", "/jobs"), ("get", "/jobs/1"), ("post", "/jobs/1/cancel"),
    ("post", "/jobs/1/retry"), ("get", "/types"), ("post", "/pause"), ("post", "/resume"),
])
def test_unknown_site_is_404_everywhere_and_is_not_created(client, kit, method, path):
    kwargs = {"json": {}} if method in ("post", "patch") else {}
    error_of(getattr(client, method)("/api/v1/sites/nope" + path, **kwargs), 404, "site")
    assert "nope" not in kit._sites
    assert "nope" not in {row["name"] for row in kit.store.sites()}


def test_unknown_cron_is_404(client):
    error_of(client.get(f"{API}/crons/none"), 404, "uid")


def test_unknown_route_and_wrong_method_answer_json(client):
    error_of(client.get("/api/v1/nothing"), 404)
    error_of(client.put(f"{API}/crontab", json={}), 405)


def test_openapi_document_lists_every_route(client):
    doc = client.get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    from cronkit.web.api import routes
    documented = {(p, m) for p, item in doc["paths"].items() for m in item}
    served = {(re.sub(":(int|seg)}", "}", r.path), m.lower()) for r in routes for m in r.methods
              if m != "HEAD" and r.path != "/openapi.json"}
    assert served == documented


def test_openapi_document_names_the_read_only_store_and_the_body_limit(client):
    doc = client.get("/api/v1/openapi.json").json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method != "get":
                assert "read-only" in op["responses"]["409"]["description"], (path, method)
            if "requestBody" in op:
                assert "413" in op["responses"], (path, method)


def test_error_response_maps_every_cronkit_error():
    from cronkit.web.api import error_response
    assert error_response(cronkit.NoSuchJob("x")).status_code == 404
    assert error_response(cronkit.InvalidCrontab("x")).status_code == 422
    assert error_response(cronkit.CronkitError("x")).status_code == 400


# -- auth -----------------------------------------------------------------------


@pytest.fixture
def guarded(kit, site, cron):
    return TestClient(create_app(kit, auth_token="s3cret", password="pw", secret_key="k"))


def test_no_token_is_401(guarded):
    response = guarded.get(f"{API}/crontab")
    error_of(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer wrong", "Basic s3cret", "s3cret", "Bearer "])
def test_wrong_token_is_401(guarded, header):
    error_of(guarded.get(f"{API}/crontab", headers={"Authorization": header}), 401)


def test_right_token_opens_the_api(guarded):
    headers = {"Authorization": "Bearer s3cret"}
    assert guarded.get(f"{API}/crontab", headers=headers).status_code == 200
    error_of(guarded.get("/api/v1/sites/nope/crontab", headers=headers), 404, "site")
    response = guarded.post(f"{API}/crons/c1/disable", headers={**headers, "Origin": "http://evil"})
    assert response.status_code == 200


def test_openapi_document_is_public(guarded):
    assert guarded.get("/api/v1/openapi.json").status_code == 200


def test_login_session_opens_the_api_for_same_origin_requests(guarded):
    login(guarded, "pw")
    assert guarded.get(f"{API}/crontab").status_code == 200
    assert guarded.post(f"{API}/crons/c1/disable",
                        headers={"Origin": "http://testserver"}).status_code == 200
    error_of(guarded.post(f"{API}/crons/c1/enable", headers={"Origin": "http://evil.example"}),
             403)
    error_of(guarded.post(f"{API}/crons/c1/enable", headers={"Sec-Fetch-Site": "cross-site"}), 403)


def test_open_server_refuses_cross_site_writes(client, cron):
    error_of(client.post(f"{API}/crons/c1/disable", headers={"Origin": "http://evil.example"}),
             403)
    assert cron.activated is True


def login(client, password):
    import re
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/login", data={"password": password, "csrf_token": token, "next": "/"},
                       follow_redirects=False)


# -- server -----------------------------------------------------------------------


@pytest.mark.parametrize("host, expected", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("192.168.1.2", False), ("example.org", False),
    ("::", False)])
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected


def test_server_refuses_to_start_off_loopback_without_auth(kit):
    with pytest.raises(cronkit.CronkitError, match="without authentication"):
        make_server(kit, host="0.0.0.0", port=0)
    with pytest.raises(cronkit.CronkitError, match="without authentication"):
        cronkit.web.serve(kit, host="192.168.1.2", port=0)


def test_server_off_loopback_with_auth_is_built(kit):
    server = make_server(kit, host="0.0.0.0", port=0, token="t")
    assert server.config.host == "0.0.0.0" and server.config.log_level == "warning"


def test_empty_token_is_refused(kit):
    with pytest.raises(cronkit.CronkitError, match="token"):
        create_app(kit, auth_token="")


def test_open_server_checks_the_host_header(kit, site):
    app = make_server(kit, port=0).config.app
    client = TestClient(app, base_url="http://127.0.0.1")
    assert client.get("/api/v1/sites").status_code == 200
    rebound = TestClient(app, base_url="http://attacker.example")
    assert rebound.get("/api/v1/sites").status_code == 400


def test_live_server_in_a_thread_answers_and_stops(kit, site):
    import threading
    import time

    import httpx

    from tests.servers import free_port

    port = free_port()
    server = make_server(kit, port=port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        response = httpx.get(f"http://127.0.0.1:{port}/api/v1/sites")
        assert response.status_code == 200 and response.json()[0]["name"] == "plone"
    finally:
        server.should_exit = True
        thread.join(10)
    assert not thread.is_alive()


def test_error_response_maps_cron_errors():
    from cronkit.web.api import error_response
    response = error_response(cronkit.InvalidCron("bad", "periodicity"))
    assert response.status_code == 422 and b'"periodicity"' in response.body
    assert error_response(cronkit.ReadOnlyCrontab("ro")).status_code == 409


def test_deleting_a_log_of_a_read_only_crontab_conflicts(client, site, cron):
    cron.log("OK", ["kept"])
    cron.save()
    site.crontab.read_only = True
    error_of(client.delete(f"{API}/crons/c1/logs/0"), 409)
    assert [entry.messages for entry in cron.logs] == [["kept"]]


def test_describe_and_next_never_break_a_view():
    from cronkit.web.common import describe, next_run

    class Broken:
        @property
        def next(self):
            raise cronkit.InvalidCron("no next", "periodicity")

    assert describe("not a cron") == "not a cron"
    assert next_run(Broken()) is None


# -- concurrency --------------------------------------------------------------------------


def test_a_request_waiting_on_the_store_does_not_stop_the_others(kit, site, db_url):
    """A submit that waits for a busy SQLite file (another process holds its write lock)
    runs off the event loop: the server keeps answering, and the submit goes through
    once the lock is let go."""
    app = create_app(kit)
    holder = sqlite3.connect(db_url.split(":///", 1)[1], isolation_level=None)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            holder.execute("BEGIN IMMEDIATE")
            submit = asyncio.create_task(
                client.post(f"{API}/jobs", json={"type": "echo", "payload": {"count": 1}}))
            await asyncio.sleep(0.3)   # the submit reaches the store and waits there
            listed = await asyncio.wait_for(client.get(f"{API}/jobs"), 10)
            assert listed.status_code == 200 and listed.json()["jobs"] == []
            assert not submit.done()
            holder.execute("ROLLBACK")
            return await asyncio.wait_for(submit, 30)

    try:
        created = asyncio.run(scenario())
    finally:
        holder.close()
    assert created.status_code == 201
    assert [j.id for j in site.jobs.list()] == [created.json()["id"]]


def test_a_store_that_fails_is_a_503_not_the_client_s_fault(kit, site, db_url, client):
    with sqlite3.connect(db_url.split(":///", 1)[1]) as conn:
        conn.execute("alter table cronkit_jobs rename to gone")
    data = error_of(client.get(f"{API}/jobs"), 503)
    assert "no such table" in data["error"]
    page = client.get("/jobs")
    assert page.status_code == 503 and "no such table" in page.text


# -- previews: ?dry_run=true, seconds_first, expanded ----------------------------------


PARIS_NEXT_5 = ["2024-03-30T02:30:00+01:00", "2024-03-31T03:00:00+02:00",
                "2024-04-01T02:30:00+02:00", "2024-04-02T02:30:00+02:00",
                "2024-04-03T02:30:00+02:00"]


def test_a_dry_run_answers_the_cron_and_its_preview_and_saves_nothing(client, site, clock):
    clock.set(clock.now().replace(year=2024, month=3, day=29, hour=12, minute=0))
    body = {"name": "echo", "periodicity": "30 2 * * *", "timezone": "Europe/Paris",
            "uid": "p", "environ": {"count": 1}}
    response = client.post(f"{API}/crons?dry_run=true", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["cron"]["uid"] == "p" and data["cron"]["next"] == PARIS_NEXT_5[0]
    preview = data["preview"]
    assert preview["next"] == PARIS_NEXT_5    # 02:30 does not exist on the 31st: 03:00
    assert preview["timezone"] == "Europe/Paris" and preview["note"] is None
    assert preview["expanded_differs"] is False and preview["end"] is None
    assert site.crontab.crons == {} and site.jobs.count() == 0
    assert client.get(f"{API}/crons").json() == []
    assert client.post(f"{API}/crons?dry_run=false", json=body).status_code == 201


def test_a_dry_run_notes_six_fields_read_seconds_last(client):
    body = {"name": "echo", "periodicity": "0 0 12 * * *"}
    note = client.post(f"{API}/crons?dry_run=1", json=body).json()["preview"]["note"]
    assert note.startswith("cronkit reads six fields with the seconds last")
    assert note.endswith("it would run at 12:00")
    body["seconds_first"] = True
    preview = client.post(f"{API}/crons?dry_run=true", json=body).json()["preview"]
    assert preview["note"].startswith("read with the seconds first, the Quartz way")
    assert preview["expanded"] == "0 12 * * * 0" and preview["description"] == "at 12:00"
    body = {"name": "echo", "periodicity": "* * * * * *"}
    assert client.post(f"{API}/crons?dry_run=true", json=body).json()["preview"]["note"] is None


@pytest.mark.parametrize("value", ["yes", "", "TRUEISH"])
def test_a_bad_dry_run_is_400_naming_it(client, site, value):
    body = {"name": "echo", "periodicity": "@daily"}
    error_of(client.post(f"{API}/crons", params={"dry_run": value}, json=body), 400, "dry_run")
    assert site.crontab.crons == {}


def test_a_dry_run_still_refuses_bad_values(client, site):
    body = {"name": "echo", "periodicity": "61 * * * *"}
    error_of(client.post(f"{API}/crons?dry_run=true", json=body), 422, "periodicity")
    body = {"name": "echo", "periodicity": "@daily", "seconds_first": "true"}
    error_of(client.post(f"{API}/crons?dry_run=true", json=body), 422, "seconds_first")


def test_a_read_only_crontab_allows_a_dry_run(client, site, cron):
    site.crontab.read_only = True
    body = {"name": "echo", "periodicity": "@daily"}
    assert client.post(f"{API}/crons?dry_run=true", json=body).status_code == 200
    response = client.patch(f"{API}/crons/c1?dry_run=true", json={"periodicity": "@hourly"})
    assert response.status_code == 200 and response.json()["cron"]["periodicity"] == "@hourly"
    assert site.crontab.crons["c1"].periodicity == "*/5 * * * *"


def test_a_patch_dry_run_previews_the_edit_and_saves_nothing(client, site, cron):
    (before,) = site.jobs.list(cron="c1")
    response = client.patch(f"{API}/crons/c1?dry_run=true",
                            json={"periodicity": "0 0 0 * * *", "seconds_first": True})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["cron"]["expanded"] == "0 0 * * * 0" and data["cron"]["seconds_first"] is True
    assert data["preview"]["next"][0] == "2008-01-02T00:00:00+00:00"
    assert site.crontab.crons["c1"].periodicity == "*/5 * * * *"
    assert [j.id for j in site.jobs.list(cron="c1")] == [before.id]
    assert client.get(f"{API}/crons/c1").json()["seconds_first"] is False


def test_seconds_first_round_trips(client, site, cron):
    response = client.patch(f"{API}/crons/c1",
                            json={"periodicity": "0 0 0 * * *", "seconds_first": True})
    assert response.status_code == 200, response.text
    data = client.get(f"{API}/crons/c1").json()
    assert (data["periodicity"], data["seconds_first"], data["expanded"]) == (
        "0 0 0 * * *", True, "0 0 * * * 0")
    assert data["next"] == "2008-01-02T00:00:00+00:00"
    created = client.post(f"{API}/crons", json={"name": "echo", "periodicity": "0 30 * * * *",
                                                "seconds_first": True,
                                                "environ": {"count": 1}}).json()
    assert created["seconds_first"] is True and created["expanded"] == "30 * * * * 0"
    error_of(client.patch(f"{API}/crons/c1", json={"seconds_first": 1}), 422, "seconds_first")


def test_an_h_expression_shows_as_written_and_as_drawn(client, site):
    created = client.post(f"{API}/crons", json={"name": "echo", "periodicity": "H 3 * * *",
                                                "uid": "h", "environ": {"count": 1}}).json()
    expanded = site.crontab.crons["h"].expanded
    assert created["periodicity"] == "H 3 * * *" and created["expanded"] == expanded
    assert expanded.endswith(" 3 * * *") and "03:" in created["description"]
    preview = client.patch(f"{API}/crons/h?dry_run=true", json={}).json()["preview"]
    assert preview["expanded"] == expanded and preview["expanded_differs"] is True


def test_the_openapi_document_names_dry_run_and_seconds_first(client):
    doc = client.get("/api/v1/openapi.json").json()
    for method, path in (("post", "/sites/{site}/crons"), ("patch", "/sites/{site}/crons/{uid}")):
        op = doc["paths"][path][method]
        assert "dry_run" in [p["name"] for p in op["parameters"]]
        assert "dry_run" in op["responses"]["400"]["description"]
    schemas = doc["components"]["schemas"]
    assert "seconds_first" in schemas["CronInput"]["properties"]
    assert {"seconds_first", "expanded"} <= set(schemas["Cron"]["required"])


# -- results, submission options, sites without a crontab (issue 15) ---------------


class Stats(cronkit.Runner):
    def run(self):
        return {"rows": 3, "names": ["<a>", "b"]}


def test_a_job_shows_the_json_result_its_runner_returned(client, site, kit):
    site.register_runner(Stats, name="stats")
    job = site.submit("stats")
    kit.run_pending()
    data = client.get(f"{API}/jobs/{job.id}").json()
    assert data["status"] == "success" and data["result"] == {"rows": 3, "names": ["<a>", "b"]}
    assert client.get(f"{API}/jobs").json()["jobs"][0]["result"] == data["result"]
    assert client.get(f"{API}/jobs/{site.submit('echo', {'count': 1}).id}").json()["result"] is None


def test_submit_takes_user_run_after_timeout_and_after(client, site):
    response = client.post(f"{API}/jobs", json={
        "type": "echo", "payload": {"count": 1}, "user": "ann",
        "run_after": "2030-01-01T09:00:00+01:00", "timeout": 2.5})
    assert response.status_code == 201, response.text
    data = response.json()
    assert (data["user"], data["run_after"]) == ("ann", "2030-01-01T08:00:00+00:00")
    assert site.jobs.get(data["id"]).timeout == 2.5
    first = data["id"]
    then = client.post(f"{API}/jobs", json={"type": "echo", "payload": {"count": 2},
                                            "after": first}).json()
    assert site.jobs.get(then["id"]).after_ids == [first]
    both = client.post(f"{API}/jobs", json={"type": "echo", "payload": {"count": 3},
                                            "after": [first, then["id"]]}).json()
    assert site.jobs.get(both["id"]).after_ids == [first, then["id"]]


@pytest.mark.parametrize("fields, field", [
    ({"run_after": "2030-01-01T09:00:00"}, "run_after"),    # naive
    ({"run_after": "next week"}, "run_after"), ({"run_after": 5}, "run_after"),
    ({"run_after": "2030-01-01T09:00:00Z", "delay": 5}, "run_after"),
    ({"timeout": 0}, "timeout"), ({"timeout": -1}, "timeout"), ({"timeout": "9"}, "timeout"),
    ({"timeout": True}, "timeout"), ({"user": 5}, "user"), ({"user": "a\x00b"}, "user"),
    ({"after": "1"}, "after"), ({"after": []}, "after"), ({"after": [0]}, "after"),
    ({"after": 999}, "after"),
])
def test_submit_refuses_bad_options_naming_the_field(client, fields, field):
    body = {"type": "echo", "payload": {"count": 1}, **fields}
    error_of(client.post(f"{API}/jobs", json=body), 422, field)


def test_a_site_with_jobs_but_no_saved_crontab_answers_its_job_pages(kit, db_url, client):
    other = cronkit.Cronkit(store=db_url, clock=kit.clock)   # another process, say
    try:
        batch = other.site("batch")
        batch.register_runner(Echo, name="echo")
        job = batch.submit("echo", {"count": 1})
    finally:
        other.close()
    assert "batch" not in kit.site_names()
    data = client.get(f"/api/v1/sites/batch/jobs/{job.id}")
    assert data.status_code == 200 and data.json()["site"] == "batch"
    assert [j["id"] for j in client.get("/api/v1/sites/batch/jobs").json()["jobs"]] == [job.id]
    error_of(client.get("/api/v1/sites/nobatch/jobs"), 404, "site")


def test_a_continuation_and_its_job_name_each_other(client, site, kit):
    first = site.submit("echo", {"count": 1})
    then = site.submit("echo", {"count": 2}, after=first)
    data = client.get(f"{API}/jobs/{then.id}").json()
    assert data["after"] == [first.id] and data["dependents"] == []
    data = client.get(f"{API}/jobs/{first.id}").json()
    assert data["after"] == [] and data["dependents"] == [then.id]
    assert {j["id"]: j["after"] for j in client.get(f"{API}/jobs").json()["jobs"]} == {
        first.id: [], then.id: [first.id]}


def test_pause_and_resume_a_site_or_one_type(client, site, kit):
    job = site.submit("echo", {"count": 1})
    response = client.post(f"{API}/pause")
    assert response.status_code == 200 and response.json() == {"site": "plone", "paused": [None]}
    assert client.post(f"{API}/pause", json={"type": "echo"}).json()["paused"] == [None, "echo"]
    assert client.get("/api/v1/sites").json()[0]["paused"] == [None, "echo"]
    assert client.get(f"{API}/crontab").json()["paused"] == [None, "echo"]
    assert kit.run_pending() == [] and site.jobs.get(job.id).status == cronkit.Status.PENDING
    assert client.post(f"{API}/resume", json={}).json()["paused"] == ["echo"]
    assert client.post(f"{API}/resume", json={"type": "echo"}).json()["paused"] == []
    assert client.post(f"{API}/resume").json()["paused"] == []     # not paused: the same
    assert client.get("/api/v1/sites").json()[0]["paused"] == []
    kit.run_pending()
    assert site.jobs.get(job.id).status == cronkit.Status.SUCCESS


@pytest.mark.parametrize("body, status, field", [
    ({"type": ""}, 422, "type"), ({"type": 5}, 422, "type"), ({"type": "a\x00"}, 422, "type"),
    ({"type": "x" * 201}, 422, "type"), ({"kind": "echo"}, 422, "kind"), ([], 400, "body"),
])
def test_pause_refuses_a_bad_body_naming_the_field(client, site, body, status, field):
    error_of(client.post(f"{API}/pause", json=body), status, field)
    error_of(client.post(f"{API}/resume", json=body), status, field)
    assert site.pauses() == []
    error_of(client.post("/api/v1/sites/nope/pause"), 404, "site")
