"""The model: Crontab, Cron and Log validation, dump/load, lookups and logs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

import cronkit
from cronkit import Cron, Crontab, InvalidCron, InvalidCrontab, InvalidLog, Log, LogStatus

UTC = UTC
T0 = datetime(2008, 1, 1, 1, 3, tzinfo=UTC)


def make(**kw):
    kw.setdefault("name", "mycronjob")
    kw.setdefault("periodicity", "*/1 * * * *")
    return Cron(**kw)


# -- validation at construction ------------------------------------------------

BAD = [
    ("periodicity", "61 * * * *"),
    ("periodicity", "not a cron"),
    ("periodicity", ""),
    ("logs_limit", 0),
    ("logs_limit", 26),
    ("logs_limit", True),
    ("environ", "[1, 2]"),
    ("environ", [1, 2]),
    ("environ", "{not json"),
    ("environ", {"when": datetime(2008, 1, 1)}),
    ("timezone", "Mars/Olympus_Mons"),
    ("timezone", 12),
    ("misfire", "sometimes"),
    ("misfire_grace", -1),
    ("misfire_grace", "soon"),
    ("activated", "nonsense"),
    ("activated", 2),
    ("name", ""),
    ("name", None),
    ("user", 42),
    ("uid", ""),
]


@pytest.mark.parametrize("field,value", BAD)
def test_invalid_value_refused_at_construction_naming_it(field, value):
    with pytest.raises(InvalidCron) as info:
        make(**{field: value})
    assert field in str(info.value)
    shown = value if isinstance(value, str) else repr(value)
    assert shown in str(info.value)


@pytest.mark.parametrize("field,value", BAD)
def test_invalid_value_refused_on_attribute_change_and_old_value_kept(field, value):
    cron = make(uid="u1", environ={"a": 1}, timezone="Europe/Paris", user="bob")
    before = getattr(cron, field)
    with pytest.raises(InvalidCron) as info:
        setattr(cron, field, value)
    assert field in str(info.value)
    assert getattr(cron, field) == before


def test_invalid_cron_is_a_cronkit_error_and_a_value_error():
    with pytest.raises(cronkit.CronkitError):
        make(logs_limit=26)
    with pytest.raises(ValueError):
        make(logs_limit=0)


def test_invalid_cron_carries_field_and_value():
    with pytest.raises(InvalidCron) as info:
        make(timezone="Nowhere/Else")
    assert (info.value.field, info.value.value) == ("timezone", "Nowhere/Else")


def test_logs_limit_bounds_are_accepted_not_clamped():
    assert make(logs_limit=1).logs_limit == 1
    assert make(logs_limit=25).logs_limit == 25
    assert make(logs_limit="7").logs_limit == 7


def test_defaults():
    cron = make()
    assert cron.activated is True
    assert cron.environ == {}
    assert cron.logs_limit == 5
    assert cron.misfire == "once"
    assert cron.misfire_grace is None
    assert cron.timezone is None
    assert cron.user is None
    assert cron.logs == []
    assert cron.crontab is None
    assert len(cron.uid) == 32


def test_environ_given_as_json_text_is_read():
    assert make(environ='{"foo": "bar"}').environ == {"foo": "bar"}


def test_activated_reads_the_usual_words_strictly():
    assert make(activated="false").activated is False
    assert make(activated="On").activated is True
    assert make(activated=0).activated is False


def test_accepted_periodicities():
    for expr in ("*/5 * * * *", "0 0 * * * 30", "@hourly", "@daily", " 0 12 * * 1-5 "):
        assert make(periodicity=expr).periodicity == expr.strip()


def test_misfire_grace_accepts_seconds():
    assert make(misfire_grace=30).misfire_grace == 30
    assert make(misfire_grace="2.5").misfire_grace == 2.5
    assert make(misfire_grace="").misfire_grace is None


def test_integer_uid_becomes_text():
    assert make(uid=12).uid == "12"


def test_uid_of_a_cron_in_a_crontab_cannot_change():
    crontab = Crontab([make(uid="a")])
    with pytest.raises(InvalidCron, match="'a'"):
        crontab.crons["a"].uid = "b"


def test_invalid_log_status_refused():
    with pytest.raises(InvalidLog, match="'MAYBE'"):
        Log(T0, "MAYBE")


def test_invalid_log_date_refused():
    with pytest.raises(InvalidLog, match="'yesterday'"):
        Log("yesterday")
    with pytest.raises(InvalidLog, match="42"):
        Log(42)


def test_invalid_log_messages_refused():
    with pytest.raises(InvalidLog, match="42"):
        Log(T0, "OK", 42)


def test_log_load_refuses_bad_data():
    with pytest.raises(InvalidLog, match="date"):
        Log.load({"status": "OK"})
    with pytest.raises(InvalidLog, match="colour"):
        Log.load({"date": T0.isoformat(), "colour": "red"})
    with pytest.raises(InvalidLog, match="JSON"):
        Log.load("{oops")
    with pytest.raises(InvalidLog, match="JSON object"):
        Log.load("[1]")


def test_log_reads_collective_cron_dates_as_utc():
    log = Log("2008-01-01 02:04:00", "WARN", "one message")
    assert log.date == datetime(2008, 1, 1, 2, 4, tzinfo=UTC)
    assert log.messages == ["one message"]
    assert log.status is LogStatus.WARN
    assert repr(log) == "log: 2008-01-01 02:04:00/WARN+"


def test_log_converts_aware_dates_to_utc():
    log = Log(datetime(2008, 1, 1, 3, 4, tzinfo=ZoneInfo("Europe/Paris")))
    assert log.date == datetime(2008, 1, 1, 2, 4, tzinfo=UTC)


def test_log_without_date_is_dated_now_aware():
    assert Log().date.tzinfo is not None


def test_log_is_unhashable_value():
    assert Log(T0) == Log(T0.isoformat())
    assert Log(T0) != "log"
    with pytest.raises(TypeError):
        hash(Log(T0))


def test_cron_load_refuses_bad_data():
    with pytest.raises(InvalidCron, match="colour"):
        Cron.load({"name": "x", "periodicity": "* * * * *", "colour": "red"})
    with pytest.raises(InvalidCron, match="JSON object"):
        Cron.load("[]")
    with pytest.raises(InvalidCron, match="JSON"):
        Cron.load("{oops")
    with pytest.raises(InvalidCron, match="invalid log"):
        Cron.load({"name": "x", "periodicity": "* * * * *", "logs": [{"status": "OK"}]})


def test_crontab_validation():
    with pytest.raises(InvalidCrontab, match="nonsense"):
        Crontab(activated="nonsense")
    crontab = Crontab()
    with pytest.raises(InvalidCrontab, match="nonsense"):
        crontab.activated = "nonsense"
    with pytest.raises(InvalidCrontab, match="'cron'"):
        crontab.add_cron("cron")
    with pytest.raises(InvalidCrontab, match="'x'"):
        crontab.crons["x"] = make(uid="y")
    with pytest.raises(InvalidCrontab, match="not a cron"):
        crontab.crons["x"] = "not a cron"
    with pytest.raises(InvalidCrontab, match="colour"):
        crontab.by(colour="red")


def test_crontab_load_refuses_bad_data():
    with pytest.raises(InvalidCrontab, match="colour"):
        Crontab.load({"colour": "red"})
    with pytest.raises(InvalidCrontab, match="list"):
        Crontab.load({"crons": "abc"})
    with pytest.raises(InvalidCrontab, match="JSON object"):
        Crontab.load("3")
    with pytest.raises(InvalidCrontab, match="JSON"):
        Crontab.load("{oops")
    with pytest.raises(InvalidCrontab, match="logs_limit"):
        Crontab.load({"crons": [{"name": "x", "periodicity": "* * * * *", "logs_limit": 26}]})


# -- dump / load ---------------------------------------------------------------


def test_log_round_trip_through_dict_json_and_instance():
    log = Log(T0, LogStatus.FAILURE, ["boom"])
    data = log.dump()
    assert json.loads(json.dumps(data)) == data
    assert Log.load(data) == log
    assert Log.load(json.dumps(data)) == log
    assert Log.load(json.dumps(data).encode()) == log
    assert Log.load(log) is log


def test_cron_round_trip_through_dict_json_and_instance():
    cron = make(environ={"foo": "bar"}, timezone="Europe/Paris", logs_limit=7, user="bob",
                misfire="all", misfire_grace=30, activated=False,
                logs=[Log(T0 + timedelta(minutes=1), "WARN", ["w"]), Log(T0, "OK")])
    data = cron.dump()
    assert json.loads(json.dumps(data)) == data
    for source in (data, json.dumps(data), cron):
        loaded = Cron.load(source)
        assert loaded == cron
        assert loaded.similar(cron)
        assert loaded.logs == cron.logs
    assert Cron.load(cron) is cron


def test_crontab_round_trip_through_dict_json_and_instance():
    crontab = Crontab([make(uid="a", environ={"x": 1}), make(uid="b", activated=False,
                                                        logs=[Log(T0, "NOTRUN", ["m"])])],
                      activated=False)
    data = crontab.dump()
    assert json.loads(json.dumps(data)) == data
    for source in (data, json.dumps(data)):
        loaded = Crontab.load(source)
        assert loaded.similar(crontab)
        assert list(loaded.crons) == ["a", "b"]
        assert loaded.crons["b"].logs == crontab.crons["b"].logs
        assert loaded.activated is False
    assert Crontab.load(crontab) is crontab


def test_crontab_loads_a_bare_list_of_crons():
    loaded = Crontab.load([make(uid="a").dump()])
    assert list(loaded.crons) == ["a"]


def test_crontab_load_keeps_read_only():
    assert Crontab.load({"crons": [], "read_only": True}).read_only is True


def test_dump_copies_environ():
    cron = make(environ={"nested": {"a": 1}})
    cron.dump()["environ"]["nested"]["a"] = 2
    assert cron.environ == {"nested": {"a": 1}}


# -- lookups and similarity ----------------------------------------------------


def test_by_matches_every_criterion_and_none_means_any():
    a, b, c = make(uid="a"), make(uid="b", activated=False), make(uid="c", name="other")
    crontab = Crontab([a, b, c])
    assert crontab.by(name="mycronjob") == [a, b]
    assert crontab.by(name="mycronjob", activated=True) == [a]
    assert crontab.by(name=None, activated=False) == [b]
    assert crontab.by() == [a, b, c]


def test_by_name():
    a, c = make(uid="a"), make(uid="c", name="other")
    crontab = Crontab([a, c])
    assert crontab.by_name("other") == [c]
    assert crontab.by_name("missing") == []


def test_by_uid_and_no_such_cron_is_a_lookup_error():
    a = make(uid="a")
    crontab = Crontab([a])
    assert crontab.by_uid("a") is a
    with pytest.raises(cronkit.NoSuchCron, match="'zz'"):
        crontab.by_uid("zz")
    with pytest.raises(LookupError):
        crontab.by_uid("zz")


def test_similar_ignores_logs_and_crontab_but_not_definition():
    cron = make(environ={"foo": "bar"})
    copy = Cron.load(cron.dump())
    Crontab([copy])
    copy.log("OK", date=T0)
    assert copy.similar(cron)
    assert copy != cron
    copy.environ = {"foo": "baz"}
    assert not copy.similar(cron)
    assert not cron.similar("cron")
    assert cron.__eq__("cron") is NotImplemented


def test_crontab_similar():
    one = Crontab([make(uid="a")])
    two = Crontab.load(one.dump())
    assert one.similar(two)
    two.activated = False
    assert not one.similar(two)
    assert not one.similar(Crontab())


def test_add_cron_moves_a_cron_between_crontabs_and_renames_a_clashing_uid():
    first, second = Crontab([make(uid="a")]), Crontab([make(uid="a")])
    moved = first.crons["a"]
    second.add_cron(moved)
    assert "a" not in first.crons
    assert moved.crontab is second and moved.uid != "a"
    assert second.add_cron(moved) is moved
    assert len(second.crons) == 2


def test_cron_constructed_with_a_crontab_joins_it():
    crontab = Crontab()
    cron = make(crontab=crontab)
    assert crontab.crons[cron.uid] is cron
    assert cron.crontab is crontab


def test_setting_crontab_attribute_moves_or_detaches():
    crontab = Crontab()
    cron = make()
    cron.crontab = crontab
    assert cron.uid in crontab.crons
    cron.crontab = None
    assert cron.crontab is None and not crontab.crons


def test_crons_mapping_supports_del_pop_and_clear():
    crontab = Crontab([make(uid="a"), make(uid="b"), make(uid="c")])
    del crontab.crons["a"]
    assert crontab.crons.pop("b").uid == "b"
    assert crontab.crons.pop("b", None) is None
    with pytest.raises(KeyError):
        crontab.crons.pop("b")
    crontab.crons.clear()
    assert not crontab.crons
    assert crontab.dirty


def test_crons_mapping_setitem_adds():
    crontab = Crontab()
    cron = make(uid="a")
    crontab.crons["a"] = cron
    assert cron.crontab is crontab


def test_saving_a_crontab_of_no_site_is_an_error():
    crontab = Crontab([make(uid="a")])
    with pytest.raises(cronkit.CronkitError, match="no site"):
        crontab.save()
    with pytest.raises(cronkit.CronkitError, match="no crontab"):
        make().save()


# -- time ----------------------------------------------------------------------


def test_next_after_is_strictly_after_and_aware():
    cron = make(periodicity="*/10 * * * *")
    nxt = cron.next_after(datetime(2008, 1, 1, 1, 10, tzinfo=UTC))
    assert nxt == datetime(2008, 1, 1, 1, 20, tzinfo=UTC)
    assert nxt.tzinfo is not None


def test_next_after_is_in_the_crons_timezone():
    cron = make(periodicity="0 9 * * *", timezone="Europe/Paris")
    nxt = cron.next_after(T0)
    assert nxt.utcoffset() == timedelta(hours=1)
    assert (nxt.hour, nxt.minute) == (9, 0)
    assert nxt == datetime(2008, 1, 1, 8, 0, tzinfo=UTC)


def test_next_after_refuses_a_naive_datetime():
    with pytest.raises(InvalidCron, match="aware"):
        make().next_after(datetime(2008, 1, 1))


def test_next_is_timezone_aware_and_in_the_future():
    cron = make(periodicity="*/1 * * * *", timezone="America/New_York")
    before = datetime.now(UTC)
    nxt = cron.next
    assert nxt.tzinfo is not None and nxt > before
    assert nxt.utcoffset() in (timedelta(hours=-5), timedelta(hours=-4))


def test_next_is_none_when_cron_or_crontab_is_off():
    cron = make(activated=False)
    assert cron.next is None
    cron.activated = True
    crontab = Crontab([cron], activated=False)
    assert cron.next is None
    crontab.activated = True
    assert cron.next is not None


def test_next_reads_the_kits_clock(site):
    crontab = site.crontab
    cron = crontab.add_cron(make())
    assert cron.next == datetime(2008, 1, 1, 1, 4, tzinfo=UTC)


def test_cron_without_timezone_uses_its_sites(kit):
    site = kit.site("tokyo", timezone="Asia/Tokyo")
    cron = site.crontab.add_cron(make(periodicity="0 9 * * *"))
    assert cron.next == datetime(2008, 1, 2, 0, 0, tzinfo=UTC)
    assert cron.next.utcoffset() == timedelta(hours=9)


# -- logs ----------------------------------------------------------------------


def test_last_is_the_most_recent_log():
    cron = make()
    assert cron.last is None
    cron.log("OK", date=T0)
    cron.log("WARN", ["late"], date=T0 + timedelta(minutes=1))
    assert cron.last.status == LogStatus.WARN
    assert cron.last.messages == ["late"]


def test_logs_are_capped_at_logs_limit_most_recent_first():
    cron = make(logs_limit=3)
    for i in range(5):
        cron.log("OK", [str(i)], date=T0 + timedelta(minutes=i))
    assert [entry.messages for entry in cron.logs] == [["4"], ["3"], ["2"]]


def test_logs_given_at_construction_are_capped():
    logs = [Log(T0 + timedelta(minutes=i)) for i in range(10, 0, -1)]
    cron = make(logs=logs, logs_limit=2)
    assert cron.logs == logs[:2]


def test_lowering_logs_limit_drops_the_oldest():
    cron = make(logs_limit=5)
    for i in range(5):
        cron.log("OK", [str(i)], date=T0 + timedelta(minutes=i))
    cron.logs_limit = 2
    assert [entry.messages for entry in cron.logs] == [["4"], ["3"]]


def test_log_returns_the_log_and_refuses_a_bad_status():
    cron = make()
    assert cron.log("NOTRUN", "why", date=T0) == Log(T0, "NOTRUN", ["why"])
    with pytest.raises(InvalidLog):
        cron.log("MAYBE")


def test_assigning_logs_wraps_them():
    cron = make()
    cron.logs = [Log(T0).dump()]
    assert cron.logs == [Log(T0)]


def test_changing_a_cron_in_a_crontab_makes_it_dirty():
    crontab = Crontab([make(uid="a")])
    crontab.mark_saved(1)
    assert not crontab.dirty
    crontab.crons["a"].log("OK", date=T0)
    assert crontab.dirty
    crontab.mark_saved(2)
    crontab.crons["a"].environ = {"x": 1}
    assert crontab.dirty
    crontab.mark_saved(3)
    crontab.activated = False
    assert crontab.dirty


# -- repr ------------------------------------------------------------------------


def test_reprs_read_like_collective_cron(site):
    cron = site.crontab.add_cron(make(uid="u", environ={"foo": "bar"}))
    assert repr(cron) == "cron: mycronjob/u [ON:2008-01-01 01:04:00] {'foo': 'bar'}"
    cron.log("OK", date=T0)
    cron.activated = False
    assert repr(cron) == "cron: mycronjob/u [OFF] (1 logs) {'foo': 'bar'}"
    assert repr(site.crontab) == "<Crontab ON 1 crons (unsaved)>"


# -- persistence API (what the storage side uses) -----------------------------------


def row(uid, position, logs=(), **kw):
    """A store row, as ``load_crontab`` returns it."""
    data = make(uid=uid, **kw).definition()
    return data | {"activated": int(data["activated"]), "position": position,
                   "logs": [{"id": i, "date": T0 + timedelta(minutes=i), "status": "OK",
                             "messages": []} for i in logs]}


def store_data(*rows, version=7, activated=True):
    return {"version": version, "activated": activated, "crons": list(rows)}


def test_from_row_trusts_the_store_row():
    cron = Cron.from_row(row("a", 3.0, logs=[2, 1]))
    assert (cron.uid, cron.activated, cron.position, cron.crontab) == ("a", True, 3.0, None)
    assert [entry.id for entry in cron.logs] == [2, 1]


def test_a_new_cron_has_no_position():
    assert make().position is None


def test_from_store_is_clean_at_the_store_version(site):
    crontab = Crontab.from_store(store_data(row("a", 1.0), row("b", 2.0), activated=False), site)
    assert (list(crontab.crons), crontab.activated, crontab.version) == (["a", "b"], False, 7)
    assert crontab.site is site and crontab.by_uid("a").crontab is crontab
    assert not crontab.dirty and crontab.changes().upserts == []


def test_version_is_read_only():
    with pytest.raises(AttributeError):
        Crontab().version = 3


def test_refresh_from_keeps_cron_objects_and_detaches_the_gone():
    crontab = Crontab.from_store(store_data(row("a", 1.0), row("b", 2.0)))
    a, b = crontab.crons["a"], crontab.crons["b"]
    a.environ = {"unsaved": 1}
    crontab.refresh_from(store_data(row("a", 1.0, logs=[4], user="bob"), version=9))
    assert crontab.crons["a"] is a and a.user == "bob" and a.environ == {}
    assert [entry.id for entry in a.logs] == [4]
    assert b.crontab is None and list(crontab.crons) == ["a"]
    assert not crontab.dirty and crontab.version == 9


def test_changes_name_what_a_save_writes():
    crontab = Crontab.from_store(store_data(row("a", 1.0, logs=[1, 2]), row("b", 5.0, logs=[3])))
    a = crontab.crons["a"]
    del a.logs[0]                                     # the log of id 1
    new = a.log("WARN", ["x"], date=T0)
    del crontab.crons["b"]
    crontab.add_cron(make(uid="c"))
    crontab.add_cron(make(uid="d"))
    crontab.activated = False
    changes = crontab.changes()
    assert [(r["uid"], r["position"]) for r in changes.upserts] == [("a", 1.0), ("c", 2.0), ("d", 3.0)]
    assert changes.deletes == ["b"] and changes.deleted_logs == [1]
    assert changes.new_logs == [("a", new.to_dict() | {"date": T0})] and changes.logs == [new]
    assert changes.activated is False and changes.only is None


def test_changes_of_one_cron():
    crontab = Crontab.from_store(store_data(row("a", 1.0), row("b", 2.0)))
    crontab.crons["a"].user = "x"
    del crontab.crons["b"]
    changes = crontab.changes(only="a")
    assert [r["uid"] for r in changes.upserts] == ["a"]
    assert (changes.deletes, changes.activated, changes.only) == ([], None, "a")


def test_saved_gives_ids_and_positions_and_cleans():
    crontab = Crontab.from_store(store_data(version=7))
    cron = crontab.add_cron(make(uid="a"))
    entry = cron.log("OK", date=T0)
    assert crontab.saved(crontab.changes(), 8, [42]) is True
    assert (entry.id, cron.position, crontab.version, crontab.dirty) == (42, 1.0, 8, False)
    del cron.logs[0]
    assert crontab.changes().deleted_logs == [42]


def test_saved_after_others_wrote_keeps_the_old_version():
    crontab = Crontab.from_store(store_data(version=7))
    crontab.add_cron(make(uid="a"))
    assert crontab.saved(crontab.changes(), 10, []) is False
    assert crontab.version == 7 and not crontab.dirty


def test_saving_one_cron_leaves_the_others_changes():
    crontab = Crontab.from_store(store_data(row("a", 1.0), row("b", 2.0)))
    crontab.crons["a"].user = "x"
    crontab.crons["b"].user = "y"
    crontab.saved(crontab.changes(only="a"), 8, [])
    assert crontab.dirty and [r["uid"] for r in crontab.changes().upserts] == ["b"]


def test_a_uid_deleted_and_added_again_is_a_new_cron():
    crontab = Crontab.from_store(store_data(row("a", 1.0, logs=[1, 2]), row("b", 2.0)))
    del crontab.crons["a"]
    crontab.add_cron(make(uid="a", user="new"))
    changes = crontab.changes()
    assert changes.deletes == [] and changes.deleted_logs == [1, 2]
    assert [(r["uid"], r["position"]) for r in changes.upserts] == [("a", 3.0)]


def test_log_added_shows_a_stored_log_when_clean_and_in_step():
    crontab = Crontab.from_store(store_data(row("a", 1.0, logs=[1], logs_limit=1), version=7))
    entry = Log(T0 + timedelta(hours=1), "OK", id=5)
    assert crontab.log_added("a", entry, 9) is False          # missed version 8
    assert crontab.log_added("nope", entry, 8) is False
    assert crontab.log_added("a", entry, 8) is True
    assert crontab.crons["a"].logs == [entry] and crontab.version == 8 and not crontab.dirty
    assert crontab.changes(only="a").deleted_logs == []       # id 1 was trimmed by the store


def test_log_added_leaves_a_dirty_crontab_alone():
    crontab = Crontab.from_store(store_data(row("a", 1.0), version=7))
    crontab.crons["a"].user = "x"
    assert crontab.log_added("a", Log(T0, id=5), 8) is False
    assert crontab.crons["a"].logs == [] and crontab.version == 7
