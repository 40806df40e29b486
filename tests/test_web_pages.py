"""The dashboard's pages through Starlette's TestClient: crontabs, crons, logs, jobs,
job types, forms with inline errors, CSRF, login, escaping."""

from __future__ import annotations

import re
import warnings

import pytest

import cronkit
from cronkit.web import create_app
from cronkit.web.security import safe_next

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

XSS = "<script>alert(1)</script>"


class Export(cronkit.Runner):
    """Export products.

    To a <b>CSV</b> file."""

    parameters = {
        "limit": cronkit.Param("int", required=True, help="max rows"),
        "dry": cronkit.Param("bool", help="change nothing"),
        "format": cronkit.Param("select", choices=["csv", "json"], default="csv"),
        "label": cronkit.Param("string"),
    }

    def run(self):
        self.job.update(progress=50, text=XSS)


class Free(cronkit.Runner):
    """Takes any payload."""

    def run(self):
        raise RuntimeError("free failed")


@pytest.fixture
def site(kit):
    site = kit.site("plone")
    site.register_runner(Export, name="export")
    site.register_runner(Free, name="free")
    site.crontab.save()
    return site


@pytest.fixture
def client(kit, site):
    return TestClient(create_app(kit))


@pytest.fixture
def cron(site):
    cron = cronkit.Cron(name="export", periodicity="*/5 * * * *", uid="c1",
                        environ={"limit": 1, "label": XSS})
    site.crontab.add_cron(cron)
    site.crontab.save()
    return cron


def csrf(client, url="/"):
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(url).text).group(1)


def post(client, url, data=None, **kwargs):
    data = dict(data or {})
    data.setdefault("csrf_token", csrf(client))
    return client.post(url, data=data, follow_redirects=False, **kwargs)


def errors_in(html):
    return dict(re.findall(r'<p class="error" id="err-([a-z_]+)">([^<]*)</p>', html))


# -- dashboard, sites, crontab --------------------------------------------------


def test_dashboard_lists_sites_and_recent_jobs(client, site, cron):
    site.submit("free", {"a": 1}, name=XSS)
    html = client.get("/").text
    assert 'href="/sites/plone"' in html and ">ON<" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and XSS not in html


def test_dashboard_without_sites_or_jobs(kit):
    html = TestClient(create_app(kit)).get("/").text
    assert "No site yet" in html and "No job yet" in html


def test_pages_carry_security_headers(client):
    response = client.get("/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_static_assets_are_served_by_cronkit(client):
    assert client.get("/static/cronkit.css").status_code == 200
    assert "fetch(" in client.get("/static/cronkit.js").text


def test_site_page_shows_crons_with_words_next_and_last(client, site, cron):
    cron.log("FAILURE", ["boom"])
    cron.save()
    html = client.get("/sites/plone").text
    assert "every 5 minutes" in html and "<code>*/5 * * * *</code>" in html
    assert "2008-01-01 01:05:00 UTC" in html
    assert "FAILURE" in html and "2008-01-01 01:03:00 UTC" in html


def test_site_page_without_crons(client):
    assert "No cron yet" in client.get("/sites/plone").text


def test_unknown_site_is_a_404_page_and_not_created(client, kit):
    response = client.get("/sites/nope")
    assert response.status_code == 404 and "no site named" in response.text
    assert "nope" not in kit._sites


def test_unknown_page_is_a_404_page(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "<h1>Error 404</h1>" in response.text


def test_crontab_switch(client, site, cron):
    assert post(client, "/sites/plone/crontab", {"activated": "off"}).status_code == 303
    assert site.crontab.activated is False and not site.jobs.is_job_pending(cron)
    assert "Crontab is <strong class=\"off\">OFF" in client.get("/sites/plone").text
    post(client, "/sites/plone/crontab", {"activated": "on"})
    assert site.crontab.activated is True and site.jobs.is_job_pending(cron)


# -- crons --------------------------------------------------------------------


def test_add_cron_through_the_form(client, site):
    html = client.get("/sites/plone/crons/new").text
    assert '<option value="export">' in html
    response = post(client, "/sites/plone/crons/new", {
        "name": "export", "periodicity": "0 3 * * *", "timezone": "Europe/Paris",
        "activated": "on", "environ": '{"limit": 5}', "logs_limit": "7", "user": "bob",
        "misfire": "all", "misfire_grace": "60"})
    assert response.status_code == 303
    (cron,) = site.crontab.crons.values()
    assert response.headers["location"] == f"/sites/plone/crons/{cron.uid}"
    assert (cron.periodicity, cron.timezone, cron.environ, cron.logs_limit, cron.user,
            cron.misfire, cron.misfire_grace) == ("0 3 * * *", "Europe/Paris", {"limit": 5}, 7,
                                                  "bob", "all", 60)
    assert site.jobs.is_job_pending(cron)
    assert f"cron {cron.uid} (export) added" in client.get(response.headers["location"]).text


def test_add_cron_with_empty_optional_fields_takes_the_defaults(client, site):
    post(client, "/sites/plone/crons/new", {"name": "free", "periodicity": "@hourly"})
    (cron,) = site.crontab.crons.values()
    assert (cron.activated, cron.environ, cron.logs_limit, cron.timezone, cron.misfire) == \
        (False, {}, 5, None, "once")


def test_invalid_cron_is_shown_inline_with_the_input_kept(client, site):
    response = post(client, "/sites/plone/crons/new", {
        "name": "export", "periodicity": "99 * * * *", "environ": '["not", "an object"]',
        "logs_limit": "26", "timezone": "Mars/Olympus", "activated": "on"})
    assert response.status_code == 422
    errors = errors_in(response.text)
    assert set(errors) == {"periodicity", "environ", "logs_limit", "timezone"}
    assert "from 1 to 25" in errors["logs_limit"]
    assert 'value="99 * * * *"' in response.text and 'value="26"' in response.text
    assert "[&#34;not&#34;, &#34;an object&#34;]</textarea>" in response.text
    assert 'value="Mars/Olympus"' in response.text
    assert not site.crontab.crons and not site.crontab.dirty


def test_missing_name_and_periodicity_are_required(client):
    errors = errors_in(post(client, "/sites/plone/crons/new", {}).text)
    assert errors == {"name": "name is required", "periodicity": "periodicity is required"}


def test_edit_cron(client, site, cron):
    html = client.get("/sites/plone/crons/c1/edit").text
    assert 'value="*/5 * * * *"' in html and "&lt;script&gt;" in html
    response = post(client, "/sites/plone/crons/c1/edit", {
        "name": "export", "periodicity": "@daily", "environ": '{"limit": 2}', "logs_limit": "5",
        "misfire": "once", "activated": "on"})
    assert response.status_code == 303
    assert cron.periodicity == "@daily" and cron.environ == {"limit": 2}


def test_an_environ_the_runner_refuses_is_shown_inline_and_nothing_saved(client, site, cron):
    response = post(client, "/sites/plone/crons/c1/edit", {
        "name": "export", "periodicity": "@daily", "environ": "{}", "activated": "on"})
    assert response.status_code == 422 and "limit: required" in response.text
    assert cron.periodicity == "*/5 * * * *"


def test_edit_cron_errors_leave_the_cron_alone(client, site, cron):
    response = post(client, "/sites/plone/crons/c1/edit", {
        "name": "export", "periodicity": "@daily", "environ": "{oops", "activated": "on"})
    assert response.status_code == 422 and "environ" in errors_in(response.text)
    assert ">{oops</textarea>" in response.text
    assert cron.periodicity == "*/5 * * * *" and not site.crontab.dirty


def test_cron_page_shows_details_logs_and_firings(client, cron):
    cron.log("FAILURE", [XSS])
    cron.save()
    html = client.get("/sites/plone/crons/c1").text
    assert "FAILURE" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert XSS not in html
    assert "2008-01-01 01:05:00 UTC" in html
    assert 'action="/sites/plone/crons/c1/logs/0/delete"' in html


def test_cron_page_of_unknown_cron_is_404(client):
    assert client.get("/sites/plone/crons/none").status_code == 404


def test_cron_actions(client, site, kit, cron):
    post(client, "/sites/plone/crons/c1/disable")
    assert cron.activated is False and not site.jobs.is_job_pending(cron)
    post(client, "/sites/plone/crons/c1/enable")
    assert cron.activated is True
    post(client, "/sites/plone/crons/c1/run")
    kit.run_pending()
    assert cron.last.status == cronkit.LogStatus.OK
    assert post(client, "/sites/plone/crons/c1/explode").status_code == 404
    response = post(client, "/sites/plone/crons/c1/delete")
    assert response.headers["location"] == "/sites/plone" and "c1" not in site.crontab.crons


def test_delete_a_log(client, site, cron):
    cron.log("OK", ["old"])
    cron.log("FAILURE", ["new"])
    cron.save()
    post(client, "/sites/plone/crons/c1/logs/0/delete")
    assert [entry.messages for entry in site.crontab.by_uid("c1").logs] == [["old"]]
    assert post(client, "/sites/plone/crons/c1/logs/9/delete").status_code == 404


def test_read_only_crontab_shows_a_conflict(client, site, cron):
    site.crontab.read_only = True
    response = post(client, "/sites/plone/crons/c1/disable")
    assert response.status_code == 409 and "read-only" in response.text
    assert cron.activated is True and not site.crontab.dirty


@pytest.mark.parametrize("url", [
    "/sites/plone/crontab", "/sites/plone/crons/new", "/sites/plone/crons/c1/edit",
    "/sites/plone/crons/c1/run", "/sites/plone/crons/c1/delete",
    "/sites/plone/crons/c1/logs/0/delete", "/sites/plone/jobs/1/cancel",
    "/sites/plone/types/export", "/logout", "/login"])
def test_posts_without_csrf_token_are_403(client, site, cron, url):
    site.submit("free", {})
    client.get("/")  # a session exists, with its token
    for data in ({}, {"csrf_token": "forged"}):
        response = client.post(url, data=data, follow_redirects=False)
        assert response.status_code == 403, url
    assert "c1" in site.crontab.crons and site.jobs.get(1).status == cronkit.Status.PENDING


# -- jobs ---------------------------------------------------------------------


def test_jobs_list_newest_first_with_live_progress_bars(client, site):
    for i in range(3):
        site.submit("export", {"limit": i}, name=f"export {i}")
    html = client.get("/jobs").text
    assert html.index("export 2") < html.index("export 1") < html.index("export 0")
    assert 'data-job="plone:3"' in html and '<progress max="100" value="0"' in html
    assert "Jobs 1–3 of 3" in html


def test_jobs_filters(client, site, kit):
    other = kit.site("other")
    other.register_runner(Free, name="free")
    site.submit("export", {"limit": 1}, name="mine")
    other.submit("free", {}, name="theirs")
    site.jobs.cancel(1)
    assert "theirs" not in client.get("/jobs?site=plone").text
    html = client.get("/jobs?status=canceled").text
    assert "mine" in html and "theirs" not in html
    html = client.get("/jobs?type=free").text
    assert "theirs" in html and "mine" not in html
    assert "No job matches" in client.get("/jobs?site=plone&status=running").text
    assert client.get("/jobs?status=sleeping").status_code == 400
    assert client.get("/jobs?site=nope").status_code == 404


def test_jobs_are_paginated(client, site):
    for i in range(30):
        site.submit("free", {"i": i})
    html = client.get("/jobs?site=plone").text
    assert "page 1 of 2" in html and 'href="/jobs?site=plone&amp;page=2"' in html
    html = client.get("/jobs?site=plone&page=2").text
    assert "Jobs 26–30 of 30" in html and 'rel="prev"' in html
    assert "page 1 of 2" in client.get("/jobs?site=plone&page=oops").text
    html = client.get("/jobs?page=2").text
    assert 'href="/jobs?page=1"' in html


def test_job_detail_shows_message_pid_worker_history(client, site, kit):
    job = site.submit("free", {"x": XSS})
    kit.run_pending()
    site.jobs.get(job.id).note("checked " + XSS)
    html = client.get(f"/sites/plone/jobs/{job.id}").text
    assert "RuntimeError: free failed" in html
    fresh = site.jobs.get(job.id)
    assert f"<dd>{fresh.pid}</dd>" in html and fresh.worker in html
    assert "checked &lt;script&gt;" in html and XSS not in html
    assert "Started</dt><dd>2008-01-01 01:03:00 UTC" in html
    assert client.get("/sites/plone/jobs/999").status_code == 404


def test_job_status_text_is_escaped(client, site, kit):
    job = site.submit("export", {"limit": 1})
    kit.run_pending()
    html = client.get(f"/sites/plone/jobs/{job.id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and XSS not in html


def test_cancel_and_retry_from_the_pages(client, site):
    job = site.submit("free", {})
    response = post(client, f"/sites/plone/jobs/{job.id}/cancel", {"next": "/jobs?site=plone"})
    assert response.headers["location"] == "/jobs?site=plone"
    assert site.jobs.get(job.id).status == cronkit.Status.CANCELED
    response = post(client, f"/sites/plone/jobs/{job.id}/retry")
    assert response.headers["location"] == "/sites/plone/jobs/2"
    assert site.jobs.get(2).status == cronkit.Status.PENDING
    assert post(client, f"/sites/plone/jobs/{job.id}/cancel").status_code == 409
    assert post(client, f"/sites/plone/jobs/{job.id}/explode").status_code == 404


def test_cancel_from_the_pages_ends_the_job_once(client, site):
    ended = []
    receiver = cronkit.subscribe(cronkit.JobFinishedEvent)(ended.append)
    try:
        job = site.submit("free", {})
        post(client, f"/sites/plone/jobs/{job.id}/cancel")
        post(client, f"/sites/plone/jobs/{job.id}/cancel")   # 409: ends nothing again
    finally:
        cronkit.unsubscribe(cronkit.JobFinishedEvent, receiver)
    assert [(e.job_id, e.status) for e in ended] == [(job.id, "canceled")]


def test_cancel_a_running_job_asks_it_to_stop(client, site, kit):
    job = site.submit("free", {})
    kit.store.claim(kit.clock.now(), 1, "w", 1)
    post(client, f"/sites/plone/jobs/{job.id}/cancel")
    assert site.jobs.get(job.id).canceled
    assert "cancel asked" in client.get(f"/sites/plone/jobs/{job.id}").text


def test_cancel_ignores_an_offsite_next(client, site):
    job = site.submit("free", {})
    response = post(client, f"/sites/plone/jobs/{job.id}/cancel", {"next": "https://evil.example/"})
    assert response.headers["location"] == f"/sites/plone/jobs/{job.id}"


def test_live_endpoint_reports_progress(client, site, kit):
    job = site.submit("export", {"limit": 1})
    kit.run_pending()
    data = client.get("/live", params=[("j", f"plone:{job.id}"), ("j", "nope:1"),
                                       ("j", "plone:x"), ("j", "plone:999")]).json()
    assert data == [{"id": job.id, "site": "plone", "status": "success", "progress": 100,
                     "status_text": XSS, "message": "", "finished": True}]


# -- job types ------------------------------------------------------------------


def test_types_page_lists_runners_with_help_and_parameters(client):
    html = client.get("/sites/plone/types").text
    assert "Export products." in html and "To a &lt;b&gt;CSV&lt;/b&gt; file." in html
    assert "<code>limit</code> (int, required)" in html and "any JSON object" in html


def test_types_page_of_a_site_without_runners(kit):
    kit.site("bare").crontab.save()
    assert "No runner is registered" in TestClient(create_app(kit)).get("/sites/bare/types").text


def test_generated_form_follows_the_parameter_format(client):
    html = client.get("/sites/plone/types/export").text
    assert '<input id="p-limit" name="limit" type="number" value="" required>' in html
    assert '<input id="p-dry" name="dry" type="checkbox">' in html
    assert '<select id="p-format" name="format">' in html
    assert '<option value="csv" selected>csv</option>' in html
    assert '<input id="p-label" name="label" type="text" value="">' in html
    assert html.count('class="req"') == 1
    assert "max rows" in html


def test_submit_from_the_generated_form(client, site):
    response = post(client, "/sites/plone/types/export", {
        "limit": "10", "dry": "on", "format": "json", "label": "a b", "job_name": "Nightly",
        "priority": "7"})
    assert response.status_code == 303 and response.headers["location"] == "/sites/plone/jobs/1"
    job = site.jobs.get(1)
    assert job.payload == {"limit": 10, "dry": True, "format": "json", "label": "a b"}
    assert (job.name, job.priority) == ("Nightly", 7)


def test_submit_errors_are_shown_per_field_with_input_kept(client, site):
    response = post(client, "/sites/plone/types/export", {
        "limit": "ten", "format": "xml", "priority": "high", "label": XSS})
    assert response.status_code == 422
    errors = errors_in(response.text)
    assert set(errors) == {"priority"}
    response = post(client, "/sites/plone/types/export", {"limit": "ten", "format": "xml"})
    errors = errors_in(response.text)
    assert set(errors) == {"limit", "format"} and "expected an integer" in errors["limit"]
    assert 'value="ten"' in response.text
    response = post(client, "/sites/plone/types/export", {})
    assert errors_in(response.text) == {"limit": "required"}
    assert site.jobs.count() == 0


def test_submit_a_type_without_parameters_takes_a_json_payload(client, site):
    assert 'name="payload"' in client.get("/sites/plone/types/free").text
    response = post(client, "/sites/plone/types/free", {"payload": '{"any": [1, 2]}'})
    assert response.status_code == 303 and site.jobs.get(1).payload == {"any": [1, 2]}
    response = post(client, "/sites/plone/types/free", {"payload": "{bad"})
    assert "payload" in errors_in(response.text)
    response = post(client, "/sites/plone/types/free", {"payload": "[1]"})
    assert errors_in(response.text)["payload"] == "expected a JSON object"


def test_submit_page_of_unknown_type_is_404(client):
    assert client.get("/sites/plone/types/nope").status_code == 404


# -- login ----------------------------------------------------------------------


@pytest.fixture
def guarded(kit, site, cron):
    return TestClient(create_app(kit, password="pw", secret_key="key"))


def login(client, password, target="/"):
    token = csrf(client, "/login")
    return client.post("/login", data={"password": password, "csrf_token": token,
                                       "next": target}, follow_redirects=False)


def test_pages_redirect_to_login(guarded):
    response = guarded.get("/sites/plone?x=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fsites%2Fplone%3Fx%3D1"
    assert 'value="/sites/plone?x=1"' in guarded.get(response.headers["location"]).text


def test_wrong_password_is_refused(guarded):
    response = login(guarded, "nope")
    assert response.status_code == 401 and "wrong password" in response.text
    assert guarded.get("/", follow_redirects=False).status_code == 303


def test_login_then_logout(guarded):
    response = login(guarded, "pw", "/sites/plone")
    assert response.status_code == 303 and response.headers["location"] == "/sites/plone"
    html = guarded.get("/sites/plone").text
    assert "every 5 minutes" in html and "Log out" in html
    assert post(guarded, "/logout").headers["location"] == "/login"
    assert guarded.get("/", follow_redirects=False).status_code == 303


def test_five_wrong_passwords_lock_the_form_for_that_client_until_the_window_passes(guarded, clock):
    for _ in range(5):
        assert login(guarded, "nope").status_code == 401
    clock.advance(seconds=60)
    locked = login(guarded, "pw")     # even the right password, for now
    assert locked.status_code == 429 and locked.headers["retry-after"] == "240"
    assert "too many wrong passwords: try again in 240 s" in locked.text
    assert guarded.get("/", follow_redirects=False).status_code == 303
    clock.advance(seconds=240)
    assert login(guarded, "pw").status_code == 303


def test_the_throttle_forgets_expired_addresses_when_it_holds_many(clock):
    from cronkit.web.security import LoginThrottle
    throttle = LoginThrottle(clock)
    for n in range(10_000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}")
    clock.advance(seconds=301)
    throttle.failed("192.0.2.1")
    assert list(throttle._failures) == ["192.0.2.1"]


def test_a_right_password_clears_the_count(guarded):
    for _ in range(4):
        assert login(guarded, "nope").status_code == 401
    assert login(guarded, "pw").status_code == 303
    for _ in range(4):
        assert login(guarded, "nope").status_code == 401
    assert login(guarded, "pw").status_code == 303


def test_login_with_the_token_when_no_password_is_set(kit, site):
    client = TestClient(create_app(kit, auth_token="tok"))
    assert login(client, "tok").status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 200


@pytest.mark.parametrize("target, expected", [
    ("/jobs?site=a", "/jobs?site=a"), ("//evil.example/", "/"), ("https://evil.example", "/"),
    ("/\\evil", "/"), (None, "/"), ("jobs", "/")])
def test_safe_next(target, expected):
    assert safe_next(target) == expected


def test_a_cronkit_error_becomes_an_error_page(client, site, cron, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise cronkit.CronkitError("the queue is closed")

    monkeypatch.setattr(type(site.cron_manager(cron)), "register", refuse)
    response = post(client, "/sites/plone/crons/c1/run")
    assert response.status_code == 409 and "the queue is closed" in response.text


def test_priority_out_of_range_is_refused(client, site):
    response = post(client, "/sites/plone/types/free", {"payload": "{}", "priority": "9" * 12})
    assert "priority" in errors_in(response.text) and site.jobs.count() == 0


def test_a_refused_number_is_kept_in_a_text_input(client):
    html = post(client, "/sites/plone/types/export", {"limit": "ten"}).text
    assert '<input id="p-limit" name="limit" type="text" value="ten" required>' in html
    html = post(client, "/sites/plone/crons/new", {"name": "export", "periodicity": "@daily",
                                                   "logs_limit": "lots"}).text
    assert '<input id="logs_limit" name="logs_limit" type="text" value="lots">' in html


# -- sessions, lock-outs, caching ------------------------------------------------------------


def test_a_session_cookie_copied_before_logout_no_longer_works(kit, site, cron):
    app = create_app(kit, password="pw", secret_key="key")
    browser = TestClient(app)
    assert login(browser, "pw").status_code == 303
    copied = dict(browser.cookies)
    assert post(browser, "/logout").headers["location"] == "/login"
    thief = TestClient(app, cookies=copied)
    assert thief.get("/", follow_redirects=False).status_code == 303
    assert thief.get("/api/v1/sites").status_code == 401
    assert "Log out" not in thief.get("/login").text


def test_logging_out_ends_that_session_only(kit, site, cron):
    app = create_app(kit, password="pw", secret_key="key")
    one, two = TestClient(app), TestClient(app)
    assert login(one, "pw").status_code == 303 and login(two, "pw").status_code == 303
    post(one, "/logout")
    assert one.get("/", follow_redirects=False).status_code == 303
    assert two.get("/", follow_redirects=False).status_code == 200


def test_a_session_ends_after_seven_days_on_the_server_too(guarded, clock):
    assert login(guarded, "pw").status_code == 303
    clock.advance(days=7, seconds=-1)
    assert guarded.get("/", follow_redirects=False).status_code == 200
    clock.advance(seconds=1)
    assert guarded.get("/", follow_redirects=False).status_code == 303


def test_sessions_are_held_by_the_server_that_made_them(kit, site, cron):
    browser = TestClient(create_app(kit, password="pw", secret_key="key"))
    assert login(browser, "pw").status_code == 303
    restarted = TestClient(create_app(kit, password="pw", secret_key="key"),
                           cookies=dict(browser.cookies))
    assert restarted.get("/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("secure", [False, True])
def test_secure_cookies_mark_the_session_cookie_secure(kit, site, secure):
    client = TestClient(create_app(kit, password="pw", secure_cookies=secure),
                        base_url="https://testserver")
    response = login(client, "pw")
    assert response.status_code == 303
    assert ("; secure" in response.headers["set-cookie"].lower()) is secure


def test_authenticated_responses_are_never_stored(kit, site, cron):
    client = TestClient(create_app(kit, auth_token="tok", password="pw"))
    bearer = {"Authorization": "Bearer tok"}
    assert client.get("/api/v1/sites", headers=bearer).headers["cache-control"] == "no-store"
    assert client.get("/login").headers["cache-control"] == "no-store"
    assert login(client, "pw").headers["cache-control"] == "no-store"
    for url in ("/", "/sites/plone", "/sites/plone/crons/c1", "/jobs", "/api/v1/sites"):
        response = client.get(url)
        assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    assert "cache-control" not in client.get("/static/cronkit.css").headers


def test_a_browser_that_logged_in_before_is_not_locked_out_by_others(kit, site, cron):
    """Behind a proxy every browser has the proxy's address: the wrong passwords of one
    must not lock the others out, at least those that logged in here before."""
    app = create_app(kit, password="pw", secret_key="key")
    known, stranger = TestClient(app), TestClient(app)
    assert login(known, "pw").status_code == 303
    post(known, "/logout")
    for _ in range(5):
        assert login(stranger, "nope").status_code == 401
    assert login(stranger, "pw").status_code == 429
    assert TestClient(app).get("/login").status_code == 200
    assert login(TestClient(app), "pw").status_code == 429    # a new browser: the address
    assert login(known, "pw").status_code == 303


def test_the_throttle_of_a_known_browser_is_its_own(kit, site, cron):
    app = create_app(kit, password="pw", secret_key="key")
    known = TestClient(app)
    assert login(known, "pw").status_code == 303
    post(known, "/logout")
    for _ in range(5):
        assert login(known, "nope").status_code == 401
    assert login(known, "pw").status_code == 429
    assert login(TestClient(app), "pw").status_code == 303    # the address is not locked


@pytest.mark.parametrize("one, two, same", [
    ("192.0.2.1", "192.0.2.1", True), ("192.0.2.1", "192.0.2.2", False),
    ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True), ("2001:db8:1:2::1", "2001:db8:1:3::1", False)])
def test_the_throttle_takes_an_ipv6_slash_64_as_one_address(one, two, same):
    from cronkit.web.security import address_key
    assert (address_key(one) == address_key(two)) is same


# -- the cron form's preview, seconds_first, expanded ---------------------------------


def preview_times(html):
    section = html.split('<section class="card preview"', 1)[1].split("</section>", 1)[0]
    return re.findall(r"<li>([^<]+)</li>", section)


def test_the_preview_button_shows_words_and_the_next_five_times_and_saves_nothing(
        client, site, clock):
    clock.set(clock.now().replace(year=2024, month=3, day=29, hour=12, minute=0))
    response = post(client, "/sites/plone/crons/new", {
        "name": "export", "periodicity": "30 2 * * *", "timezone": "Europe/Paris",
        "environ": '{"limit": 5}', "activated": "on", "action": "preview"})
    assert response.status_code == 200
    html = response.text
    assert preview_times(html) == [
        "2024-03-30 02:30:00 CET", "2024-03-31 03:00:00 CEST", "2024-04-01 02:30:00 CEST",
        "2024-04-02 02:30:00 CEST", "2024-04-03 02:30:00 CEST"]
    assert "Next 5 times, in Europe/Paris" in html and 'class="note"' not in html
    assert 'value="30 2 * * *"' in html and 'value="Europe/Paris"' in html   # kept as typed
    assert "{&#34;limit&#34;: 5}</textarea>" in html
    assert site.crontab.crons == {} and not site.crontab.dirty and site.jobs.count() == 0


def test_the_preview_notes_six_fields_and_reads_them_seconds_first_when_asked(client, site):
    data = {"name": "export", "periodicity": "0 0 12 * * *", "action": "preview"}
    html = post(client, "/sites/plone/crons/new", data).text
    assert 'class="note" role="note">cronkit reads six fields with the seconds last' in html
    assert 'id="seconds_first" name="seconds_first" type="checkbox">' in html
    html = post(client, "/sites/plone/crons/new", {**data, "seconds_first": "on"}).text
    assert "read with the seconds first, the Quartz way" in html
    assert '<code class="expanded">0 12 * * * 0</code>' in html
    assert 'id="seconds_first" name="seconds_first" type="checkbox" checked>' in html
    assert preview_times(html)[0] == "2008-01-01 12:00:00 UTC"
    html = post(client, "/sites/plone/crons/new", {**data, "periodicity": "* * * * * *"}).text
    assert 'class="note"' not in html
    assert site.crontab.crons == {}


def test_the_preview_of_a_bad_expression_marks_the_field(client, site):
    response = post(client, "/sites/plone/crons/new", {
        "name": "export", "periodicity": "61 * * * *", "action": "preview"})
    assert response.status_code == 422 and "periodicity" in errors_in(response.text)
    assert 'class="card preview"' not in response.text


def test_the_preview_of_an_edit_leaves_the_cron_alone(client, site, cron):
    (before,) = site.jobs.list(cron="c1")
    response = post(client, "/sites/plone/crons/c1/edit", {
        "name": "export", "periodicity": f"0 3 * * * {XSS}", "action": "preview"})
    assert response.status_code == 422 and XSS not in response.text
    response = post(client, "/sites/plone/crons/c1/edit", {
        "name": "export", "periodicity": "0 3 * * *", "environ": "{}", "action": "preview"})
    assert response.status_code == 200
    assert preview_times(response.text)[0] == "2008-01-01 03:00:00 UTC"
    assert cron.periodicity == "*/5 * * * *" and not site.crontab.dirty
    assert [j.id for j in site.jobs.list(cron="c1")] == [before.id]


def test_the_preview_needs_the_csrf_token(client, site):
    response = client.post("/sites/plone/crons/new", data={
        "name": "export", "periodicity": "@daily", "action": "preview"})
    assert response.status_code == 403


def test_seconds_first_is_saved_from_the_form(client, site, cron):
    response = post(client, "/sites/plone/crons/c1/edit", {
        "name": "export", "periodicity": "0 0 0 * * *", "seconds_first": "on",
        "environ": '{"limit": 1}', "activated": "on"})
    assert response.status_code == 303
    assert (cron.seconds_first, cron.expanded) == (True, "0 0 * * * 0")
    html = client.get("/sites/plone/crons/c1/edit").text
    assert 'name="seconds_first" type="checkbox" checked>' in html


def test_an_h_expression_shows_as_written_and_as_drawn(client, site, cron):
    site.crontab.add_cron(cronkit.Cron(name="export", periodicity="H 3 * * *", uid="h",
                                       environ={"limit": 1}))
    site.crontab.save()
    expanded = site.crontab.crons["h"].expanded
    for url in ("/sites/plone", "/sites/plone/crons/h"):
        html = client.get(url).text
        assert "<code>H 3 * * *</code>" in html, url
        assert f'<code class="expanded">{expanded}</code>' in html, url
        assert "03:" in html
    assert 'class="expanded"' not in client.get("/sites/plone/crons/c1").text  # as written


# -- results, sites without a crontab (issue 15) -------------------------------------


class Stats(cronkit.Runner):
    def run(self):
        return {"rows": 3, "note": XSS}


def test_the_job_page_shows_the_result_as_pretty_escaped_json(client, site, kit):
    site.register_runner(Stats, name="stats")
    job = site.submit("stats")
    kit.run_pending()
    html = client.get(f"/sites/plone/jobs/{job.id}").text
    shown = re.search(r'<pre class="msg jresult">([^<]*)</pre>', html).group(1)
    assert shown == ('{\n  &#34;rows&#34;: 3,\n  &#34;note&#34;: '
                     '&#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;\n}')
    assert XSS not in html
    assert "jresult" not in client.get(f"/sites/plone/jobs/{site.submit('free').id}").text


def test_a_site_with_jobs_but_no_saved_crontab_has_its_job_pages(kit, db_url, client):
    other = cronkit.Cronkit(store=db_url, clock=kit.clock)   # another process, say
    try:
        batch = other.site("batch")
        batch.register_runner(Free, name="free")
        job = batch.submit("free")
    finally:
        other.close()
    response = client.get(f"/sites/batch/jobs/{job.id}")
    assert response.status_code == 200 and f"Job {job.id}: free" in response.text
    response = client.get("/jobs?site=batch")
    assert response.status_code == 200 and f'href="/sites/batch/jobs/{job.id}"' in response.text
    assert client.get("/jobs?site=nobatch").status_code == 404


def test_a_continuation_and_its_job_link_to_each_other(client, site, kit):
    first = site.submit("free")
    then = site.submit("free", after=first)
    html = client.get(f"/sites/plone/jobs/{then.id}").text
    assert re.search(rf'Runs after <a href="/sites/plone/jobs/{first.id}">job {first.id}</a> '
                     r'\(<span class="status s-pending">PENDING</span>\)', html)
    assert "Due</dt><dd>when the jobs it runs after succeed" in html
    html = client.get(f"/sites/plone/jobs/{first.id}").text
    assert re.search(rf'Then: <a href="/sites/plone/jobs/{then.id}">job {then.id}</a> '
                     r'\(<span class="status s-pending">PENDING</span>\)', html)
    kit.run_pending()     # free fails: its continuation is canceled
    html = client.get(f"/sites/plone/jobs/{then.id}").text
    assert f"job {first.id}</a> (<span class=\"status s-failed\">FAILED</span>)" in html


def test_the_pause_buttons_pause_and_resume_the_site_and_show_it_everywhere(client, site, kit):
    job = site.submit("free")
    html = client.get("/sites/plone").text
    assert "Job queue is <strong class=\"on\">RUNNING" in html and "PAUSED" not in html
    response = post(client, "/sites/plone/pause")
    assert response.status_code == 303 and response.headers["location"] == "/sites/plone"
    assert site.pauses() == [None]
    html = client.get("/sites/plone").text
    assert "queue paused: running jobs run on" in html and '<span class="badge paused"' in html
    assert "Job queue is <strong class=\"off\">PAUSED" in html
    assert 'action="/sites/plone/resume"' in html
    assert '<span class="badge paused"' in client.get("/").text
    html = client.get("/jobs?site=plone").text
    assert 'class="card paused-site"' in html and "no job of this site starts" in html
    row = re.search(rf'<tr class="job">\s*<td><a href="/sites/plone/jobs/{job.id}">.*?</tr>',
                    html, re.S).group(0)
    assert 'PAUSED</span>' in row
    assert post(client, "/sites/plone/pause", {"type": "export"}).status_code == 303
    assert site.pauses() == [None, "export"]
    assert "Jobs of type <code>export</code> are paused" in client.get("/sites/plone").text
    post(client, "/sites/plone/resume")
    assert site.pauses() == ["export"]
    assert '<span class="badge paused" title="paused: type export">PAUSED (export)' in \
        client.get("/").text
    assert 'class="card paused-site"' in client.get("/jobs").text
    post(client, "/sites/plone/resume", {"type": "export"})
    assert site.pauses() == [] and "badge paused" not in client.get("/jobs").text
    assert "was not paused" in client.get(
        post(client, "/sites/plone/resume").headers["location"]).text
    assert post(client, "/sites/plone/pause", {"type": "a\x00"}).status_code == 422
    for url in ("/sites/plone/pause", "/sites/plone/resume"):
        assert client.post(url, data={}, follow_redirects=False).status_code == 403
    assert site.pauses() == []


# -- jobs at a glance, search, bulk actions (issue 18) ----------------------------------


def job_rows(html):
    return re.findall(r'<tr class="job">(.*?)</tr>', html, re.S)


def shown_ids(html):
    return [int(i) for i in re.findall(r'<tr class="job">\s*<td><a href="[^"]+/jobs/(\d+)">', html)]


class Breaks(cronkit.Runner):
    """Fails with a long traceback whose last line is the error."""

    def run(self):
        raise ValueError("disk /var is 100% full_" + "x" * 300)


def test_a_failed_row_shows_its_error_in_one_line_and_the_job_page_in_full(client, site, kit):
    site.register_runner(Breaks, name="breaks")
    job = site.submit("breaks")
    kit.run_pending()
    message = site.jobs.get(job.id).message
    (row,) = job_rows(client.get("/jobs").text)
    summary = re.search(r'<a class="error-summary" href="/sites/plone/jobs/\d+"[^>]*>([^<]*)</a>',
                        row).group(1)
    assert summary.startswith("ValueError: disk /var is 100% full_x") and summary.endswith("…")
    assert len(summary) == 120 and "\n" not in summary
    html = client.get(f"/sites/plone/jobs/{job.id}").text
    assert "x" * 300 in html and len(message) > 300


def test_the_rows_show_lateness_duration_and_the_cron_by_uid_and_name(client, site, kit, clock):
    for uid in ("nightly", "hourly"):
        site.crontab.add_cron(cronkit.Cron(name="export", periodicity="*/5 * * * *", uid=uid,
                                           environ={"limit": 1}))
    site.crontab.save()
    done = site.submit("free")
    clock.advance(seconds=90)
    kit.run_pending()
    late = site.submit("free", delay=10)
    clock.advance(seconds=40)
    html = client.get("/jobs").text
    rows = {int(re.search(r'/jobs/(\d+)"', r).group(1)): r for r in job_rows(html)}
    assert '<td class="jlate nowrap">1 min 30 s</td>' in rows[done.id]
    assert '<td class="jduration nowrap">0.00 s</td>' in rows[done.id]
    assert '<td class="jlate nowrap">30.0 s</td>' in rows[late.id]   # pending, due 30 s ago
    assert '<td class="jduration nowrap">—</td>' in rows[late.id]
    firings = [r for r in rows.values() if 'class="cron-ref"' in r]
    assert {re.search(r'<code>(\w+)</code> export</a>', r).group(1) for r in firings} \
        <= {"nightly", "hourly"} and firings
    assert 'href="/sites/plone/crons/nightly"><code>nightly</code> export</a>' in html or \
        'href="/sites/plone/crons/hourly"><code>hourly</code> export</a>' in html
    del site.crontab.crons["nightly"]
    del site.crontab.crons["hourly"]
    site.crontab.save()
    html = client.get("/jobs").text
    assert '(deleted)</span>' in html or 'class="cron-ref"' not in html


def test_the_cron_is_shown_by_uid_and_name_on_its_pages(client, site):
    for uid in ("a1", "b2"):
        site.crontab.add_cron(cronkit.Cron(name="export", periodicity="@daily", uid=uid,
                                           environ={"limit": 1}))
    site.crontab.save()
    html = client.get("/sites/plone").text
    assert '<code>a1</code> export</a>' in html and '<code>b2</code> export</a>' in html
    html = client.get("/sites/plone/crons/a1").text
    assert "<title>Cron a1 (export) · cronkit</title>" in html
    assert '<h1>Cron <code>a1</code> <span class="cron-name">runs export</span></h1>' in html
    (job,) = site.jobs.list(cron="b2")
    assert 'href="/sites/plone/crons/b2"><code>b2</code> export</a>' in client.get("/").text
    assert '<code>b2</code> export</a>' in client.get(f"/sites/plone/jobs/{job.id}").text


@pytest.fixture
def searchable(site, kit):
    site.register_runner(Breaks, name="breaks")
    jobs = {"name": site.submit("free", name="weekly report"),
            "type": site.submit("breaks"),
            "payload": site.submit("free", {"path": "/srv/photos_2024"}),
            "plain": site.submit("free", {"n": 1})}
    kit.run_pending()        # every one fails: breaks with its error, free with "free failed"
    return jobs


@pytest.mark.parametrize("q, which", [
    ("WEEKLY", {"name"}), ("breaks", {"type"}), ("photos_2024", {"payload"}),
    ("disk /var", {"type"}), ("100%", {"type"}), ("free failed", {"name", "payload", "plain"}),
])
def test_search_finds_by_name_type_payload_and_error(client, searchable, q, which):
    html = client.get("/jobs", params={"q": q}).text
    assert set(shown_ids(html)) == {searchable[k].id for k in which}
    assert f'value="{q}"' in html.replace("&#34;", '"')
    assert set(shown_ids(client.get("/jobs", params={"q": q, "site": "plone"}).text)) == \
        {searchable[k].id for k in which}


def test_search_wildcards_are_literal_and_bad_text_is_refused(client, searchable):
    for q, which in (("%", {"type"}), ("photos%2024", set()), ("photos_202_", set()),
                     ("os_2", {"payload"}), ("%_full", set()), ("100%", {"type"})):
        found = set(shown_ids(client.get("/jobs", params={"q": q}).text))
        assert found == {searchable[k].id for k in which}, q
    for bad in ("x" * 201, "a\x00b"):
        response = client.get("/jobs", params={"q": bad})
        assert response.status_code == 400 and "invalid search text q" in response.text


def test_search_pages_keep_the_search(client, site):
    for _ in range(30):
        site.submit("free", name="needle")
    site.submit("free", name="hay")
    html = client.get("/jobs", params={"q": "needle"}).text
    assert "of 30, newest first" in html and 'href="/jobs?q=needle&amp;page=2"' in html


def test_the_rest_listing_searches_too(client, searchable):
    body = client.get("/api/v1/sites/plone/jobs", params={"q": "photos_2024"}).json()
    assert body["total"] == 1 and body["jobs"][0]["id"] == searchable["payload"].id


def bulk(client, data):
    return post(client, "/jobs/bulk", data)


def flashes(client):
    return re.findall(r'<p class="flash [a-z]+" role="status">([^<]*)</p>', client.get("/jobs").text)


def test_a_bulk_action_asks_first_naming_the_count_and_the_filter(client, site, searchable):
    response = bulk(client, {"action": "retry", "status": "failed", "q": "free failed"})
    assert response.status_code == 200
    html = response.text
    assert "<h1>Retry 3 jobs?</h1>" in html
    assert '<strong class="bulk-filter">status failed, search “free failed”</strong>' in html
    assert '<input type="hidden" name="confirmed" value="yes">' in html
    assert '<input type="hidden" name="q" value="free failed">' in html
    assert site.jobs.count() == 4       # nothing done yet


def test_bulk_retry_of_a_filtered_set_counts_what_it_could_not_do(client, site, kit, searchable):
    site.crontab.add_cron(cronkit.Cron(name="free", periodicity="@daily", uid="d"))
    site.crontab.save()
    (firing,) = site.jobs.list(cron="d")
    site.jobs.cancel(firing.id)
    pending = site.submit("free")
    response = bulk(client, {"action": "retry", "confirmed": "yes", "site": "plone"})
    assert response.status_code == 303 and response.headers["location"] == "/jobs?site=plone"
    (text,) = flashes(client)
    assert text.startswith("Retry (site plone): 4 jobs retried; ")
    assert "1 not retried (a cron firing: run its cron instead)" in text
    # the pending job, and the next firing of d its cancel queued
    assert "2 not retried (pending: only a failed or canceled job is retried)" in text
    assert site.jobs.get(pending.id).status == cronkit.Status.PENDING
    assert site.jobs.count(status="pending") == 1 + 4 + 1   # the new firing of d too


def test_bulk_cancel_and_delete(client, site, kit, searchable):
    waiting = [site.submit("free", {"k": i}, name="later") for i in range(3)]
    bulk(client, {"action": "cancel", "confirmed": "yes", "q": "later"})
    (text,) = flashes(client)
    assert text == "Cancel (search “later”): 3 jobs canceled"
    assert {site.jobs.get(j.id).status for j in waiting} == {cronkit.Status.CANCELED}
    bulk(client, {"action": "cancel", "confirmed": "yes", "status": "failed"})
    assert flashes(client) == ["Cancel (status failed): 0 jobs canceled; "
                               "4 not canceled (already failed)"]
    bulk(client, {"action": "delete", "confirmed": "yes", "type": "free"})
    assert flashes(client) == ["Delete (type free): 6 jobs deleted"]
    assert [j.type for j in site.jobs.list()] == ["breaks"]


def test_bulk_delete_leaves_a_running_job(client, site, kit):
    job = site.submit("free")
    kit.store.claim(kit.clock.now(), 1, "w")
    bulk(client, {"action": "delete", "confirmed": "yes"})
    assert flashes(client) == ["Delete (no filter: every job): 0 jobs deleted; "
                               "1 not deleted (running: cancel it first)"]
    bulk(client, {"action": "cancel", "confirmed": "yes"})
    assert flashes(client) == ["Cancel (no filter: every job): 0 jobs canceled; "
                               "1 running: asked to stop at their next check"]
    assert site.jobs.get(job.id).canceled


def test_bulk_actions_need_the_csrf_token_and_a_known_action(client, site, searchable):
    response = client.post("/jobs/bulk", data={"action": "delete", "confirmed": "yes"},
                           follow_redirects=False)
    assert response.status_code == 403 and site.jobs.count() == 4
    response = bulk(client, {"action": "explode"})
    assert response.status_code == 400 and "unknown bulk action" in response.text
    assert bulk(client, {"action": "delete", "status": "lost"}).status_code == 400
    assert bulk(client, {"action": "delete", "site": "nosuch"}).status_code == 404
    assert site.jobs.count() == 4


def test_a_bulk_action_over_its_bound_is_refused(client, site, monkeypatch):
    from cronkit.web.pages import jobs as pages_jobs
    monkeypatch.setattr(pages_jobs, "BULK_MAX", 2)
    for _ in range(3):
        site.submit("free")
    html = bulk(client, {"action": "cancel"}).text
    assert "3 jobs match: one action takes at most 2" in html and "bulk-confirm" not in html
    bulk(client, {"action": "cancel", "confirmed": "yes"})
    assert flashes(client) == ["3 jobs match (no filter: every job): over the 2 one action "
                               "takes, nothing done. Narrow the filter."]
    assert site.jobs.count(status="pending") == 3
    assert "No job matches: nothing to do." in bulk(client, {"action": "retry", "q": "zz"}).text


def test_the_jobs_page_offers_the_bulk_actions_with_its_filter(client, site):
    site.submit("free")
    html = client.get("/jobs", params={"status": "pending", "q": "fr"}).text
    forms = re.findall(r'<form class="inline" method="post" action="/jobs/bulk">(.*?)</form>',
                       html, re.S)
    assert len(forms) == 3
    for form in forms:
        assert '<input type="hidden" name="status" value="pending">' in form
        assert '<input type="hidden" name="q" value="fr">' in form


def test_the_actions_of_a_site_without_a_saved_crontab_work(kit, db_url, client):
    other = cronkit.Cronkit(store=db_url, clock=kit.clock)
    try:
        batch = other.site("batch")
        batch.register_runner(Free, name="free")
        first, second = batch.submit("free"), batch.submit("free")
    finally:
        other.close()
    kit.site("batch").register_runner(Free, name="free")
    response = post(client, f"/sites/batch/jobs/{first.id}/cancel")
    assert response.status_code == 303
    assert kit.site("batch").jobs.get(first.id).status == cronkit.Status.CANCELED
    response = post(client, f"/sites/batch/jobs/{first.id}/retry")
    assert response.status_code == 303
    html = client.get(response.headers["location"]).text
    assert f"job {first.id} submitted again" in html
    bulk(client, {"action": "delete", "confirmed": "yes", "site": "batch", "status": "pending"})
    assert kit.store.count_jobs(site="batch") == 1
    assert second.id not in [r["id"] for r in kit.store.list_jobs(site="batch")]


# -- the cron form (issue 18) -------------------------------------------------------------


def test_the_cron_form_offers_the_registered_runners_and_a_uid(client, site):
    html = client.get("/sites/plone/crons/new").text
    assert '<select id="name" name="name">' in html
    assert '<option value="export">export</option>' in html
    assert '<option value="free">free</option>' in html
    assert '<input id="uid" name="uid" value=""' in html
    assert 'class="form-actions"' in html


def test_an_unknown_runner_is_refused_unless_confirmed(client, site):
    data = {"name": "", "other_name": "ghost", "periodicity": "@daily", "uid": "g"}
    response = post(client, "/sites/plone/crons/new", data)
    assert response.status_code == 422
    error = errors_in(response.text)["name"]
    assert error.startswith("no runner named &#39;ghost&#39; for site &#39;plone&#39; in this "
                            "process") and "tick the box" in error
    assert not site.crontab.crons
    response = post(client, "/sites/plone/crons/new", {**data, "unknown_ok": "on"})
    assert response.status_code == 303 and site.crontab.crons["g"].name == "ghost"
    html = client.get("/sites/plone/crons/g/edit").text
    assert '<option value="ghost" selected>ghost (no such runner here)</option>' in html
    response = post(client, "/sites/plone/crons/g/edit", {"name": "ghost", "periodicity": "@hourly"})
    assert response.status_code == 303    # unchanged: no new confirmation asked
    response = post(client, "/sites/plone/crons/g/edit",
                    {"name": "", "other_name": "phantom", "periodicity": "@hourly"})
    assert response.status_code == 422 and "name" in errors_in(response.text)


def test_a_uid_is_checked_and_unique(client, site, cron):
    base = {"name": "free", "periodicity": "@daily"}
    response = post(client, "/sites/plone/crons/new", {**base, "uid": "c1"})
    assert response.status_code == 422
    assert errors_in(response.text)["uid"] == ("a cron with uid &#39;c1&#39; already exists in "
                                               "site &#39;plone&#39;: choose another uid, or "
                                               "edit that cron")
    response = post(client, "/sites/plone/crons/new", {**base, "uid": "a/b"})
    assert response.status_code == 303 and response.headers["location"].endswith("/crons/a%2Fb")
    response = post(client, "/sites/plone/crons/new", {**base, "uid": "x" * 300})
    assert response.status_code == 422 and "uid" in errors_in(response.text)
    assert 'value="' + "x" * 300 + '"' in response.text
    response = post(client, "/sites/plone/crons/new", {**base, "uid": " nightly "})
    assert response.status_code == 303 and response.headers["location"].endswith("/crons/nightly")
    assert list(site.crontab.crons) == ["c1", "a/b", "nightly"]


def test_a_runner_with_a_parameter_format_gets_environ_fields(client, site, cron):
    html = client.get("/sites/plone/crons/c1/edit").text
    assert '<input type="hidden" name="env_for" value="export">' in html
    assert '<input id="env-limit" name="env-limit" type="number" value="1" required>' in html
    assert '<input id="env-label" name="env-label" type="text" value="&lt;script&gt;' in html
    assert '<textarea id="environ"' not in html
    data = {"name": "export", "periodicity": "@daily", "env_for": "export", "env-limit": "ten",
            "env-format": "json"}
    response = post(client, "/sites/plone/crons/c1/edit", data)
    assert response.status_code == 422
    assert '<p class="error" id="err-env-limit">expected an integer' in response.text
    assert cron.environ == {"limit": 1, "label": XSS}
    response = post(client, "/sites/plone/crons/c1/edit", {**data, "env-limit": "7",
                                                           "env-dry": "on"})
    assert response.status_code == 303
    assert cron.environ == {"limit": 7, "dry": True, "format": "json"}


def test_changing_the_runner_shows_its_own_fields(client, site):
    html = client.get("/sites/plone/crons/new").text
    assert '<textarea id="environ"' in html       # no runner chosen yet: raw JSON, with help
    assert "declares no parameter format" in html
    response = post(client, "/sites/plone/crons/new", {
        "name": "export", "periodicity": "@daily", "env_for": "", "environ": "{}",
        "action": "preview"})
    assert response.status_code == 200 and 'id="env-limit"' in response.text
    response = post(client, "/sites/plone/crons/new", {
        "name": "free", "periodicity": "@daily", "env_for": "export", "env-limit": "3"})
    assert response.status_code == 200 or response.status_code == 303
    response = post(client, "/sites/plone/crons/new", {
        "name": "export", "periodicity": "@daily", "env_for": "free2", "env-limit": "3"})
    assert response.status_code == 422
    assert "the runner is now export: fill in its parameters" in errors_in(response.text)["environ"]


# -- the submit form's delay and run-at (issue 18) ----------------------------------------


def test_a_job_submitted_with_a_delay_or_a_run_at_time(client, site, kit, clock):
    response = post(client, "/sites/plone/types/free", {"payload": "{}", "delay": "90"})
    assert response.status_code == 303
    (job,) = site.jobs.list()
    assert job.run_after == clock.now() + __import__("datetime").timedelta(seconds=90)
    paris = kit.site("paris", timezone="Europe/Paris")
    paris.register_runner(Free, name="free")
    paris.crontab.save()
    response = post(client, "/sites/paris/types/free", {"payload": "{}",
                                                        "run_after": "2008-07-01T14:30"})
    assert response.status_code == 303
    (job,) = paris.jobs.list()
    assert job.run_after.isoformat() == "2008-07-01T12:30:00+00:00"
    post(client, "/sites/paris/types/free", {"payload": "{}",
                                             "run_after": "2008-07-01T14:30:00+00:00"})
    assert paris.jobs.list()[0].run_after.isoformat() == "2008-07-01T14:30:00+00:00"


@pytest.mark.parametrize("field, value, message", [
    ("delay", "-1", "expected seconds from 0 to"),
    ("delay", "soon", "expected seconds from 0 to"),
    ("delay", "nan", "expected seconds from 0 to"),
    ("delay", "1e12", "expected seconds from 0 to"),
    ("run_after", "tomorrow", "expected a date and time such as"),
    ("run_after", "2008-03-30T02:30", "does not exist in Europe/Paris (the clocks skip it)"),
    ("run_after", "2008-10-26T02:30", "happens twice in Europe/Paris: add its offset"),
])
def test_a_bad_delay_or_run_at_is_shown_on_its_field(client, kit, field, value, message):
    paris = kit.site("paris", timezone="Europe/Paris")
    paris.register_runner(Free, name="free")
    paris.crontab.save()
    response = post(client, "/sites/paris/types/free", {"payload": "{}", field: value})
    assert response.status_code == 422
    assert message in errors_in(response.text)[field]
    assert f'value="{value}"' in response.text and paris.jobs.count() == 0


def test_a_delay_and_a_run_at_time_together_are_refused(client, site):
    response = post(client, "/sites/plone/types/free", {
        "payload": "{}", "delay": "5", "run_after": "2030-01-01T00:00"})
    assert response.status_code == 422
    assert errors_in(response.text)["run_after"] == "give a delay or a run-at time, not both"
    assert site.jobs.count() == 0


def test_the_live_preview_answers_words_and_times_or_the_errors(client, site, clock):
    url = "/sites/plone/cron-preview"
    body = client.get(url, params={"periodicity": "30 2 * * *"}).json()
    assert body["description"].lower().startswith("at 02:30") and len(body["next"]) == 5
    assert body["next"][0] == "2008-01-01 02:30:00 UTC" and body["timezone"] == "UTC"
    body = client.get(url, params={"periodicity": "0 12 * * *",
                                   "timezone": "Europe/Paris"}).json()
    assert body["next"][0] == "2008-01-01 12:00:00 CET"
    body = client.get(url, params={"periodicity": "0 0 12 * * *", "seconds_first": "on"}).json()
    assert body["next"][0] == "2008-01-01 12:00:00 UTC" and body["note"]
    body = client.get(url, params={"periodicity": "61 * * * *", "timezone": "Mars/Olympus"}).json()
    assert set(body["errors"]) == {"periodicity", "timezone"}
    assert set(client.get(url).json()["errors"]) == {"periodicity"}
    assert client.get("/sites/nosuch/cron-preview").status_code == 404
    assert site.crontab.crons == {} and not site.crontab.dirty
