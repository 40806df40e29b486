"""ZCML profiles: the directives, loading (twice), conflicts and errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from zope.configuration import xmlconfig

import cronkit
import examples.runners
from cronkit.profiles.cronsxml import export_zcml
from cronkit.runner import runner_factory

EXAMPLE = Path(__file__).parent.parent / "examples" / "site.zcml"
HEAD = ('<configure xmlns="http://namespaces.zope.org/zope"\n'
        '           xmlns:cron="http://namespaces.cronkit.org/cron">\n')


@pytest.fixture(autouse=True)
def clean_subscribers():
    """Subscribers a profile connects are disconnected after the test."""
    yield
    for event in (cronkit.FinishedCronJobEvent, cronkit.StartedCronJobEvent):
        cronkit.unsubscribe(event, examples.runners.noted)
    examples.runners.SEEN.clear()


@pytest.fixture
def write(tmp_path):
    """write(body, name="profile.zcml") -> the path of a ZCML file holding ``body``."""

    def write(body: str, name: str = "profile.zcml") -> Path:
        path = tmp_path / name
        path.write_text(HEAD + body + "</configure>\n", encoding="utf-8")
        return path

    return write


def crontab_of(body: str) -> str:
    return f'<cron:crontab site="plone">\n{body}</cron:crontab>\n'


def snapshot(site):
    return cronkit.Crontab.load(site.crontab.dump())


# -- the example profile ---------------------------------------------------------


def test_the_example_profile_registers_a_runner_a_subscriber_and_a_cron(kit, clock):
    kit.load_profile(EXAMPLE)
    site = kit.site("default")
    assert "heartbeat" in cronkit.available_jobs(site)
    cron = site.crontab.by_uid("heartbeat")
    assert (cron.name, cron.periodicity, cron.activated) == ("heartbeat", "* * * * *", True)
    [job] = site.jobs.list()
    assert job.status == cronkit.Status.PENDING and job.cron_uid == "heartbeat"
    clock.advance(minutes=1)
    [done] = kit.run_pending()
    assert done.status == cronkit.Status.SUCCESS
    assert site.crontab.by_uid("heartbeat").last.status == cronkit.LogStatus.OK
    assert examples.runners.SEEN == [("heartbeat", "OK")]


def test_loading_a_profile_twice_changes_nothing(kit, clock):
    kit.load_profile(EXAMPLE)
    site = kit.site("default")
    jobs, version = [j.id for j in site.jobs.list()], site.crontab.version
    kit.load_profile(str(EXAMPLE))
    assert [j.id for j in site.jobs.list()] == jobs
    assert list(site.crontab.crons) == ["heartbeat"] and site.crontab.version == version
    clock.advance(minutes=1)
    kit.run_pending()
    assert examples.runners.SEEN == [("heartbeat", "OK")]   # subscribed once


def test_cronkit_takes_a_profile(db_url, clock):
    kit = cronkit.Cronkit(store=db_url, clock=clock, profile=str(EXAMPLE))
    try:
        assert list(kit.site("default").crontab.crons) == ["heartbeat"]
    finally:
        kit.close()


def test_meta_zcml_need_not_be_included(kit, write):
    kit.load_profile(write('<cron:runner name="hb" factory="examples.runners.Heartbeat"/>\n'))
    assert runner_factory(kit.site("plone"), "hb") is examples.runners.Heartbeat


# -- directives --------------------------------------------------------------------


def test_a_runner_for_one_site_only(kit, write):
    kit.load_profile(write('<cron:runner name="hb" factory="examples.runners.Heartbeat"'
                           ' site="plone"/>\n'))
    assert runner_factory(kit.site("plone"), "hb") is examples.runners.Heartbeat
    assert runner_factory(kit.site("other"), "hb") is None


def test_include_reads_another_file_relative_to_the_including_one(kit, write):
    write('<cron:runner name="hb" factory="examples.runners.Heartbeat"/>\n', "runners.zcml")
    kit.load_profile(write('<include file="runners.zcml"/>\n'
                           + crontab_of('<cron:cron uid="a" name="hb" periodicity="@daily"/>\n')))
    assert "hb" in cronkit.available_jobs(kit.site("plone"))
    assert list(kit.site("plone").crontab.crons) == ["a"]


def test_every_cron_attribute(kit, site, write):
    kit.load_profile(write(crontab_of(
        '<cron:cron uid="a" name="hb" periodicity="0 9 * * 1-5" activated="false"\n'
        '           environ=\'{"k": "v"}\' timezone="Europe/Paris" logs_limit="9"\n'
        '           user="admin" misfire="all" misfire_grace="60"/>\n'
        '<cron:cron uid="b" name="hb" periodicity="0 30 9 * * MON-FRI" seconds_first="yes"\n'
        '           expanded="0 0 1 * *"/>\n')))
    assert site.crontab.by_uid("a").definition() == {
        "uid": "a", "name": "hb", "periodicity": "0 9 * * 1-5", "activated": False,
        "environ": {"k": "v"}, "timezone": "Europe/Paris", "logs_limit": 9, "user": "admin",
        "misfire": "all", "misfire_grace": 60.0, "seconds_first": False,
        "expanded": "0 9 * * 1-5"}
    # read seconds first; an expanded that is no drawing of the periodicity is drawn anew
    b = site.crontab.by_uid("b")
    assert (b.seconds_first, b.expanded) == (True, "30 9 * * MON-FRI 0")


def test_a_new_cron_is_activated_by_default(kit, site, write):
    kit.load_profile(write(crontab_of('<cron:cron uid="a" name="hb" periodicity="@daily"/>\n')))
    assert site.crontab.by_uid("a").activated is True
    assert site.jobs.is_job_pending(site.crontab.by_uid("a"))


def test_an_edit_changes_only_the_attributes_given(kit, site, write):
    kit.load_profile(write(crontab_of(
        '<cron:cron uid="a" name="hb" periodicity="@daily" environ=\'{"k": 1}\'/>\n')))
    site.crontab.by_uid("a").activated = False     # an operator switched it off
    site.crontab.save()
    kit.load_profile(write(crontab_of('<cron:cron uid="a" periodicity="@hourly"/>\n'), "b.zcml"))
    cron = site.crontab.by_uid("a")
    assert (cron.name, cron.periodicity, cron.activated, cron.environ) == (
        "hb", "@hourly", False, {"k": 1})


def test_a_cron_left_out_stays_and_remove_deletes(kit, site, write):
    kit.load_profile(write(crontab_of('<cron:cron uid="a" name="hb" periodicity="@daily"/>\n'
                                      '<cron:cron uid="b" name="hb" periodicity="@daily"/>\n')))
    kit.load_profile(write(crontab_of('<cron:cron uid="b" remove="true"/>\n'), "b.zcml"))
    assert list(site.crontab.crons) == ["a"]
    assert [j.cron_uid for j in site.jobs.list(status=cronkit.Status.PENDING)] == ["a"]


def test_the_crontab_switch(kit, site, write):
    kit.load_profile(write('<cron:crontab site="plone" activated="false">\n'
                           '<cron:cron uid="a" name="hb" periodicity="@daily"/>\n'
                           '</cron:crontab>\n'))
    assert site.crontab.activated is False
    assert site.jobs.list(status=cronkit.Status.PENDING) == []


def test_crontabs_of_several_sites_and_blocks(kit, write):
    kit.load_profile(write('<cron:crontab site="one">\n'
                           '<cron:cron uid="a" name="hb" periodicity="@daily"/>\n'
                           '</cron:crontab>\n<cron:crontab site="two">\n'
                           '<cron:cron uid="a" name="hb" periodicity="@hourly"/>\n'
                           '</cron:crontab>\n<cron:crontab site="one">\n'
                           '<cron:cron uid="b" name="hb" periodicity="@daily"/>\n'
                           '</cron:crontab>\n'))
    assert list(kit.site("one").crontab.crons) == ["a", "b"]
    assert kit.site("two").crontab.by_uid("a").periodicity == "@hourly"


def test_the_directives_work_in_plain_zope_configuration(kit):
    """Without load_profile (no kit), global runners still register."""
    import cronkit.profiles
    context = xmlconfig.file("meta.zcml", package=cronkit.profiles, execute=False)
    xmlconfig.string(HEAD + '<cron:runner name="hb" factory="examples.runners.Heartbeat"/>\n'
                     "</configure>", context=context)
    assert runner_factory(kit.site("plone"), "hb") is examples.runners.Heartbeat
    context = xmlconfig.file("meta.zcml", package=cronkit.profiles, execute=False)
    with pytest.raises(Exception, match="needs a kit"):
        xmlconfig.string(HEAD + crontab_of('<cron:cron uid="a" name="hb" periodicity="@daily"/>')
                         + "</configure>", context=context)


# -- conflicts -----------------------------------------------------------------------


CONFLICTS = [
    ('<cron:runner name="hb" factory="examples.runners.Heartbeat"/>\n'
     '<cron:runner name="hb" factory="examples.runners.Heartbeat"/>\n', 4, "runner 'hb' (global)"),
    ('<cron:runner name="hb" factory="examples.runners.Heartbeat" site="plone"/>\n'
     '<cron:runner name="hb" factory="examples.runners.Heartbeat" site="plone"/>\n', 4,
     "runner 'hb' for site 'plone'"),
    (crontab_of('<cron:cron uid="a" name="hb" periodicity="@daily"/>\n') +
     crontab_of('<cron:cron uid="a" name="other" periodicity="@daily"/>\n'), 7,
     "cron uid 'a' in site 'plone'"),
    ('<cron:crontab site="plone" activated="true"/>\n'
     '<cron:crontab site="plone" activated="false"/>\n', 4, "the switch of crontab 'plone'"),
]


@pytest.mark.parametrize("body, line, label", CONFLICTS)
def test_conflicts_are_reported_with_both_places(kit, write, body, line, label):
    path = write(body)
    with pytest.raises(cronkit.ProfileError) as info:
        kit.load_profile(path)
    error = info.value
    assert (error.file, error.line) == (str(path), line)
    assert error.message.startswith(f"conflicting declarations of {label}: ")
    assert f"{path}, line {line}" in error.message
    assert runner_factory(kit.site("plone"), "hb") is None
    assert list(kit.site("plone").crontab.crons) == []


def test_one_runner_name_in_two_sites_is_no_conflict(kit, write):
    kit.load_profile(write(
        '<cron:runner name="hb" factory="examples.runners.Heartbeat" site="one"/>\n'
        '<cron:runner name="hb" factory="examples.runners.Heartbeat" site="two"/>\n'))
    assert runner_factory(kit.site("two"), "hb") is examples.runners.Heartbeat


def test_an_including_file_overrides_what_it_includes(kit, write):
    write(crontab_of('<cron:cron uid="a" name="included" periodicity="@daily"/>\n'), "inc.zcml")
    kit.load_profile(write('<include file="inc.zcml"/>\n'
                           + crontab_of('<cron:cron uid="a" name="mine" periodicity="@daily"/>\n')))
    assert kit.site("plone").crontab.by_uid("a").name == "mine"


# -- errors --------------------------------------------------------------------------


ERRORS = [
    ('<cron:bogus name="x"/>\n', 4, "unknown directive {http://namespaces.cronkit.org/cron}bogus"),
    ('<cron:runner name="x" factory="examples.runners.Heartbeat" color="red"/>\n', 4,
     "Unrecognized parameters: color"),
    ('<cron:runner factory="examples.runners.Heartbeat"/>\n', 4, "Missing parameter: 'name'"),
    ('<cron:runner name="x" factory="examples.runners.Nope"/>\n', 4, "has no global Nope"),
    ('<cron:runner name="x" factory="nosuchmodule.Runner"/>\n', 4, "nosuchmodule"),
    ('<cron:runner name=" " factory="examples.runners.Heartbeat"/>\n', 4, "must not be empty"),
    ('<cron:runner name="x" factory="examples.runners.SEEN"/>\n', 4, "is not callable"),
    ('<cron:subscriber event="examples.runners.Heartbeat" handler="examples.runners.noted"/>\n',
     4, "is not a cronkit event class"),
    ('<cron:subscriber event="cronkit.FinishedCronJobEvent" handler="examples.runners.SEEN"/>\n',
     4, "is not callable"),
    (crontab_of('<cron:cron uid="a" name="x" periodicity="61 * * * *"/>\n'), 5,
     "cron 'a': invalid periodicity '61 * * * *'"),
    (crontab_of('<cron:cron uid="a" name="x" periodicity="@daily" activated="nonsense"/>\n'), 5,
     "invalid activated 'nonsense'"),
    (crontab_of('<cron:cron uid="a" remove="perhaps"/>\n'), 5, "invalid remove 'perhaps'"),
    (crontab_of('<cron:cron uid="a" name="x" periodicity="@daily" environ="{nope"/>\n'), 5,
     "invalid environ JSON '{nope'"),
    (crontab_of('<cron:cron uid="a" name="x" periodicity="@daily" environ="[1]"/>\n'), 5,
     "expected a JSON object"),
    (crontab_of('<cron:cron uid="a" name="x" periodicity="@daily" logs_limit="0"/>\n'), 5,
     "logs_limit 0"),
    (crontab_of('<cron:cron uid="a" name="x"/>\n'), 5, "new cron 'a' needs periodicity"),
    (crontab_of('<cron:job uid="a"/>\n'), 5, "Invalid directive job"),
    ('<cron:crontab site="plone" activated="sometimes"/>\n', 4, "invalid activated 'sometimes'"),
    ('<cron:runner name="x"\n', 5, "malformed XML"),
    ('<include file="nosuch.zcml"/>\n', 4, "No such file or directory"),
]


@pytest.mark.parametrize("body, line, message", ERRORS)
def test_errors_name_the_file_the_line_and_the_problem(kit, write, body, line, message):
    path = write('<cron:runner name="first" factory="examples.runners.Heartbeat"/>\n' + body)
    with pytest.raises(cronkit.ProfileError) as info:
        kit.load_profile(path)
    error = info.value
    assert (error.file, error.line) == (str(path), line)
    assert message in error.message
    assert runner_factory(kit.site("plone"), "first") is None     # nothing applied
    assert not kit.site("plone").crontab.dirty


def test_an_error_in_an_included_file_names_that_file(kit, write):
    included = write('\n<cron:bogus/>\n', "inc.zcml")
    with pytest.raises(cronkit.ProfileError) as info:
        kit.load_profile(write('<include file="inc.zcml"/>\n'))
    assert (info.value.file, info.value.line) == (str(included), 4)


def test_a_missing_profile(kit, tmp_path):
    with pytest.raises(cronkit.ProfileError, match="no such profile"):
        kit.load_profile(tmp_path / "nope.zcml")


def test_a_bad_fifth_cron_applies_nothing(kit, site, write, db_url, clock):
    kit.load_profile(write(crontab_of('<cron:cron uid="keep" name="hb" periodicity="@daily"/>\n')))
    before, jobs = snapshot(site), [j.id for j in site.jobs.list()]
    path = write('<cron:runner name="hb" factory="examples.runners.Heartbeat"/>\n'
                 '<cron:subscriber event="cronkit.FinishedCronJobEvent"'
                 ' handler="examples.runners.noted"/>\n'
                 + crontab_of('<cron:cron uid="keep" remove="true"/>\n'
                              '<cron:cron uid="b" name="hb" periodicity="@daily"/>\n'
                              '<cron:cron uid="c" name="hb" periodicity="@daily"/>\n'
                              '<cron:cron uid="d" name="hb" periodicity="@daily"/>\n'
                              '<cron:cron uid="e" name="hb"/>\n'), "bad.zcml")
    with pytest.raises(cronkit.ProfileError) as info:
        kit.load_profile(path)
    assert info.value.line == 10 and "needs periodicity" in info.value.message
    assert runner_factory(site, "hb") is None
    assert not cronkit.FinishedCronJobEvent.signal.receivers
    assert not site.crontab.dirty and site.crontab.similar(before)
    assert [j.id for j in site.jobs.list()] == jobs
    other = cronkit.Cronkit(store=db_url, clock=clock)
    try:
        assert other.site("plone").crontab.similar(before)
    finally:
        other.close()


def test_an_error_in_a_second_site_leaves_the_first_alone(kit, write):
    path = write('<cron:crontab site="one">\n<cron:cron uid="a" name="hb" periodicity="@daily"/>\n'
                 '</cron:crontab>\n<cron:crontab site="two">\n'
                 '<cron:cron uid="a" name="hb"/>\n</cron:crontab>\n')
    with pytest.raises(cronkit.ProfileError, match="needs periodicity"):
        kit.load_profile(path)
    assert list(kit.site("one").crontab.crons) == []


def test_a_read_only_crontab(kit, site, write):
    site.crontab.read_only = True
    with pytest.raises(cronkit.ProfileError, match="read-only"):
        kit.load_profile(write(crontab_of('<cron:cron uid="a" name="x" periodicity="@daily"/>\n')))
    assert list(site.crontab.crons) == []


def test_a_store_failure_is_raised_as_it_is(kit, site, write, monkeypatch):
    def broken(crontab, only=None):
        raise cronkit.StoreError("disk full")

    monkeypatch.setattr(site, "save_crontab", broken)
    with pytest.raises(cronkit.StoreError, match="disk full"):
        kit.load_profile(write(crontab_of('<cron:cron uid="a" name="x" periodicity="@daily"/>\n')))
    assert not site.crontab.dirty and list(site.crontab.crons) == []


# -- export ----------------------------------------------------------------------------


def test_export_zcml_loads_back_into_another_kit(kit, site, tmp_path, clock):
    site.register_runner(examples.runners.Heartbeat, "hb")
    site.register_runner(type("Local", (cronkit.Runner,), {"__qualname__": "f.<locals>.Local"}),
                         "local")
    site.import_crons("""<crons activated="false">
      <cron uid="a" name="hb" activated="true" periodicity="0 9 * * *" timezone="Asia/Tokyo"
            logs_limit="3" user="o'brien" misfire="skip" misfire_grace="2.5">
        <environ><![CDATA[{"quote": "it's \\"here\\""}]]></environ></cron>
      <cron uid="b" name="hb" periodicity="@daily"/>
    </crons>""")
    text = export_zcml(site)
    assert 'factory="examples.runners.Heartbeat"' in text and "local" not in text
    path = tmp_path / "export.zcml"
    path.write_text(text, encoding="utf-8")
    other = cronkit.Cronkit(store="memory://", clock=clock)
    other.load_profile(path)
    assert other.site("plone").crontab.similar(site.crontab)
    assert runner_factory(other.site("plone"), "hb") is examples.runners.Heartbeat


def test_an_environ_the_runner_refuses_is_a_profile_error(kit, site, write):
    class Needs(cronkit.Runner):
        parameters = {"rows": cronkit.Param("int", required=True)}

        def run(self):
            pass
    site.register_runner(Needs, name="needs")
    with pytest.raises(cronkit.ProfileError, match="rows: required"):
        kit.load_profile(write(crontab_of('<cron:cron uid="a" name="needs" '
                                          'periodicity="@daily"/>\n')))
    assert list(site.crontab.crons) == []
