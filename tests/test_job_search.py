"""The store's job search (``list_jobs`` / ``count_jobs`` with ``search``), on SQLite and
on PostgreSQL: in the name, type, payload text and message, case-insensitive, with
``%``, ``_`` and ``\\`` matched as themselves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import cronkit

NOW = datetime(2008, 1, 1, tzinfo=UTC)


class Quiet(cronkit.Runner):
    def run(self):
        pass


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'search.db'}"
    return request.getfixturevalue("pg_db")


def test_search_in_every_column_with_literal_wildcards(store_url):
    kit = cronkit.Cronkit(store=store_url, clock=cronkit.FakeClock(NOW))
    try:
        site = kit.site("s")
        site.register_runner(Quiet, name="quiet")
        site.register_runner(Quiet, name="Report_Maker")
        ids = {"name": site.submit("quiet", name="Weekly 100% export").id,
               "type": site.submit("Report_Maker").id,
               "payload": site.submit("quiet", {"path": "C:\\data\\x_y"}).id,
               "message": site.submit("quiet").id}
        kit.store.finish_job(ids["message"], "failed", NOW, message="OSError: Disk FULL",
                             only_running=False)
        store = kit.store

        def found(text, **filters):
            rows = store.list_jobs(search=text, **filters)
            assert store.count_jobs(search=text, **filters) == len(rows)
            return {r["id"] for r in rows}

        assert found("weekly") == {ids["name"]}
        assert found("report_maker") == {ids["type"]}
        assert found("disk full") == {ids["message"]}
        assert found("x_y") == {ids["payload"]}
        assert found("100%") == {ids["name"]}
        assert found("%") == {ids["name"]}
        assert found("0_e") == set() and found("t%m") == set()
        assert found("\\\\data") == {ids["payload"]}      # the JSON text has "\\" for "\"
        assert found("disk", status="failed", site="s") == {ids["message"]}
        assert found("disk", status="pending") == set()
        (newest,) = store.list_jobs(search="QUIET", limit=1, offset=0)
        assert newest["id"] == max(ids["payload"], ids["message"], ids["name"])
    finally:
        kit.close()
