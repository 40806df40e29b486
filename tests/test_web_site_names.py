"""Site names that are not one plain URL segment (``/app/plone``, a space, a ``%``):
every page, action and REST endpoint that takes a site answers for that site, its name
written as one percent-encoded segment (cronkit.web.paths)."""

from __future__ import annotations

import re
import warnings

import pytest

import cronkit
from cronkit.web import create_app
from cronkit.web.paths import segment

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NAMES = ["/app/plone", "my site 100%"]


class Export(cronkit.Runner):
    """Export products."""

    parameters = {"limit": cronkit.Param("int")}

    def run(self):
        return None


@pytest.fixture(params=NAMES)
def site(kit, request):
    kit.site("app")  # a site whose name is a prefix of the other's path: never matched
    site = kit.site(request.param)
    site.register_runner(Export, name="export")
    site.crontab.add_cron(cronkit.Cron(name="export", periodicity="*/5 * * * *",
                                       uid="c/1 %", activated=True))
    site.crontab.save()
    return site


@pytest.fixture
def client(kit, site):
    return TestClient(create_app(kit))


def csrf(client):
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)


def post(client, url, data=None):
    return client.post(url, data={"csrf_token": csrf(client), **(data or {})},
                       follow_redirects=False)


def test_segment_encodes_every_reserved_character():
    assert segment("/app/plone") == "%2Fapp%2Fplone"
    assert segment("my site 100%") == "my%20site%20100%25"


def test_pages_of_the_site_answer_and_link_to_it(client, site):
    base = "/sites/" + segment(site.name)
    cron = base + "/crons/" + segment("c/1 %")
    job = site.submit("export", {"limit": 1})
    home = client.get("/")
    assert home.status_code == 200 and f'href="{base}"' in home.text
    for url in (base, base + "?type=export", cron, cron + "/edit", base + "/crons/new",
                base + "/jobs/" + str(job.id), base + "/types", base + "/types/export",
                "/jobs?site=" + segment(site.name),
                "/charts?site=" + segment(site.name),
                "/charts?site=" + segment(site.name) + "&cron=" + segment("c/1 %"),
                base + "/cron-preview?periodicity=*/5+*+*+*+*"):
        response = client.get(url)
        assert response.status_code == 200, url
    page = client.get(base).text
    assert f'href="{cron}"' in page and f'action="{base}/crontab"' in page
    assert f'href="{base}/jobs/{job.id}"' in client.get("/jobs").text
    assert client.get("/sites/app").status_code == 200
    assert client.get("/sites" + site.name.split(" ")[0]).status_code == 404


def test_actions_act_on_that_site(client, site, kit):
    base = "/sites/" + segment(site.name)
    cron = base + "/crons/" + segment("c/1 %")
    response = post(client, cron + "/disable")
    assert response.status_code == 303 and response.headers["location"] == cron
    assert not kit.site(site.name).crontab.by_uid("c/1 %").activated
    assert post(client, cron + "/enable").status_code == 303
    assert kit.site(site.name).crontab.by_uid("c/1 %").activated
    response = post(client, base + "/types/export", {"limit": "3"})
    assert response.status_code == 303
    job_id = int(response.headers["location"].rsplit("/", 1)[1])
    assert response.headers["location"] == f"{base}/jobs/{job_id}"
    assert site.jobs.get(job_id).payload == {"limit": 3}
    response = post(client, f"{base}/jobs/{job_id}/cancel")
    assert response.status_code == 303 and response.headers["location"] == f"{base}/jobs/{job_id}"
    assert site.jobs.get(job_id).status == cronkit.Status.CANCELED
    response = post(client, base + "/crons/new", {"uid": "n/2", "name": "export",
                                                   "periodicity": "0 * * * *",
                                                   "activated": "on"})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == base + "/crons/" + segment("n/2")
    assert kit.site(site.name).crontab.by_uid("n/2").periodicity == "0 * * * *"
    assert post(client, base + "/pause").status_code == 303
    assert kit.site(site.name).paused()
    assert post(client, base + "/resume").status_code == 303
    assert not kit.site(site.name).paused()
    assert not kit.site("app").crontab.by()


def test_rest_api_site_endpoints(client, site, kit):
    api = "/api/v1/sites/" + segment(site.name)
    cron = api + "/crons/" + segment("c/1 %")
    assert site.name in [s["name"] for s in client.get("/api/v1/sites").json()]
    for url in (api + "/crontab", api + "/crons", cron, cron + "/logs", api + "/jobs",
                api + "/types"):
        response = client.get(url)
        assert response.status_code == 200, url
    assert client.get(cron).json()["uid"] == "c/1 %"
    response = client.post(api + "/jobs", json={"type": "export", "payload": {"limit": 2}})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    assert response.json()["site"] == site.name
    assert client.get(f"{api}/jobs/{job_id}").json()["id"] == job_id
    assert client.post(f"{api}/jobs/{job_id}/cancel").status_code == 200
    assert client.post(cron + "/disable").status_code == 200
    assert not kit.site(site.name).crontab.by_uid("c/1 %").activated
    assert client.post(api + "/pause").status_code == 200
    assert kit.site(site.name).paused()
    assert client.delete(cron).status_code in (200, 204)
    assert "c/1 %" not in [c.uid for c in kit.site(site.name).crontab.by()]
