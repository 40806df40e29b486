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
    assert "cron export added" in client.get(response.headers["location"]).text


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
