"""Hostile input: values that would pass validation and then break the API are refused on
every path (Python, CLI, REST, dashboard, crons.xml, ZCML) with the typed error naming
the field; loaders raise only CronkitError subclasses; booleans in loaders are strict;
profiles over their limits are refused early; and property-based tests feed every
loader and every REST body anything, finding no other exception and no 500."""

from __future__ import annotations

import json
import re
import sqlite3
import tracemalloc
import warnings
from datetime import UTC as UTC_ZONE
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import cronkit
import cronkit.profiles
import cronkit.profiles.zcml
from cronkit import cli
from cronkit.exceptions import CronkitError, InvalidCron, InvalidCrontab, InvalidParameters
from cronkit.model.validation import MAX_JSON_DEPTH
from cronkit.profiles.cronsxml import import_crons
from cronkit.web import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

API = "/api/v1/sites/plone"
ZCML_HEAD = ('<configure xmlns="http://namespaces.zope.org/zope"\n'
             '           xmlns:cron="http://namespaces.cronkit.org/cron">\n')
SURROGATE = "\ud800"
NON_FINITE = [float("nan"), float("inf"), float("-inf"), "nan", "inf", "-inf", "Infinity",
              1e400, 10 ** 400]
NON_FINITE_TEXT = ["nan", "inf", "-inf", "Infinity", "1e400"]
#: A cron's text fields, and a value of each that passes for text but no store holds.
BAD_TEXT = [("name", SURROGATE), ("name", "a\udcffb"), ("uid", SURROGATE),
            ("user", "bob" + SURROGATE), ("periodicity", "* * * * *" + SURROGATE),
            ("timezone", "UTC" + SURROGATE), ("name", "nul\x00"), ("user", "x" * 201)]
BAD_ENVIRONS = [{"a": SURROGATE}, {SURROGATE: 1}, {"a": [1, {"b": "\udfff"}]},
                {"a": float("nan")}, {"a": float("inf")}, {"a": [float("-inf")]}]
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


class Echo(cronkit.Runner):
    """Takes any payload."""

    def run(self):
        return None


class Typed(cronkit.Runner):
    """Declares its parameters."""

    parameters = {"count": cronkit.Param("int", required=True),
                  "label": cronkit.Param("string")}

    def run(self):
        return None


def deep(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def deep_text(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture
def site(kit):
    site = kit.site("plone")
    site.register_runner(Echo, name="echo")
    site.register_runner(Typed, name="typed")
    site.crontab.add_cron(cronkit.Cron("echo", "@hourly", uid="c1", environ={"k": 1}))
    site.crontab.save()
    return site


@pytest.fixture
def client(kit, site):
    return TestClient(create_app(kit), raise_server_exceptions=False)


def csrf(client) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)


def post_form(client, url, data):
    return client.post(url, data={**data, "csrf_token": csrf(client)}, follow_redirects=False)


def snapshot(site):
    return site.crontab.dump(), [(j.id, j.type, j.name, j.payload) for j in site.jobs.list()]


def fresh(kit, site):
    """The site as a new kit reads it from the store: what every listing shows."""
    other = cronkit.Cronkit(store=kit.store, clock=kit.clock)
    return other.site(site.name)


def listings_work(client, site=None):
    """The listings that answered 500 on a stored bad value answer 200, and what they
    show is JSON that reads back."""
    for url in (f"{API}/crontab", f"{API}/crons", f"{API}/jobs", "/api/v1/sites"):
        response = client.get(url)
        assert response.status_code == 200, (url, response.text)
        json.loads(response.content.decode("utf-8"))
    for url in ("/", "/sites/plone", "/jobs"):
        assert client.get(url).status_code == 200, url
    if site is not None:
        assert cronkit.Crontab.load(json.dumps(site.crontab.dump())).similar(site.crontab)
        site.import_crons(site.export_crons())


@pytest.fixture
def global_runners():
    """The runners, registered globally: the CLI's own kit finds them."""
    cronkit.register_runner(Echo, name="echo")
    cronkit.register_runner(Typed, name="typed")


def run_cli(db_url, capsys, *argv):
    code = cli.main(["--store", db_url, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cronkit: error: "), err
    assert "Traceback" not in err
    return lines[0]


# == values that pass validation and then break the API ===============================


# -- Python ------------------------------------------------------------------------


@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
def test_python_refuses_a_non_finite_misfire_grace(value):
    with pytest.raises(InvalidCron) as info:
        cronkit.Cron("echo", "@hourly", misfire_grace=value)
    assert info.value.field == "misfire_grace"
    cron = cronkit.Cron("echo", "@hourly", misfire_grace=5)
    with pytest.raises(InvalidCron):
        cron.misfire_grace = value
    assert cron.misfire_grace == 5


@pytest.mark.parametrize("field, value", BAD_TEXT)
def test_python_refuses_text_no_store_holds_naming_the_field(site, field, value):
    values = {"name": "echo", "periodicity": "@hourly"} | {field: value}
    with pytest.raises(InvalidCron) as info:
        cronkit.Cron(**values)
    assert info.value.field == field and field in str(info.value)
    str(info.value).encode("utf-8")     # the message itself can be shown anywhere
    cron = site.crontab.by_uid("c1")
    if field != "uid":
        with pytest.raises(InvalidCron):
            setattr(cron, field, value)
    assert not site.crontab.dirty


@pytest.mark.parametrize("environ", BAD_ENVIRONS, ids=repr)
def test_python_refuses_an_environ_no_store_holds(environ):
    with pytest.raises(InvalidCron) as info:
        cronkit.Cron("echo", "@hourly", environ=environ)
    assert info.value.field == "environ"
    str(info.value).encode("utf-8")


@pytest.mark.parametrize("environ", [json.dumps({"a": SURROGATE}), '{"a": NaN}',
                                     '{"a": 1e999}', b'{"a": "\xff"}'], ids=repr)
def test_python_refuses_environ_text_no_store_holds(environ):
    with pytest.raises(InvalidCron) as info:
        cronkit.Cron("echo", "@hourly", environ=environ)
    assert info.value.field == "environ"


@pytest.mark.parametrize("payload, field", [
    ({"a": SURROGATE}, "a"), ({SURROGATE: 1}, "payload"), ({"a": {"b": [float("nan")]}}, "a"),
    ({"a": float("inf")}, "a"), ({"a": deep(MAX_JSON_DEPTH)}, "a"),
])
def test_python_submit_refuses_a_payload_no_store_holds(client, site, payload, field):
    before = snapshot(site)
    for type_ in ("echo", "typed"):
        with pytest.raises(InvalidParameters) as info:
            site.submit(type_, payload)
        assert field in info.value.errors
    assert snapshot(site) == before
    listings_work(client)


@pytest.mark.parametrize("options, field", [
    ({"name": SURROGATE}, "name"), ({"name": "x" * 501}, "name"), ({"name": "a\x00"}, "name"),
    ({"user": "\udcff"}, "user"), ({"user": 42}, "user"),
    ({"delay": float("inf")}, "delay"), ({"delay": float("nan")}, "delay"),
    ({"delay": 1e300}, "delay"), ({"timeout": float("inf")}, "timeout"),
    ({"priority": 2 ** 40}, "priority"),
])
def test_python_submit_refuses_options_no_store_holds(client, site, options, field):
    before = snapshot(site)
    with pytest.raises(InvalidParameters) as info:
        site.submit("echo", {}, **options)
    assert field in info.value.errors
    assert snapshot(site) == before
    listings_work(client)


def test_python_a_runners_message_no_store_holds_is_kept_escaped(site):
    cron = site.crontab.by_uid("c1")
    cron.log("WARN", ["bad \ud800 text"])
    site.crontab.save()
    assert fresh(site.kit, site).crontab.by_uid("c1").logs[0].messages == ["bad \\ud800 text"]


# -- CLI ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", NON_FINITE_TEXT)
def test_cli_crons_add_and_edit_refuse_a_non_finite_misfire_grace(db_url, site, capsys, value):
    before = snapshot(site)
    code, _, err = run_cli(db_url, capsys, "--site", "plone", "crons", "add", "echo", "@hourly",
                           "--misfire-grace", value)
    assert "misfire-grace" in one_line_error(code, err)
    code, _, err = run_cli(db_url, capsys, "--site", "plone", "crons", "edit", "c1",
                           "--misfire-grace", value)
    assert "misfire-grace" in one_line_error(code, err)
    assert snapshot(fresh(site.kit, site)) == before


@pytest.mark.parametrize("argv, words", [
    (["--environ", json.dumps({"a": SURROGATE})], "environ"),
    (["--environ", '{"a": NaN}'], "environ"),
    (["--environ", deep_text(100_000)], "environ"),
    (["--user", "bob\udcff"], "user"),
    (["--uid", "\udcff"], "uid"),
    (["--timezone", "UTC\udcff"], "timezone"),
])
def test_cli_crons_add_refuses_values_no_store_holds(db_url, site, global_runners, capsys,
                                                     argv, words):
    before = snapshot(site)
    code, _, err = run_cli(db_url, capsys, "--site", "plone", "crons", "add", "echo", "@hourly",
                           *argv)
    assert words in one_line_error(code, err)
    code, _, err = run_cli(db_url, capsys, "--site", "plone", "crons", "add", "echo\udcff",
                           "@hourly")
    assert "invalid name" in one_line_error(code, err)
    assert snapshot(fresh(site.kit, site)) == before


@pytest.mark.parametrize("argv, words", [
    (["--payload", json.dumps({"a": SURROGATE})], "payload"),
    (["--payload", '{"a": Infinity}'], "payload"),
    (["--payload", "{" + '"a":' * 100_000 + "1" + "}" * 100_000], "payload"),
    (["-p", "a=" + deep_text(100_000)], "--param a"),
    (["-p", "a=" + json.dumps(SURROGATE)], "--param a"),
    (["--name", "x\udcff"], "invalid name"),
    (["--user", "\udcff"], "invalid user"),
    (["--delay", "inf"], "--delay"),
    (["--delay", "1e300"], "--delay"),
    (["--timeout", "nan"], "--timeout"),
    (["--priority", str(2 ** 70)], "--priority"),
])
def test_cli_jobs_submit_refuses_values_no_store_holds(db_url, site, global_runners, capsys,
                                                       argv, words):
    before = snapshot(site)
    code, _, err = run_cli(db_url, capsys, "--site", "plone", "jobs", "submit", "echo", *argv)
    assert words in one_line_error(code, err)
    assert snapshot(fresh(site.kit, site)) == before


# -- REST --------------------------------------------------------------------------


@pytest.mark.parametrize("value", NON_FINITE_TEXT)
def test_rest_post_and_patch_refuse_a_non_finite_misfire_grace(client, site, value):
    before = snapshot(site)
    response = client.post(f"{API}/crons", json={"name": "echo", "periodicity": "@hourly",
                                                 "misfire_grace": value})
    assert response.status_code == 422 and response.json()["field"] == "misfire_grace"
    response = client.patch(f"{API}/crons/c1", json={"misfire_grace": value})
    assert response.status_code == 422 and response.json()["field"] == "misfire_grace"
    raw = b'{"name": "echo", "periodicity": "@hourly", "misfire_grace": 1e999}'
    response = client.post(f"{API}/crons", content=raw,
                           headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["field"] == "misfire_grace"
    assert snapshot(site) == before
    listings_work(client, site)


@pytest.mark.parametrize("field, value", BAD_TEXT + [("environ", {"a": SURROGATE})])
def test_rest_post_and_patch_refuse_text_no_store_holds_naming_the_field(client, site, field,
                                                                         value):
    before = snapshot(site)
    body = json.dumps({"name": "echo", "periodicity": "@hourly"} | {field: value})
    response = client.post(f"{API}/crons", content=body.encode(),
                           headers={"content-type": "application/json"})
    assert response.status_code in (400, 422) and response.json()["field"] == field, response.text
    if field != "uid":
        response = client.patch(f"{API}/crons/c1", content=json.dumps({field: value}).encode(),
                                headers={"content-type": "application/json"})
        assert response.status_code in (400, 422) and response.json()["field"] == field
    assert snapshot(site) == before
    listings_work(client, site)


@pytest.mark.parametrize("body, field", [
    ({"type": "echo", "payload": {"a": SURROGATE}}, "payload"),
    ({"type": "echo", "name": "\udfff"}, "name"),
    ({"type": "echo", "name": "a\x00"}, "name"),
    ({"type": "echo", "payload": {"a": deep(MAX_JSON_DEPTH)}}, "a"),
    ({"type": "typed", "payload": {"count": 1, "label": SURROGATE}}, "payload"),
])
def test_rest_submit_refuses_values_no_store_holds(client, site, body, field):
    before = snapshot(site)
    response = client.post(f"{API}/jobs", content=json.dumps(body).encode(),
                           headers={"content-type": "application/json"})
    assert response.status_code in (400, 422) and response.json()["field"] == field, response.text
    assert snapshot(site) == before
    listings_work(client, site)


@pytest.mark.parametrize("body", [deep_text(100_000), '{"a":' * 100_000,
                                  json.dumps({"environ": deep(MAX_JSON_DEPTH + 20)})])
def test_rest_refuses_deeply_nested_bodies(client, site, body):
    for method, url in (("POST", f"{API}/crons"), ("PATCH", f"{API}/crons/c1"),
                        ("POST", f"{API}/jobs"), ("PATCH", f"{API}/crontab")):
        response = client.request(method, url, content=body.encode(),
                                  headers={"content-type": "application/json"})
        assert response.status_code == 400, (method, url, response.text)
    listings_work(client, site)


def test_rest_a_cron_activated_must_be_a_boolean(client, site):
    for value in ("false", 0, "yes", None):
        response = client.patch(f"{API}/crons/c1", json={"activated": value})
        assert response.status_code == 422 and response.json()["field"] == "activated"
    assert site.crontab.by_uid("c1").activated is True


# -- the dashboard's forms ------------------------------------------------------------


@pytest.mark.parametrize("value", NON_FINITE_TEXT)
def test_dashboard_cron_forms_refuse_a_non_finite_misfire_grace(client, site, value):
    before = snapshot(site)
    form = {"name": "echo", "periodicity": "@hourly", "misfire_grace": value, "activated": "on"}
    assert post_form(client, "/sites/plone/crons/new", form).status_code == 422
    assert post_form(client, "/sites/plone/crons/c1/edit", form).status_code == 422
    assert snapshot(site) == before
    listings_work(client, site)


def test_dashboard_cron_form_refuses_an_environ_no_store_holds(client, site):
    before = snapshot(site)
    for environ in (json.dumps({"a": SURROGATE}), '{"a": NaN}', deep_text(100_000)):
        form = {"name": "echo", "periodicity": "@hourly", "environ": environ}
        assert post_form(client, "/sites/plone/crons/new", form).status_code == 422
    assert snapshot(site) == before
    listings_work(client, site)


def test_dashboard_submit_form_refuses_a_payload_no_store_holds(client, site):
    before = snapshot(site)
    for payload in (json.dumps({"a": SURROGATE}), '{"a": -Infinity}', deep_text(100_000)):
        response = post_form(client, "/sites/plone/types/echo", {"payload": payload})
        assert response.status_code == 422
    assert snapshot(site) == before
    listings_work(client, site)


# -- crons.xml ---------------------------------------------------------------------


def cron_xml(attrs: str = "", environ: str | None = None, uid: str = "x") -> str:
    body = "" if environ is None else f"<environ><![CDATA[{environ}]]></environ>"
    return (f'<crons>\n<cron uid="{uid}" name="echo" periodicity="@hourly" activated="true"'
            f' {attrs}>{body}</cron>\n</crons>')


@pytest.mark.parametrize("value", NON_FINITE_TEXT)
def test_crons_xml_refuses_a_non_finite_misfire_grace(client, site, value):
    before = snapshot(site)
    for uid in ("x", "c1"):    # a new cron, and an edit
        with pytest.raises(cronkit.ProfileError) as info:
            site.import_crons(cron_xml(f'misfire_grace="{value}"', uid=uid))
        assert (info.value.file, info.value.line) == ("<string>", 2)
        assert "misfire_grace" in info.value.message
    assert snapshot(site) == before
    listings_work(client, site)


@pytest.mark.parametrize("environ", [json.dumps({"a": SURROGATE}), json.dumps({SURROGATE: 1}),
                                     '{"a": NaN}', '{"a": [Infinity]}', deep_text(100_000),
                                     '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_crons_xml_refuses_an_environ_no_store_holds(client, site, environ):
    before = snapshot(site)
    with pytest.raises(cronkit.ProfileError) as info:
        site.import_crons(cron_xml(environ=environ))
    assert (info.value.file, info.value.line) == ("<string>", 2)
    assert "environ" in info.value.message
    assert snapshot(site) == before
    listings_work(client, site)


# -- ZCML --------------------------------------------------------------------------


def zcml(tmp_path, cron_attrs: str, name: str = "profile.zcml", head: str = "") -> Path:
    path = tmp_path / name
    path.write_text(ZCML_HEAD + head + '<cron:crontab site="plone">\n'
                    f'<cron:cron uid="z" name="echo" periodicity="@hourly" {cron_attrs}/>\n'
                    "</cron:crontab>\n</configure>\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("value", NON_FINITE_TEXT)
def test_zcml_refuses_a_non_finite_misfire_grace(client, kit, site, tmp_path, value):
    before = snapshot(site)
    path = zcml(tmp_path, f'misfire_grace="{value}"')
    with pytest.raises(cronkit.ProfileError) as info:
        kit.load_profile(path)
    assert (info.value.file, info.value.line) == (str(path), 4)
    assert "misfire_grace" in info.value.message
    assert snapshot(site) == before
    listings_work(client, site)


@pytest.mark.parametrize("environ", [json.dumps({"a": SURROGATE}), '{"a": NaN}',
                                     deep_text(5_000)])
def test_zcml_refuses_an_environ_no_store_holds(client, kit, site, tmp_path, environ):
    before = snapshot(site)
    path = zcml(tmp_path, f"environ='{environ}'")
    with pytest.raises(cronkit.ProfileError) as info:
        kit.load_profile(path)
    assert (info.value.file, info.value.line) == (str(path), 4)
    assert "environ" in info.value.message and "RecursionError" not in info.value.message
    assert snapshot(site) == before
    listings_work(client, site)


# == loaders raise only CronkitError subclasses ========================================


DEEP_DOCUMENTS = [deep_text(100_000), '{"a":' * 100_000, json.dumps(deep(MAX_JSON_DEPTH + 20))]


@pytest.mark.parametrize("text", DEEP_DOCUMENTS, ids=["lists", "objects", "just too deep"])
@pytest.mark.parametrize("load, error", [(cronkit.Cron.load, InvalidCron),
                                         (cronkit.Crontab.load, InvalidCrontab),
                                         (cronkit.Log.load, cronkit.InvalidLog)])
def test_loaders_refuse_deeply_nested_json(load, error, text):
    for data in (text, text.encode()):
        with pytest.raises(error):
            load(data)


def test_a_crontab_dump_with_a_deep_but_valid_environ_loads():
    cron = cronkit.Cron("echo", "@hourly", uid="a", environ={"k": deep(MAX_JSON_DEPTH - 1)})
    text = json.dumps(cronkit.Crontab([cron]).dump())
    assert cronkit.Crontab.load(text).by_uid("a").environ == cron.environ


@pytest.mark.parametrize("data, field", [
    ({"crons": [{"name": "e", "periodicity": "@hourly", "logs": 5}]}, "logs"),
    ({"crons": [{"name": "e", "periodicity": "@hourly", "logs": "abc"}]}, "logs"),
    ({"crons": [{"name": "e", "periodicity": "@hourly", "logs": [{"date": "2008-01-01",
                                                                  "messages": 5}]}]}, "messages"),
    ({"crons": [{"name": "e", "periodicity": "@hourly", "logs": [{"date": "2008-01-01",
                                                                  "messages": [{}]}]}]}, "messages"),
    ({"crons": [{"name": "e", "periodicity": "@hourly", "logs": [{"date": "0001-01-01T00:00+01:00"}]}]},
     "date"),
    ({"crons": [{"name": "e", "periodicity": "@hourly", "logs": [{"date": "2008-01-01",
                                                                  "status": ["OK"]}]}]}, "status"),
    ({"crons": [{"name": "e", "periodicity": "@hourly", "logs": [{"date": "2008-01-01",
                                                                  "id": "x"}]}]}, "id"),
    ({"crons": [{"name": "e", "periodicity": "@hourly", "logs_limit": "²"}]}, "logs_limit"),
    ({"crons": [{"name": "e", "periodicity": "@hourly", "uid": 10 ** 5000}]}, "uid"),
    ({"crons": {}}, "crons"),
    ({"crons": 0}, "crons"),
    ({5: 1}, "unknown"),
    ({"logs": 5}, "logs"),
])
def test_crontab_load_refuses_wrong_shapes_with_invalid_crontab(data, field):
    with pytest.raises(InvalidCrontab) as info:
        cronkit.Crontab.load(data)
    assert field in str(info.value)


@pytest.mark.parametrize("data", [{"name": "e", "periodicity": "@hourly", "logs": 5},
                                  {"name": "e", "periodicity": "@hourly", "logs": [[1]]},
                                  {"name": "e", "periodicity": "@hourly", "logs": None,
                                   "environ": 5}])
def test_cron_load_refuses_wrong_shapes_with_invalid_cron(data):
    with pytest.raises(InvalidCron):
        cronkit.Cron.load(data)


@pytest.mark.parametrize("data", [b"\xff\xfe{}", b'{"name": "\xe9"}', "{\"a\": NaN}"])
def test_loaders_refuse_bytes_and_text_that_are_not_json(data):
    for load in (cronkit.Cron.load, cronkit.Crontab.load, cronkit.Log.load):
        with pytest.raises(CronkitError):
            load(data)


def test_load_profile_of_non_utf8_bytes_is_a_profile_error_naming_file_and_line(kit, tmp_path):
    path = tmp_path / "latin.zcml"
    path.write_bytes(ZCML_HEAD.encode() + b'<cron:crontab site="plone">\n'
                     b'<cron:cron uid="z" name="caf\xe9" periodicity="@hourly"/>\n'
                     b"</cron:crontab>\n</configure>\n")
    with pytest.raises(cronkit.ProfileError) as info:
        kit.load_profile(path)
    assert (info.value.file, info.value.line) == (str(path), 4)
    assert "UTF-8" in info.value.message


def test_an_included_non_utf8_file_is_a_profile_error_naming_it(kit, tmp_path):
    (tmp_path / "bad.zcml").write_bytes(ZCML_HEAD.encode() + b"<!-- \xff -->\n</configure>\n")
    path = tmp_path / "main.zcml"
    path.write_text(ZCML_HEAD + '<include file="bad.zcml"/>\n</configure>\n')
    with pytest.raises(cronkit.ProfileError) as info:
        kit.load_profile(path)
    assert (info.value.file, info.value.line) == (str(tmp_path / "bad.zcml"), 3)


def test_import_crons_of_non_utf8_bytes_names_file_and_line(site, tmp_path):
    data = b'<crons>\n<cron uid="x" name="caf\xe9" periodicity="@hourly"/>\n</crons>'
    path = tmp_path / "crons.xml"
    path.write_bytes(data)
    for source, name in ((data, "<string>"), (path, str(path)), (str(path), str(path))):
        with pytest.raises(cronkit.ProfileError) as info:
            site.import_crons(source)
        assert (info.value.file, info.value.line) == (name, 2)
        assert "UTF-8" in info.value.message
    # a declared encoding is read as declared
    site.import_crons(b'<?xml version="1.0" encoding="latin-1"?>' + data)
    assert site.crontab.by_uid("x").name == "caf\xe9"


@pytest.fixture
def corrupt_store(tmp_path):
    path = tmp_path / "corrupt.db"
    cronkit.Cronkit(store=f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE cronkit_meta SET value = 'x1' WHERE key = 'schema_version'")
    return f"sqlite:///{path}"


def test_a_corrupt_schema_version_is_a_store_error(corrupt_store):
    with pytest.raises(cronkit.StoreError) as info:
        cronkit.Cronkit(store=corrupt_store)
    assert "schema version" in str(info.value)


def test_the_cli_never_prints_a_traceback_for_bad_input(db_url, site, capsys, tmp_path,
                                                        corrupt_store):
    latin = tmp_path / "latin.xml"
    latin.write_bytes(b'<crons><cron uid="x" name="caf\xe9" periodicity="@hourly"/></crons>')
    zlatin = tmp_path / "latin.zcml"
    zlatin.write_bytes(ZCML_HEAD.encode() + b"<!-- \xe9 -->\n</configure>\n")
    cases = [
        (db_url, ["profile", "load", str(latin)]),
        (db_url, ["profile", "load", str(zlatin)]),
        (db_url, ["profile", "export", "-o", str(tmp_path / "no" / "such" / "dir.xml")]),
        (db_url, ["jobs", "status", str(2 ** 70)]),
        (db_url, ["cleanup", "--backlog-days", "1e300"]),
        (db_url, ["web", "--port", "99999"]),
        (db_url, ["--site", "s\udcff", "crons", "list"]),
        (corrupt_store, ["crons", "list"]),
    ]
    for store, argv in cases:
        code, _, err = run_cli(store, capsys, *argv)
        one_line_error(code, err)


# == booleans in loaders are strict ====================================================


@pytest.mark.parametrize("data, field", [
    ({"crons": [], "read_only": "false"}, "read_only"),
    ({"crons": [], "read_only": 0}, "read_only"),
    ({"crons": [], "activated": "false"}, "activated"),
    ({"crons": [], "activated": 1}, "activated"),
    ({"crons": [], "activated": None}, "activated"),
    ({"crons": [{"name": "e", "periodicity": "@hourly", "activated": "false"}]}, "activated"),
])
def test_crontab_load_booleans_are_strict(data, field):
    with pytest.raises(InvalidCrontab) as info:
        cronkit.Crontab.load(data)
    assert field in str(info.value)
    assert cronkit.Crontab.load({"crons": [], "read_only": False}).read_only is False


@pytest.mark.parametrize("value", ["false", "true", 0, 1, None, "no"])
def test_cron_load_activated_is_strict(value):
    with pytest.raises(InvalidCron) as info:
        cronkit.Cron.load({"name": "e", "periodicity": "@hourly", "activated": value})
    assert info.value.field == "activated"
    assert cronkit.Cron.load({"name": "e", "periodicity": "@hourly",
                              "activated": False}).activated is False


def test_crontab_load_refuses_a_duplicate_uid_naming_it():
    cron = {"uid": "twice", "name": "e", "periodicity": "@hourly"}
    with pytest.raises(InvalidCrontab) as info:
        cronkit.Crontab.load({"crons": [cron, cron | {"name": "f"}]})
    assert "'twice'" in str(info.value)


@pytest.mark.parametrize("document, words", [
    ('<crons>\n<cron uid="x" name="e" periodicity="@hourly" activated=""/></crons>', "activated"),
    ('<crons>\n<cron uid="c1" remove=""/></crons>', "remove"),
    ('<crons activated="">\n</crons>', "activated"),
])
def test_crons_xml_booleans_are_strict(site, document, words):
    before = snapshot(site)
    with pytest.raises(cronkit.ProfileError) as info:
        site.import_crons(document)
    assert words in info.value.message and info.value.line is not None
    assert snapshot(site) == before


@pytest.mark.parametrize("attrs, words", [('activated=""', "activated"),
                                          ('remove=""', "remove")])
def test_zcml_booleans_are_strict(kit, site, tmp_path, attrs, words):
    before = snapshot(site)
    path = zcml(tmp_path, attrs)
    with pytest.raises(cronkit.ProfileError) as info:
        kit.load_profile(path)
    assert words in info.value.message and info.value.line == 4
    switch = tmp_path / "switch.zcml"
    switch.write_text(ZCML_HEAD + '<cron:crontab site="plone" activated=""/>\n</configure>\n')
    with pytest.raises(cronkit.ProfileError) as info:
        kit.load_profile(switch)
    assert "activated" in info.value.message and info.value.line == 3
    assert snapshot(site) == before


# == limits =============================================================================


def test_an_environ_over_1_mib_is_refused_on_every_path(client, kit, site, tmp_path):
    big = {"blob": "é" * (600 * 1024)}     # 1.2 MB of UTF-8, though fewer characters
    before = snapshot(site)
    with pytest.raises(InvalidCron) as info:
        cronkit.Cron("echo", "@hourly", environ=big)
    assert info.value.field == "environ" and "1 MiB" in str(info.value)
    response = client.post(f"{API}/crons", json={"name": "echo", "periodicity": "@hourly",
                                                 "environ": big})
    assert response.status_code in (413, 422), response.status_code
    with pytest.raises(cronkit.ProfileError):
        site.import_crons(cron_xml(environ=json.dumps(big, ensure_ascii=False)))
    assert snapshot(site) == before
    ok = {"blob": "é" * (500 * 1024)}     # under 1 MiB
    assert cronkit.Cron("echo", "@hourly", environ=ok).environ == ok


def test_a_two_million_cron_crons_xml_is_refused_before_it_is_read(site, tmp_path):
    path = tmp_path / "huge.xml"
    with path.open("w") as f:
        f.write("<crons>\n")
        for _ in range(2_000):
            f.write('<cron uid="x"/>\n' * 1_000)
        f.write("</crons>\n")
    assert path.stat().st_size > 30_000_000
    tracemalloc.start()
    try:
        with pytest.raises(cronkit.ProfileError) as info:
            site.import_crons(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.file == str(path)
    assert "bytes" in info.value.message and "MAX_PROFILE_BYTES" in info.value.message
    assert peak < 5_000_000       # nothing of it was read
    assert len(site.crontab.crons) == 1
    path.unlink()


def test_a_crons_xml_of_too_many_elements_stops_at_the_limit(site):
    document = "<crons>\n" + "<a/>\n" * 2_000_000 + "</crons>"     # 10 MB, but 2M elements
    with pytest.raises(cronkit.ProfileError) as info:
        import_crons(site, document, max_bytes=20_000_000)
    assert info.value.line == 200_000 + 1000 + 1 and "elements" in info.value.message
    crons = "<crons>\n" + '<cron uid="a" remove="true"/>\n' * 11 + "</crons>"
    with pytest.raises(cronkit.ProfileError) as info:
        import_crons(site, crons, max_crons=10)
    assert info.value.line == 12 and "more than 10 crons" in info.value.message
    assert len(site.crontab.crons) == 1


def test_profile_limits_are_read_when_a_profile_is_loaded(site, monkeypatch):
    monkeypatch.setattr(cronkit.profiles, "MAX_PROFILE_BYTES", 100)
    with pytest.raises(cronkit.ProfileError) as info:
        site.import_crons(cron_xml(environ=json.dumps({"a": "b" * 200})).encode())
    assert "100 bytes" in info.value.message
    monkeypatch.setattr(cronkit.profiles, "MAX_PROFILE_BYTES", 10_000)
    monkeypatch.setattr(cronkit.profiles, "MAX_PROFILE_CRONS", 1)
    with pytest.raises(cronkit.ProfileError):
        site.import_crons('<crons><cron uid="a" remove="true"/><cron uid="b" remove="true"/>'
                          "</crons>")


def test_a_zcml_profile_over_the_size_limit_is_refused(kit, site, tmp_path):
    path = tmp_path / "huge.zcml"
    with path.open("wb") as f:
        f.write(ZCML_HEAD.encode())
        f.truncate(2 ** 30)   # a gigabyte (sparse)
    with pytest.raises(cronkit.ProfileError) as info:
        kit.load_profile(path)
    assert info.value.file == str(path) and "MAX_PROFILE_BYTES" in info.value.message
    included = tmp_path / "main.zcml"
    included.write_text(ZCML_HEAD + '<include file="huge.zcml"/>\n</configure>\n')
    with pytest.raises(cronkit.ProfileError) as info:
        kit.load_profile(included)
    assert info.value.file == str(path)


def test_zcml_crons_are_counted_across_included_files(kit, site, tmp_path):
    crons = "".join(f'<cron:cron uid="u{i}" name="echo" periodicity="@hourly"/>\n'
                    for i in range(3))
    for name in ("a.zcml", "b.zcml"):
        (tmp_path / name).write_text(ZCML_HEAD + '<cron:crontab site="plone">\n' + crons
                                     .replace('uid="u', f'uid="{name[0]}') +
                                     "</cron:crontab>\n</configure>\n")
    path = tmp_path / "main.zcml"
    path.write_text(ZCML_HEAD + '<include file="a.zcml"/>\n<include file="b.zcml"/>\n'
                    "</configure>\n")
    before = snapshot(site)
    with pytest.raises(cronkit.ProfileError) as info:
        cronkit.profiles.zcml.load_profile(kit, path, max_crons=5)
    assert (info.value.file, info.value.line) == (str(tmp_path / "b.zcml"), 6)
    assert "more than 5 crons" in info.value.message
    assert snapshot(site) == before
    cronkit.profiles.zcml.load_profile(kit, path, max_crons=6)
    assert len(site.crontab.crons) == 7


def test_a_zcml_profile_of_too_many_elements_stops_at_the_limit(kit, tmp_path):
    path = tmp_path / "many.zcml"
    path.write_text(ZCML_HEAD + "<configure/>\n" * 300_000 + "</configure>\n")
    with pytest.raises(cronkit.ProfileError) as info:
        kit.load_profile(path)
    assert info.value.file == str(path) and info.value.line == 200_000 + 1000 + 2


# == property-based: no loader raises anything but CronkitError ========================
#
# Each generator draws mostly valid values and, now and then, a hostile one (text with
# lone surrogates or NUL, NaN, infinities, huge integers, nesting at the depth limit,
# a value of the wrong type), so that both the refusals and what is accepted (then
# stored, listed, dumped and read again) are reached.


def hostile_text(max_size: int = 8):
    return st.text(st.characters(exclude_categories=()), max_size=max_size) | st.sampled_from(
        ["", " ", "nan", "inf", "-inf", "Infinity", "1e400", "true", "false", "0", "1",
         "@hourly", "* * * * *", "UTC", "once", SURROGATE, "\x00", "²", "9" * 30])


scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2 ** 80, 2 ** 80)
           | st.floats() | hostile_text())
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(hostile_text(), inner, max_size=3), max_leaves=10)
#: Values that passed validation once and then broke a listing or a loader.
KNOWN_BAD = ["inf", "nan", "-inf", "Infinity", "1e400", SURROGATE, "a\x00", "false", "²", "",
             10 ** 30, 0, 1.5, [], {}]
hostile = (st.sampled_from(KNOWN_BAD) | json_like
           | st.integers(MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH + 2).map(deep))
words = st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 53, 2 ** 53) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3), max_leaves=8)
dates = st.datetimes(timezones=st.just(UTC_ZONE)).map(lambda d: d.isoformat()) | st.sampled_from(
    ["2008-01-01T00:00:00", "2008-01-01 01:02:03", "0001-01-01T00:00:00+05:00",
     "9999-12-31T23:59:59-05:00"])
VALID = {
    "uid": st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=10),
    "name": st.sampled_from(["echo", "typed"]) | words,
    "periodicity": st.sampled_from(["* * * * *", "*/5 * * * *", "0 3 * * *", "@hourly",
                                    "0 9 * * 1-5", "15 10 * * * 30", "0 0 1 1 *"]),
    "timezone": st.sampled_from([None, "", "UTC", "Europe/Paris", "America/New_York"]),
    "activated": st.booleans(),
    "environ": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    "logs_limit": st.integers(1, 25),
    "user": st.none() | words,
    "misfire": st.sampled_from(["once", "all", "skip"]),
    "misfire_grace": st.none() | st.integers(0, 10 ** 6) | st.floats(0, 1e6),
}
LOG_VALID = {"date": dates, "status": st.sampled_from(["OK", "WARN", "FAILURE", "NOTRUN"]),
             "messages": st.lists(st.text(max_size=10), max_size=2), "id": st.none() | st.integers(1, 99)}


def mostly_valid(valid: dict, required: tuple[str, ...] = ()):
    """A dict of some of ``valid``'s fields (``required`` ones nearly always), each
    value valid five times in six, and now and then an unknown key."""

    # Hypothesis leans to the first of sampled values: the usual case comes first.
    nearly_always = st.sampled_from([True] * 9 + [False])
    now_and_then = st.sampled_from([False] * 5 + [True])
    rarely = st.sampled_from([False] * 15 + [True])

    @st.composite
    def build(draw):
        data = {}
        for key, values in valid.items():
            if draw(nearly_always if key in required else st.booleans()):
                data[key] = draw(hostile if draw(now_and_then) else values)
        if draw(rarely):
            data[draw(hostile_text())] = draw(json_like)
        return data

    return build()


log_dicts = mostly_valid(LOG_VALID, required=("date",))
cron_dicts = st.builds(lambda data, logs: data | ({"logs": logs} if logs is not None else {}),
                       mostly_valid(VALID, required=("name", "periodicity")),
                       st.none() | st.lists(log_dicts, max_size=2) | st.none() | hostile)
crontab_dicts = st.builds(
    lambda crons, switches: {"crons": crons} | switches,
    st.lists(cron_dicts, max_size=3) | hostile,
    mostly_valid({"activated": st.booleans(), "read_only": st.booleans()}))


def as_sources(value):
    """The value, its JSON text and its JSON bytes (when it has one)."""
    sources = [value]
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return sources
    return [*sources, text, text.encode("utf-8", "surrogatepass")]


def only_cronkit_errors(load, data):
    try:
        loaded = load(data)
    except CronkitError:
        event("refused")
        return None
    event("loaded")
    return loaded


@SETTINGS
@given(data=cron_dicts | json_like)
def test_cron_load_raises_only_cronkit_errors(data):
    for source in as_sources(data):
        cron = only_cronkit_errors(cronkit.Cron.load, source)
        if cron is not None:    # what loads can be dumped, as JSON text, and loaded again
            assert cronkit.Cron.load(json.dumps(cron.dump())) == cron


@SETTINGS
@given(data=crontab_dicts | st.lists(cron_dicts, max_size=3) | json_like)
@example(data={"crons": [{"name": "e", "periodicity": "@hourly", "logs": 5}]})
@example(data=deep(100_000))
def test_crontab_load_raises_only_cronkit_errors(data):
    for source in as_sources(data):
        crontab = only_cronkit_errors(cronkit.Crontab.load, source)
        if crontab is not None:
            assert cronkit.Crontab.load(json.dumps(crontab.dump())).similar(crontab)


@SETTINGS
@given(data=log_dicts | json_like)
def test_log_load_raises_only_cronkit_errors(data):
    for source in as_sources(data):
        log = only_cronkit_errors(cronkit.Log.load, source)
        if log is not None:
            assert cronkit.Log.load(json.dumps(log.dump())) == log


@SETTINGS
@given(data=st.binary(max_size=200) | hostile_text(200))
def test_loaders_on_arbitrary_text_and_bytes(data):
    for load in (cronkit.Cron.load, cronkit.Crontab.load, cronkit.Log.load):
        only_cronkit_errors(load, data)


def as_text(value) -> str:
    """How a value is written in an XML attribute."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return ""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def xml_attrs(data: dict) -> str:
    return "".join(f" {k}={quoteattr(as_text(v))}" for k, v in data.items()
                   if k not in ("environ", "logs") and isinstance(k, str) and k.isidentifier())


def xml_environ(data: dict) -> str | None:
    if "environ" not in data:
        return None
    return as_text(data["environ"]).replace("]]>", "]]\\u003e")


@st.composite
def crons_documents(draw):
    entries = []
    for i in range(draw(st.integers(0, 3))):
        data = {"uid": f"u{i}"} | draw(mostly_valid(VALID | {"remove": st.just("false")},
                                                    required=("name", "periodicity")))
        environ = xml_environ(data)
        body = "" if environ is None else f"<environ><![CDATA[{environ}]]></environ>"
        entries.append(f"<cron{xml_attrs(data)}>{body}</cron>")
    head = draw(st.sampled_from(["<crons>", '<crons activated="false">', '<crons activated="">']))
    return head + "\n" + "\n".join(entries) + "\n</crons>"


def applies_or_refuses(site, load):
    before = snapshot(site)
    try:
        load()
    except cronkit.ProfileError as exc:
        event("refused")
        assert exc.file is not None
        assert snapshot(site) == before
        return False
    event("applied")
    return True


@SETTINGS
@given(document=crons_documents(), as_bytes=st.booleans())
@example(document=cron_xml('misfire_grace="inf"'), as_bytes=False)
@example(document=cron_xml(environ='{"a": NaN}'), as_bytes=True)
@example(document=cron_xml(environ='{"a": "\\ud800"}'), as_bytes=True)
def test_import_crons_raises_only_profile_errors(client, site, document, as_bytes):
    source = document.encode("utf-8", "surrogatepass") if as_bytes else document
    if applies_or_refuses(site, lambda: site.import_crons(source)):
        listings_work(client, site)


@SETTINGS
@given(data=mostly_valid(VALID | {"remove": st.sampled_from(["false", "true"])},
                         required=("name", "periodicity")),
       switch=st.none() | st.booleans() | hostile_text())
def test_load_profile_raises_only_profile_errors(client, kit, site, tmp_path, data, switch):
    data = {"uid": "z"} | data
    environ = xml_environ(data)
    attrs = xml_attrs(data) + ("" if environ is None else f" environ={quoteattr(environ)}")
    head = "" if switch is None else f" activated={quoteattr(as_text(switch))}"
    path = tmp_path / "p.zcml"
    path.write_bytes((ZCML_HEAD + f'<cron:crontab site="plone"{head}>\n<cron:cron{attrs}/>\n'
                      "</cron:crontab>\n</configure>\n").encode("utf-8", "surrogatepass"))
    if applies_or_refuses(site, lambda: kit.load_profile(path)):
        listings_work(client, site)


# -- the REST API bodies: never a 500 ------------------------------------------------------


def body_bytes(value):
    try:
        return json.dumps(value).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, RecursionError):
        return b"{"


JOB_VALID = {"type": st.sampled_from(["echo", "typed", "nosuch"]),
             "payload": st.dictionaries(st.sampled_from(["count", "label", "x"]), json_values,
                                        max_size=3),
             "name": st.none() | words, "priority": st.integers(-10, 10),
             "delay": st.integers(0, 100) | st.floats(0, 100), "unique": st.booleans()}
job_dicts = mostly_valid(JOB_VALID, required=("type",))
rest_crons = cron_dicts.map(lambda d: {k: v for k, v in d.items() if k != "logs"})


def answered(response, status=None):
    event(f"{response.request.method} {response.status_code}")
    assert response.status_code < 500, (response.request.url, response.text)


@SETTINGS
@given(body=rest_crons | json_like, patch=rest_crons | json_like,
       switch=st.dictionaries(st.just("activated"), st.booleans() | hostile))
@example(body={"name": "echo", "periodicity": "@hourly", "misfire_grace": "inf"},
         patch={"misfire_grace": "nan"}, switch={})
@example(body={"name": "echo", "periodicity": "@hourly", "environ": deep(500)}, patch={},
         switch={})
def test_rest_cron_bodies_never_answer_500(client, site, body, patch, switch):
    patch = {k: v for k, v in patch.items() if k != "uid"} if isinstance(patch, dict) else patch
    for method, url, value in (("POST", f"{API}/crons", body),
                               ("PATCH", f"{API}/crons/c1", patch),
                               ("PATCH", f"{API}/crontab", switch)):
        answered(client.request(method, url, content=body_bytes(value),
                                headers={"content-type": "application/json"}))
    listings_work(client)


@SETTINGS
@given(body=job_dicts | json_like)
@example(body={"type": "echo", "payload": {"a": deep(500)}})
@example(body={"type": "echo", "name": "a\x00"})
def test_rest_job_bodies_never_answer_500(client, site, body):
    answered(client.post(f"{API}/jobs", content=body_bytes(body),
                         headers={"content-type": "application/json"}))
    listings_work(client)


@SETTINGS
@given(data=st.binary(max_size=100))
def test_rest_arbitrary_bytes_never_answer_500(client, site, data):
    for method, url in (("POST", f"{API}/crons"), ("PATCH", f"{API}/crons/c1"),
                        ("POST", f"{API}/jobs"), ("PATCH", f"{API}/crontab")):
        answered(client.request(method, url, content=data,
                                headers={"content-type": "application/json"}))
