"""The store's aggregates for the dashboard's charts (``count_ends``, ``job_timings``):
counted by the database, on every store (memory://, a SQLite file, PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

import cronkit
from tests.contracts.test_store_contract import NOW, row

MINUTE = timedelta(minutes=1)


def ended(status="success", at=NOW, ran=2.0, late=1.0, **fields):
    """A job that was due ``late`` s before it started and ran ``ran`` s, ending at ``at``."""
    started = at - timedelta(seconds=ran)
    return row(status=status, run_after=started - timedelta(seconds=late),
               started_at=started, finished_at=at, **fields)


def test_count_ends_counts_each_interval_and_end_status_with_zeros(store):
    store.add_jobs([ended(at=NOW), ended(at=NOW + timedelta(seconds=59)),
                    ended("failed", at=NOW + timedelta(seconds=30)),
                    ended("canceled", at=NOW + 2 * MINUTE),
                    ended(at=NOW + 3 * MINUTE),             # at ``until``: not counted
                    ended(at=NOW - timedelta(microseconds=1)),   # before ``since``
                    row(), row(status="running", started_at=NOW)])
    got = store.count_ends(NOW, NOW + 3 * MINUTE, MINUTE)
    assert got == [
        {"start": NOW, "success": 2, "failed": 1, "canceled": 0},
        {"start": NOW + MINUTE, "success": 0, "failed": 0, "canceled": 0},
        {"start": NOW + 2 * MINUTE, "success": 0, "failed": 0, "canceled": 1},
    ]
    assert got[0]["start"].tzinfo is not None


def test_count_ends_of_one_site_or_one_type(store):
    store.add_jobs([ended(), ended(site="zope"), ended(type="mail"),
                    ended("failed", site="zope", type="mail")])
    total = store.count_ends(NOW, NOW + MINUTE, MINUTE)[0]
    assert (total["success"], total["failed"]) == (3, 1)
    zope = store.count_ends(NOW, NOW + MINUTE, MINUTE, site="zope")[0]
    assert (zope["success"], zope["failed"]) == (1, 1)
    mail = store.count_ends(NOW, NOW + MINUTE, MINUTE, type="mail")[0]
    assert (mail["success"], mail["failed"]) == (1, 1)
    both = store.count_ends(NOW, NOW + MINUTE, MINUTE, site="plone", type="mail")[0]
    assert (both["success"], both["failed"]) == (1, 0)
    assert store.count_ends(NOW, NOW + MINUTE, MINUTE, site="none")[0]["success"] == 0


def test_count_ends_per_hour_over_a_day(store):
    store.add_jobs([ended(at=NOW + timedelta(hours=h, minutes=m))
                    for h in range(24) for m in range(0, 60, 20) if h % 5 == 0])
    got = store.count_ends(NOW, NOW + timedelta(days=1), timedelta(hours=1))
    assert len(got) == 24
    assert [g["success"] for g in got] == [3 if h % 5 == 0 else 0 for h in range(24)]


@pytest.mark.parametrize("since, until, step", [
    (NOW, NOW + timedelta(seconds=90), MINUTE),       # not a whole number of steps
    (NOW, NOW, MINUTE),                               # no interval
    (NOW + MINUTE, NOW, MINUTE),                      # backwards
    (NOW, NOW + MINUTE, timedelta(0)),
    (NOW, NOW + timedelta(days=1), timedelta(seconds=1)),   # too many intervals
])
def test_count_ends_refuses_a_step_that_does_not_divide_the_span(store, since, until, step):
    with pytest.raises(cronkit.StoreError, match="count_ends"):
        store.count_ends(since, until, step)


def test_job_timings_gives_each_type_its_lateness_and_duration_distribution(store):
    store.add_jobs([ended(late=0.5, ran=0.2), ended(late=1.0, ran=3.0),
                    ended("failed", late=7.0, ran=30.0),
                    ended(type="mail", late=2.0, ran=12.0),
                    ended("canceled", type="mail", late=0.0, ran=1.0),
                    ended(at=NOW + MINUTE, late=100.0, ran=100.0),   # at ``until``
                    row(status="canceled", finished_at=NOW),         # never started
                    row(status="running", started_at=NOW)])
    got = store.job_timings(NOW - MINUTE, NOW + MINUTE, [1, 5, 10])
    assert set(got) == {"export", "mail"}
    export = got["export"]
    assert export["count"] == 3
    assert export["lateness"]["bins"] == [1, 1, 1, 0]      # <1, [1, 5), [5, 10), >=10
    assert export["duration"]["bins"] == [1, 1, 0, 1]
    assert export["lateness"]["max"] == pytest.approx(7.0)
    assert export["lateness"]["mean"] == pytest.approx(8.5 / 3)
    assert export["duration"]["mean"] == pytest.approx(33.2 / 3)
    assert export["duration"]["max"] == pytest.approx(30.0)
    mail = got["mail"]
    assert mail["count"] == 2
    assert mail["lateness"]["bins"] == [1, 1, 0, 0] and mail["duration"]["bins"] == [0, 1, 0, 1]


def test_job_timings_of_one_site_or_type_and_of_nothing(store):
    store.add_jobs([ended(), ended(site="zope", type="mail")])
    assert set(store.job_timings(NOW - MINUTE, NOW + MINUTE, [1], site="zope")) == {"mail"}
    assert set(store.job_timings(NOW - MINUTE, NOW + MINUTE, [1], type="export")) == {"export"}
    assert store.job_timings(NOW + MINUTE, NOW + 2 * MINUTE, [1]) == {}


@pytest.mark.parametrize("edges", [[], [5, 1], [1, 1], list(range(1, 30))])
def test_job_timings_refuses_edges_out_of_order(store, edges):
    with pytest.raises(cronkit.StoreError, match="edges"):
        store.job_timings(NOW, NOW + MINUTE, edges)


def test_a_naive_datetime_is_refused(store):
    with pytest.raises(cronkit.StoreError, match="naive"):
        store.count_ends(NOW.replace(tzinfo=None), NOW.replace(tzinfo=None) + MINUTE, MINUTE)
