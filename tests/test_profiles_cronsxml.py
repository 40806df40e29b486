"""crons.xml import and export, after collective.cron's ``timed_genericsetup.rst``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

import cronkit
from cronkit.profiles.cronsxml import export_crons, export_json, import_crons

# The three documents of collective.cron's scenario, as its documentation gives them.
CRONS = """<?xml version="1.0"?>
<crons>
  <cron uid="foogsuid" name="foo" activated="true"
        periodicity="*/1 * * * *" >
      <environ> <![CDATA[ {"foo":"bar"} ]]> </environ>
  </cron>
  <!-- YOU CAN OMIT ENVIRON  & activated-->
  <cron uid="foogsuid2" name="foo2" periodicity="*/1 * * * *" />
  <cron uid="foogsuid3" name="foo3" periodicity="*/1 * * * *" />
</crons> """

CRONSD = """<?xml version="1.0"?>
<crons>
  <cron uid="foogsuid2" name="foo2" remove="true" periodicity="*/1 * * * *" />
  <cron uid="foogsuid2" name="foo2changed" periodicity="*/3 * * * *"/>
  <cron uid="foogsuid3" remove="true"/>
</crons> """

CRONSE = """<?xml version="1.0"?>
<crons>
  <cron uid="foogsuid2" name="foo2editeé" activated="True"  periodicity="*/4 * * * *">
      <environ><![CDATA[ {"foo":"bar", "miche":"muche"} ]]></environ>
  </cron>
</crons> """

EXPORTED = """<?xml version="1.0" encoding="UTF-8"?>
<crons>
  <cron uid="foogsuid" name="foo" activated="True" periodicity="*/1 * * * *">
    <environ><![CDATA[
{"foo": "bar"}
]]>
    </environ>
  </cron>
  <cron uid="foogsuid2" name="foo2editeé" activated="True" periodicity="*/4 * * * *">
    <environ><![CDATA[
{"foo": "bar", "miche": "muche"}
]]>
    </environ>
  </cron>
</crons>
"""


@pytest.fixture
def doc_clock(clock):
    """collective.cron's documentation runs at 2008-01-01 00:01 UTC."""
    clock.set(datetime(2008, 1, 1, 0, 1, tzinfo=UTC))
    return clock


def reopened(db_url, clock, name="plone"):
    """The crontab as another process sees it in the store."""
    other = cronkit.Cronkit(store=db_url, clock=clock)
    try:
        return cronkit.Crontab.load(other.site(name).crontab.dump())
    finally:
        other.close()


def pending(site):
    return sorted((j.cron_uid, j.run_after) for j in site.jobs.list(status=cronkit.Status.PENDING))


# -- collective.cron's scenario ----------------------------------------------------


def test_import_adds_three_crons_activated_only_when_said(site, doc_clock):
    crontab = site.import_crons(CRONS)
    assert crontab is site.crontab
    assert repr(list(crontab.crons.values())) == (
        "[cron: foo/foogsuid [ON:2008-01-01 00:02:00] {'foo': 'bar'}, "
        "cron: foo2/foogsuid2 [OFF], cron: foo3/foogsuid3 [OFF]]")
    assert not crontab.dirty


def test_remove_and_add_again_in_one_document(site, doc_clock):
    site.import_crons(CRONS)
    site.import_crons(CRONSD)
    assert repr(list(site.crontab.crons.values())) == (
        "[cron: foo/foogsuid [ON:2008-01-01 00:02:00] {'foo': 'bar'}, "
        "cron: foo2changed/foogsuid2 [OFF]]")
    assert site.crontab.by_uid("foogsuid2").periodicity == "*/3 * * * *"


def test_edit_of_name_activation_periodicity_and_environ(site, doc_clock):
    site.import_crons(CRONS)
    site.import_crons(CRONSD)
    site.import_crons(CRONSE)
    assert repr(list(site.crontab.crons.values())) == (
        "[cron: foo/foogsuid [ON:2008-01-01 00:02:00] {'foo': 'bar'}, "
        "cron: foo2editeé/foogsuid2 [ON:2008-01-01 00:04:00] {'foo': 'bar', 'miche': 'muche'}]")


def test_export_writes_collective_cron_layout(site, doc_clock):
    for document in (CRONS, CRONSD, CRONSE):
        site.import_crons(document)
    assert site.export_crons() == EXPORTED
    assert export_crons(site) == EXPORTED


def test_export_then_import_into_an_empty_site_is_similar(kit, site, doc_clock):
    for document in (CRONS, CRONSD, CRONSE):
        site.import_crons(document)
    other = kit.site("copy")
    other.import_crons(site.export_crons())
    assert other.crontab.similar(site.crontab)


def test_seconds_first_and_the_drawing_of_h_travel_through_crons_xml(kit, site, doc_clock):
    site.import_crons('<crons><cron uid="q" name="n" activated="true" seconds_first="true" '
                      'periodicity="0 30 9 * * MON-FRI"/>'
                      '<cron uid="h" name="n" activated="true" periodicity="H R * * *"/></crons>')
    q, h = site.crontab.by_uid("q"), site.crontab.by_uid("h")
    assert (q.seconds_first, q.expanded) == (True, "30 9 * * MON-FRI 0")
    text = site.export_crons()
    assert 'seconds_first="True"' in text and f'expanded="{h.expanded}"' in text
    assert 'uid="q"' in text and text.count("expanded=") == 1   # only where H or R drew
    other = kit.site("copy")
    other.import_crons(text)
    # the drawing is kept, R included: another site reads the same times
    assert other.crontab.by_uid("h").expanded == h.expanded
    assert other.crontab.by_uid("q").expanded == q.expanded
    with pytest.raises(cronkit.ProfileError, match="seconds_first"):
        site.import_crons('<crons><cron uid="x" name="n" periodicity="0 0 12 * * *" '
                          'seconds_first="maybe"/></crons>')


def test_each_step_is_saved_in_the_store(site, db_url, doc_clock):
    site.import_crons(CRONS)
    assert reopened(db_url, doc_clock).similar(site.crontab)
    site.import_crons(CRONSD)
    assert list(reopened(db_url, doc_clock).crons) == ["foogsuid", "foogsuid2"]
    site.import_crons(CRONSE)
    assert reopened(db_url, doc_clock).similar(site.crontab)


# -- the queue ---------------------------------------------------------------------


def test_import_syncs_the_queue(site, doc_clock):
    site.import_crons(CRONS)
    assert pending(site) == [("foogsuid", datetime(2008, 1, 1, 0, 2, tzinfo=UTC))]
    site.import_crons(CRONSE)   # foogsuid2 is activated
    assert [uid for uid, _ in pending(site)] == ["foogsuid", "foogsuid2"]


def test_importing_twice_changes_nothing(site, db_url, doc_clock):
    site.import_crons(CRONS)
    jobs = site.jobs.list()
    version = site.crontab.version
    site.import_crons(CRONS)
    assert [j.id for j in site.jobs.list()] == [j.id for j in jobs]
    assert len(site.crontab.crons) == 3
    assert site.crontab.version == version


def test_deactivating_by_import_removes_the_pending_job(site, doc_clock):
    site.import_crons(CRONS)
    site.import_crons('<crons><cron uid="foogsuid" activated="false"/></crons>')
    assert pending(site) == []


# -- semantics ---------------------------------------------------------------------


def test_edit_changes_only_the_attributes_given(site):
    site.import_crons(CRONS)
    site.import_crons('<crons><cron uid="foogsuid" periodicity="0 3 * * *"/></crons>')
    cron = site.crontab.by_uid("foogsuid")
    assert (cron.name, cron.activated, cron.environ, cron.periodicity) == (
        "foo", True, {"foo": "bar"}, "0 3 * * *")


def test_a_new_cron_without_activated_is_deactivated_with_an_empty_environ(site):
    site.import_crons('<crons><cron uid="a" name="x" periodicity="@hourly"/></crons>')
    cron = site.crontab.by_uid("a")
    assert cron.activated is False and cron.environ == {}


def test_an_empty_environ_element_leaves_environ_alone(site):
    site.import_crons(CRONS)
    site.import_crons('<crons><cron uid="foogsuid"><environ>  </environ></cron></crons>')
    assert site.crontab.by_uid("foogsuid").environ == {"foo": "bar"}


def test_removing_an_unknown_uid_does_nothing(site):
    site.import_crons(CRONS)
    site.import_crons('<crons><cron uid="nobody" remove="true"/></crons>')
    assert list(site.crontab.crons) == ["foogsuid", "foogsuid2", "foogsuid3"]


def test_a_cron_not_in_the_file_stays(site):
    site.import_crons(CRONS)
    site.import_crons('<crons><cron uid="new" name="n" periodicity="@daily"/></crons>')
    assert list(site.crontab.crons) == ["foogsuid", "foogsuid2", "foogsuid3", "new"]


def test_extra_attributes_are_imported_and_exported(kit, site):
    site.import_crons("""<crons>
      <cron uid="a" name="x" periodicity="0 9 * * *" activated="true" timezone="Europe/Paris"
            logs_limit="7" user="admin" misfire="skip" misfire_grace="30"/>
    </crons>""")
    cron = site.crontab.by_uid("a")
    assert (cron.timezone, cron.logs_limit, cron.user, cron.misfire, cron.misfire_grace) == (
        "Europe/Paris", 7, "admin", "skip", 30.0)
    exported = site.export_crons()
    assert 'timezone="Europe/Paris"' in exported and 'misfire="skip"' in exported
    copy = kit.site("copy")
    copy.import_crons(exported)
    assert copy.crontab.similar(site.crontab)


def test_empty_optional_attributes_clear_them(site):
    site.import_crons('<crons><cron uid="a" name="x" periodicity="@daily" timezone="Asia/Tokyo"'
                      ' user="bob" misfire_grace="5"/></crons>')
    site.import_crons('<crons><cron uid="a" timezone="" user="" misfire_grace=""/></crons>')
    cron = site.crontab.by_uid("a")
    assert (cron.timezone, cron.user, cron.misfire_grace) == (None, None, None)


def test_the_crontab_switch(kit, site):
    site.import_crons(CRONS)
    site.import_crons('<crons activated="false"/>')
    assert site.crontab.activated is False
    assert pending(site) == []
    exported = site.export_crons()
    assert '<crons activated="False">' in exported
    copy = kit.site("copy")
    copy.import_crons(exported)
    assert copy.crontab.activated is False and copy.crontab.similar(site.crontab)


def test_logs_are_never_imported_and_a_readded_cron_starts_without_logs(site, db_url, clock):
    site.import_crons(CRONS)
    cron = site.crontab.by_uid("foogsuid")
    cron.log(cronkit.LogStatus.OK, ["done"])
    site.crontab.save()
    with pytest.raises(cronkit.ProfileError, match="logs"):
        site.import_crons('<crons><cron uid="foogsuid" logs="[]"/></crons>')
    site.import_crons('<crons><cron uid="foogsuid" name="foo"/></crons>')
    assert len(site.crontab.by_uid("foogsuid").logs) == 1
    site.import_crons('<crons><cron uid="foogsuid" remove="true"/>'
                      '<cron uid="foogsuid" name="again" periodicity="@daily"/></crons>')
    assert site.crontab.by_uid("foogsuid").logs == []
    assert reopened(db_url, clock).by_uid("foogsuid").logs == []


def test_export_of_environ_with_cdata_end_marker(kit, site):
    cron = cronkit.Cron(name="x", periodicity="@daily", uid="a", environ={"s": "]]>", "é": 1})
    site.crontab.add_cron(cron)
    site.crontab.save()
    copy = kit.site("copy")
    copy.import_crons(site.export_crons())
    assert copy.crontab.by_uid("a").environ == {"s": "]]>", "é": 1}


def test_export_json_is_the_crontab_dump(site):
    site.import_crons(CRONS)
    data = json.loads(export_json(site))
    assert cronkit.Crontab.load(data).similar(site.crontab)
    assert data == json.loads(json.dumps(site.crontab.dump()))


# -- sources -----------------------------------------------------------------------


def test_source_may_be_a_path_a_pathlike_text_or_bytes(kit, tmp_path):
    path = tmp_path / "crons.xml"
    path.write_text(CRONS, encoding="utf-8")
    sources = [str(path), path, CRONS, CRONS.encode("utf-8")]
    crontabs = [import_crons(kit.site(f"s{i}"), s) for i, s in enumerate(sources)]
    assert all(c.similar(crontabs[0]) for c in crontabs)


def test_encoding_declarations_are_honoured_in_bytes_and_ignored_in_text(kit):
    document = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n'
                '<crons><cron uid="a" name="café" periodicity="@daily"/></crons>')
    assert kit.site("a").import_crons(document.encode("latin-1")).by_uid("a").name == "café"
    assert kit.site("b").import_crons(document).by_uid("a").name == "café"


def test_the_example_crons_xml_imports(site):
    path = Path(__file__).parent.parent / "examples" / "crons.xml"
    crontab = site.import_crons(path)
    assert [c.uid for c in crontab.by(activated=True)] == ["heartbeat-hourly"]


@pytest.mark.parametrize("source, message", [
    ("no/such/crons.xml", "no such crons.xml file"),
    (Path("no/such/crons.xml"), "no such crons.xml file"),
    (42, "a path, XML text or bytes"),
])
def test_bad_sources(site, source, message):
    with pytest.raises(cronkit.ProfileError, match=message):
        site.import_crons(source)


def test_an_unreadable_file(site, tmp_path):
    with pytest.raises(cronkit.ProfileError, match="no such crons.xml file") as info:
        site.import_crons(tmp_path)          # a directory is not a file
    assert info.value.file == str(tmp_path)


# -- errors ------------------------------------------------------------------------

ERRORS = [
    ("<crons>\n<cron uid='a' name='x' periodicity='@daily'>\n</crons>", 3, "malformed XML"),
    ("<crons>\n<job uid='a'/>\n</crons>", 2, "unknown element <job>"),
    ("<crons>\n<cron uid='a' color='red'/>\n</crons>", 2, "unknown attribute(s) of <cron>: color"),
    ("<crons>\n<cron uid='a' name='x' periodicity='61 * * * *'/>\n</crons>", 2, "'61 * * * *'"),
    ("<crons>\n<cron uid='a' name='x' periodicity='@daily'>\n<environ>{nope</environ>\n"
     "</cron></crons>", 3, "invalid environ JSON '{nope'"),
    ("<crons>\n<cron uid='a' name='x' periodicity='@daily'>\n<environ>[1]</environ>\n"
     "</cron></crons>", 3, "expected a JSON object"),
    ("<crons>\n<cron uid='a' name='x' periodicity='@daily' activated='nonsense'/></crons>", 2,
     "'nonsense'"),
    ("<crons>\n<cron uid='a' remove='perhaps'/></crons>", 2, "'perhaps'"),
    ("<crons>\n<cron name='x' periodicity='@daily'/></crons>", 2, "needs a uid"),
    ("<crons>\n<cron uid='a' periodicity='@daily'/></crons>", 2, "needs name"),
    ("<crons>\n<cron uid='a' name='x'/></crons>", 2, "needs periodicity"),
    ("<crons>\n<cron uid='a' name='x' periodicity='@daily' logs_limit='99'/></crons>", 2,
     "logs_limit 99"),
    ("<crons>\n<cron uid='a' name='x' periodicity='@daily' timezone='Mars/Olympus'/></crons>",
     2, "Mars/Olympus"),
    ("<cronz/>", 1, "root element must be <crons>"),
    ("<crons version='2'/>", 1, "unknown attribute(s) of <crons>: version"),
    ("<crons activated='maybe'/>", 1, "'maybe'"),
    ("<crons>\nhello</crons>", 1, "unexpected text in <crons>"),
    ("<crons>\n<cron uid='a'>hello</cron></crons>", 2, "unexpected text in <cron>"),
    ("<crons>\n<cron uid='a'>\n<environ>{}</environ>\n<environ>{}</environ></cron></crons>", 4,
     "more than one <environ>"),
    ("<crons>\n<cron uid='a'>\n<environ x='1'>{}</environ></cron></crons>", 3,
     "only JSON text"),
    ("<crons>\n<cron uid='a'>\n<log/></cron></crons>", 3, "unknown element <log>"),
    ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
     ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n]>\n'
     "<crons>&lol2;</crons>", 2, "DOCTYPE is not allowed"),
    ("<crons>&nbsp;</crons>", 1, "undefined entity"),
    (b"", 1, "malformed XML"),
    (b'<?xml version="1.0" encoding="klingon"?><crons/>', 1, "malformed XML"),
    (b"<crons>\xff</crons>", 1, "malformed XML"),
]


@pytest.mark.parametrize("document, line, message", ERRORS)
def test_errors_name_the_file_the_line_and_the_problem(site, document, line, message):
    with pytest.raises(cronkit.ProfileError) as info:
        site.import_crons(document)
    assert (info.value.file, info.value.line) == ("<string>", line)
    assert message in info.value.message
    assert not site.crontab.dirty and list(site.crontab.crons) == []


def test_errors_in_a_file_name_the_path(site, tmp_path):
    path = tmp_path / "crons.xml"
    path.write_text("<crons>\n\n<cron uid='a' name='x' periodicity='* *'/>\n</crons>")
    with pytest.raises(cronkit.ProfileError) as info:
        site.import_crons(path)
    assert (info.value.file, info.value.line) == (str(path), 3)
    assert str(info.value).startswith(f"{path}, line 3: cron 'a': invalid periodicity '* *'")


def test_a_bad_fifth_entry_applies_nothing(site, db_url, clock):
    site.import_crons(CRONS)
    before = cronkit.Crontab.load(site.crontab.dump())
    jobs = [(j.id, j.status) for j in site.jobs.list()]
    document = """<crons>
      <cron uid="foogsuid" remove="true"/>
      <cron uid="foogsuid2" name="renamed" activated="true"/>
      <cron uid="n1" name="new" periodicity="@daily" activated="true"/>
      <cron uid="foogsuid3" periodicity="*/5 * * * *"/>
      <cron uid="n2" name="bad" periodicity="every tuesday"/>
    </crons>"""
    with pytest.raises(cronkit.ProfileError) as info:
        site.import_crons(document)
    assert info.value.line == 6 and "'every tuesday'" in info.value.message
    assert not site.crontab.dirty
    assert site.crontab.similar(before)
    assert reopened(db_url, clock).similar(before)
    assert [(j.id, j.status) for j in site.jobs.list()] == jobs


def test_a_read_only_crontab_refuses_the_import(site):
    site.import_crons(CRONS)
    site.crontab.read_only = True
    with pytest.raises(cronkit.ProfileError, match="read-only"):
        site.import_crons('<crons><cron uid="foogsuid" remove="true"/></crons>')
    assert "foogsuid" in site.crontab.crons and not site.crontab.dirty


def test_a_store_failure_leaves_the_live_crontab_as_saved(site, monkeypatch):
    site.import_crons(CRONS)
    before = cronkit.Crontab.load(site.crontab.dump())

    def broken(crontab, only=None):
        raise cronkit.StoreError("disk full")

    monkeypatch.setattr(site, "save_crontab", broken)
    with pytest.raises(cronkit.StoreError, match="disk full"):
        site.import_crons('<crons><cron uid="foogsuid" remove="true"/>'
                          '<cron uid="z" name="z" periodicity="@daily"/></crons>')
    assert not site.crontab.dirty and site.crontab.similar(before)


def test_an_environ_the_runner_refuses_is_a_profile_error_at_its_line(site, doc_clock):
    class Needs(cronkit.Runner):
        parameters = {"rows": cronkit.Param("int", required=True)}

        def run(self):
            pass
    site.register_runner(Needs, name="needs")
    with pytest.raises(cronkit.ProfileError, match="line 3: .*rows: required"):
        site.import_crons('<crons>\n<cron uid="ok" name="needs" periodicity="@daily">'
                          '<environ>{"rows": 1}</environ></cron>\n'
                          '<cron uid="bad" name="needs" periodicity="@daily"/>\n</crons>')
    assert list(site.crontab.crons) == []          # nothing of it applied
