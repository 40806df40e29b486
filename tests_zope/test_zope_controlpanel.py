"""cronkit's Plone control panel (``@@cronkit-controlpanel``) on a real Plone 6 site,
through the publisher: it shows the site's crontab to a manager, is refused to anyone
else, is listed among Plone's control panels, links to the dashboard, escapes what it
shows, and its crontab switch needs plone.protect's authenticator."""

from __future__ import annotations

from typing import Any

import pytest
import transaction
from plone.app.testing import (
    SITE_OWNER_NAME,
    SITE_OWNER_PASSWORD,
    TEST_USER_ID,
    TEST_USER_NAME,
    TEST_USER_PASSWORD,
    setRoles,
)
from plone.testing.zope import Browser
from zExceptions import BadRequest, Forbidden

import cronkit
from cronkit.interfaces import ISite
from cronkit.model import LogStatus
from tests_zope.conftest import layered
from tests_zope.layers import CRONKIT_PLONE_FUNCTIONAL_TESTING, SECOND_SITE

layer = layered(CRONKIT_PLONE_FUNCTIONAL_TESTING)

PANEL = "@@cronkit-controlpanel"


@pytest.fixture(autouse=True)
def no_dashboard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRONKIT_DASHBOARD_URL", raising=False)


def browser(layer: Any, user: str | None = SITE_OWNER_NAME,
            password: str = SITE_OWNER_PASSWORD) -> Browser:
    found = Browser(layer["app"])
    found.handleErrors = False
    if user is not None:
        found.addHeader("Authorization", f"Basic {user}:{password}")
    return found


def panel_url(layer: Any, site: str = "plone") -> str:
    return f"{layer['app'].absolute_url()}/{site}/{PANEL}"


def add_crons(site: cronkit.Site, *crons: cronkit.Cron) -> None:
    for cron in crons:
        site.crontab.add_cron(cron)
    site.crontab.save()


def test_a_manager_sees_the_sites_crontab(layer: Any) -> None:
    site = ISite(layer["portal"])
    add_crons(site,
              cronkit.Cron(uid="nightly", name="backup", periodicity="0 3 * * *"),
              cronkit.Cron(uid="idle", name="cleanup", periodicity="*/5 * * * *",
                           activated=False))
    site.crontab.by_uid("nightly").log(LogStatus.FAILURE, ["disk full"])
    site.crontab.save()
    page = browser(layer)
    page.open(panel_url(layer))
    html = page.contents
    assert '<code id="cronkit-site">/plone</code>' in html
    assert '<strong id="cronkit-crontab-state">on</strong>' in html
    assert '<tr data-uid="nightly">' in html and '<tr data-uid="idle">' in html
    assert '<td class="cron-name">backup</td>' in html
    assert "<code>0 3 * * *</code>" in html
    # the FakeClock says 2026-01-05 08:00 UTC: the next 03:00 is tomorrow's
    assert '<td class="cron-next">2026-01-06 03:00:00 UTC</td>' in html
    assert '<td class="cron-activated">no</td>' in html
    assert '<td class="cron-last">never</td>' in html
    assert 'title="disk full" class="log-FAILURE"' in html


def test_a_sites_own_manager_sees_it_too(layer: Any) -> None:
    setRoles(layer["portal"], TEST_USER_ID, ["Manager"])
    transaction.commit()
    page = browser(layer, TEST_USER_NAME, TEST_USER_PASSWORD)
    page.open(panel_url(layer))
    assert '<code id="cronkit-site">/plone</code>' in page.contents


def test_the_panel_of_a_site_without_crons_says_so(layer: Any) -> None:
    page = browser(layer)
    page.open(panel_url(layer))
    assert 'id="cronkit-no-crons"' in page.contents
    assert 'id="cronkit-crons"' not in page.contents


def test_each_site_shows_its_own_crontab(layer: Any) -> None:
    add_crons(ISite(layer["portal"]), cronkit.Cron(uid="first", name="a",
                                                   periodicity="@hourly"))
    page = browser(layer)
    page.open(panel_url(layer, SECOND_SITE))
    assert f'<code id="cronkit-site">/{SECOND_SITE}</code>' in page.contents
    assert 'data-uid="first"' not in page.contents


def test_the_panel_escapes_what_it_shows(layer: Any) -> None:
    add_crons(ISite(layer["portal"]),
              cronkit.Cron(uid="<script>alert(1)</script>", name="<b>x</b>",
                           periodicity="@daily"))
    page = browser(layer)
    page.open(panel_url(layer))
    assert "<script>alert(1)</script>" not in page.contents
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.contents
    assert "&lt;b&gt;x&lt;/b&gt;" in page.contents and "<b>x</b>" not in page.contents


def refused(page: Browser, layer: Any) -> str:
    """Where ``page`` is sent for the panel: Plone's answer to Unauthorized (a redirect
    to its login challenge), followed once."""
    page.handleErrors = True
    page.followRedirects = False
    page.open(panel_url(layer))
    assert page.headers["status"].startswith("302")
    assert "/plone/acl_users/credentials_cookie_auth/require_login?came_from=" \
        in page.headers["location"]
    page.followRedirects = True
    page.open(panel_url(layer))
    assert 'id="cronkit-site"' not in page.contents
    return page.url


def test_an_anonymous_user_is_refused_and_gets_the_login_form(layer: Any) -> None:
    page = browser(layer, user=None)
    assert refused(page, layer).startswith(f"{layer['portal'].absolute_url()}/login")
    assert 'name="__ac_password"' in page.contents


def test_a_plain_member_is_refused(layer: Any) -> None:
    page = browser(layer, TEST_USER_NAME, TEST_USER_PASSWORD)
    assert refused(page, layer).endswith("/plone/insufficient-privileges")


def test_the_panel_is_listed_in_plones_control_panel(layer: Any) -> None:
    page = browser(layer)
    page.open(f"{layer['portal'].absolute_url()}/@@overview-controlpanel")
    link = page.getLink(url=f"/plone/{PANEL}")
    assert "cronkit" in link.text
    link.click()
    assert 'id="cronkit-site"' in page.contents


def test_the_configlet_needs_manage_portal(layer: Any) -> None:
    configlets = layer["portal"].portal_controlpanel
    entry = configlets.getActionObject("Products/cronkit")
    assert entry.permissions == ("Manage portal",)


def test_without_a_dashboard_url_there_is_no_link(layer: Any) -> None:
    page = browser(layer)
    page.open(panel_url(layer))
    assert 'id="cronkit-no-dashboard"' in page.contents
    assert 'id="cronkit-dashboard"' not in page.contents


def test_with_a_dashboard_url_it_links_to_the_sites_page(
        layer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRONKIT_DASHBOARD_URL", "https://cron.example.org/dash/")
    page = browser(layer)
    page.open(panel_url(layer))
    link = page.getLink("Open this site in cronkit's dashboard")
    # the site name "/plone" is one URL segment on the dashboard
    assert link.url == "https://cron.example.org/dash/sites/%2Fplone"


def switch(page: Any, layer: Any, value: str, authenticator: bool = True) -> None:
    page.open(panel_url(layer))
    form = page.getForm(id="cronkit-switch")
    if not authenticator:
        # the form as a forger's page would post it: no token
        page.post(panel_url(layer), f"activated={value}")
        return
    assert form.getControl(name="activated").value == value
    form.submit(name="form.switch")


def test_a_manager_turns_the_crontab_off_and_on(layer: Any) -> None:
    site = ISite(layer["portal"])
    add_crons(site, cronkit.Cron(uid="c", name="a", periodicity="@hourly", activated=True))
    page = browser(layer)
    switch(page, layer, "off")
    assert '<strong id="cronkit-crontab-state">off</strong>' in page.contents
    assert "The crontab is off." in page.contents
    assert site.crontab.activated is False
    assert not site.jobs.is_job_pending(site.crontab.by_uid("c"))
    switch(page, layer, "on")
    assert site.crontab.activated is True
    assert site.jobs.is_job_pending(site.crontab.by_uid("c"))


def test_the_switch_without_the_authenticator_is_refused(layer: Any) -> None:
    site = ISite(layer["portal"])
    page = browser(layer)
    with pytest.raises(Forbidden):
        switch(page, layer, "off", authenticator=False)
    assert site.crontab.activated is True


def test_the_switch_refuses_a_bad_value(layer: Any) -> None:
    page = browser(layer)
    page.open(panel_url(layer))
    token = page.getForm(id="cronkit-switch").getControl(name="_authenticator").value
    with pytest.raises(BadRequest) as raised:
        page.post(panel_url(layer), f"activated=maybe&_authenticator={token}")
    assert "'maybe'" in str(raised.value)
    assert ISite(layer["portal"]).crontab.activated is True


def test_a_get_with_the_form_fields_changes_nothing(layer: Any) -> None:
    page = browser(layer)
    page.open(panel_url(layer))
    token = page.getForm(id="cronkit-switch").getControl(name="_authenticator").value
    page.open(f"{panel_url(layer)}?activated=off&_authenticator={token}")
    assert ISite(layer["portal"]).crontab.activated is True
