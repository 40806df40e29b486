"""Properties of the profile formats (hypothesis): crontab -> crons.xml -> crontab and
crontab -> JSON -> crontab give a similar crontab; the importer, fed anything, applies
a valid document or raises ProfileError, and never leaves the crontab half-changed."""

from __future__ import annotations

import itertools
import json
from xml.sax.saxutils import quoteattr

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import cronkit
from cronkit.profiles.cronsxml import export_json

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
_names = itertools.count()

# Text an XML attribute can carry: no control characters, surrogates or non-characters.
words = st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), min_size=1,
                max_size=20).map(str.strip).filter(bool)
uids = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=8)
periodicities = st.sampled_from(["* * * * *", "*/5 * * * *", "0 3 * * *", "30 2 1 * *",
                                 "0 9 * * 1-5", "@hourly", "@daily", "15 10 * * * 30"])


@st.composite
def crons(draw, uid):
    return cronkit.Cron(
        uid=uid, name=draw(words), periodicity=draw(periodicities),
        activated=draw(st.booleans()),
        environ=draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4)),
        timezone=draw(st.sampled_from([None, "UTC", "Europe/Paris", "America/New_York"])),
        logs_limit=draw(st.integers(1, 25)), user=draw(st.none() | words),
        misfire=draw(st.sampled_from(["once", "all", "skip"])),
        misfire_grace=draw(st.none() | st.integers(0, 10_000)
                           | st.floats(0, 1e6, allow_nan=False)))


@st.composite
def crontabs(draw):
    uid_list = draw(st.lists(uids, unique=True, max_size=5))
    return cronkit.Crontab([draw(crons(uid)) for uid in uid_list], draw(st.booleans()))


def fresh_site(kit, crontab=None):
    site = kit.site(f"s{next(_names)}")
    if crontab is not None:
        for cron in list(crontab.crons.values()):
            site.crontab.add_cron(cronkit.Cron.load(cron.dump()))
        site.crontab.activated = crontab.activated
        site.crontab.save()
    return site


@SETTINGS
@given(crontab=crontabs())
def test_crons_xml_round_trip(kit, crontab):
    source = fresh_site(kit, crontab)
    target = fresh_site(kit)
    target.import_crons(source.export_crons())
    assert target.crontab.similar(source.crontab)
    assert target.crontab.similar(crontab)
    # and again: importing what is already there changes nothing
    version = target.crontab.version
    target.import_crons(source.export_crons().encode("utf-8"))
    assert target.crontab.version == version


@SETTINGS
@given(crontab=crontabs())
def test_json_round_trip(kit, crontab):
    assert cronkit.Crontab.load(json.dumps(crontab.dump())).similar(crontab)
    site = fresh_site(kit, crontab)
    assert cronkit.Crontab.load(export_json(site)).similar(crontab)


def check_import(site, data):
    before = cronkit.Crontab.load(site.crontab.dump())
    try:
        site.import_crons(data)
        event("applied")
    except cronkit.ProfileError as exc:
        event("refused")
        assert exc.file == "<string>" and (exc.line is None or exc.line >= 1)
        assert not site.crontab.dirty and site.crontab.similar(before)
    assert not site.crontab.dirty


@SETTINGS
@given(data=st.binary(max_size=300))
def test_the_importer_on_arbitrary_bytes(kit, data):
    check_import(fresh_site(kit), data)


# Documents that are nearly right: known and unknown elements and attributes with
# arbitrary values, so the importer's checks (not only the XML parser's) are reached.
attribute_names = st.sampled_from(["uid", "name", "periodicity", "activated", "remove",
                                   "timezone", "logs_limit", "user", "misfire",
                                   "misfire_grace", "color"])
attribute_values = st.one_of(words, uids, periodicities, st.sampled_from(
    ["true", "false", "True", "nonsense", "", "7", "99", "-1", "once", "skip", "UTC", "Nowhere"]))
environs = st.one_of(st.just(""), json_values.map(json.dumps), st.text(max_size=10))


@st.composite
def documents(draw):
    entries = []
    for _ in range(draw(st.integers(0, 6))):
        attrs = draw(st.dictionaries(attribute_names, attribute_values, max_size=6))
        text = "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items())
        tag = draw(st.sampled_from(["cron", "cron", "cron", "job"]))
        environ = draw(st.none() | environs)
        body = "" if environ is None else f"<environ><![CDATA[{environ}]]></environ>"
        entries.append(f"<{tag}{text}>{body}</{tag}>")
    head = draw(st.sampled_from(["<crons>", '<crons activated="false">', "<crons x='1'>"]))
    return head + "\n".join(entries) + "</crons>"


@SETTINGS
@given(first=documents(), second=documents())
def test_the_importer_on_nearly_valid_documents(kit, first, second):
    site = fresh_site(kit)
    check_import(site, first)
    check_import(site, second.encode("utf-8"))
    stored = cronkit.Cronkit(store=kit.store, clock=kit.clock).site(site.name).crontab
    assert stored.similar(site.crontab)
