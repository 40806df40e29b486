"""Every schema change bumps the version and migrates: a database made by an earlier
cronkit reaches, by its migrations, exactly the schema a new database gets.

``schema_v1.py`` is version 1 as the first cronkit made it, frozen. A change to the
tables of ``cronkit/stores/schema.py`` (a column, an index) without a new version and a
migration makes ``test_migrating_from_version_1_gives_the_schema_of_a_new_database``
fail: a fresh database has it, a migrated one does not. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from cronkit.exceptions import ReadOnlyStore
from cronkit.stores import open_store
from cronkit.stores.postgres import engine_url
from cronkit.stores.schema import MIGRATIONS, SCHEMA_VERSION
from tests.contracts.schema_v1 import make_version_1

NOW = datetime(2008, 1, 1, 1, 3, tzinfo=UTC)
MICROS = int((NOW - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000
ADDED_IN_2 = {"ix_cronkit_jobs_site_id", "ix_cronkit_jobs_claim"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """The URL of an empty database of each kind that keeps files."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cronkit.db'}"
    return request.getfixturevalue("pg_db")


def engine_for(url: str) -> sa.Engine:
    return sa.create_engine(url if url.startswith("sqlite") else engine_url(url))


def schema_of(url: str) -> dict:
    """Tables, columns, keys and indexes of the database, as SQLAlchemy's inspector
    reports them (columns by name: a migration adds a column at the end)."""
    engine = engine_for(url)
    try:
        inspector = sa.inspect(engine)
        schema = {}
        for table in sorted(inspector.get_table_names()):
            columns = sorted((c["name"], str(c["type"]), c["nullable"], c.get("default"))
                             for c in inspector.get_columns(table))
            indexes = sorted((ix["name"], tuple(ix["column_names"]), bool(ix["unique"]),
                              repr(sorted(ix.get("column_sorting", {}).items())),
                              tuple(ix.get("expressions") or ()), _descending(engine, ix),
                              _where(ix))
                             for ix in inspector.get_indexes(table))
            schema[table] = {
                "columns": columns,
                "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
                "unique": sorted(tuple(u["column_names"])
                                 for u in inspector.get_unique_constraints(table)),
                "foreign keys": sorted(repr(fk) for fk in inspector.get_foreign_keys(table)),
                "indexes": indexes,
            }
        return schema
    finally:
        engine.dispose()


def _where(index: dict) -> str:
    """A partial index's condition (both dialects report it among the dialect options)."""
    options = index.get("dialect_options") or {}
    found = [str(v) for k, v in sorted(options.items()) if k.endswith("_where")]
    return " ".join(" ".join(w.split()).strip("()").lower() for w in found)


def _descending(engine: sa.Engine, index: dict) -> tuple:
    """The columns an index sorts descending: SQLite's inspector does not say."""
    if engine.dialect.name != "sqlite":
        return ()
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"PRAGMA index_xinfo('{index['name']}')").all()
    return tuple(r[2] for r in rows if r[5] == 1 and r[3] == 1)   # desc, key columns


def stored_version(url: str) -> str:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(
                "SELECT value FROM cronkit_meta WHERE key = 'schema_version'").scalar_one()
    finally:
        engine.dispose()


def make_version_1_database(url: str, with_a_job: bool = True) -> None:
    engine = engine_for(url)
    try:
        make_version_1(engine)
        if with_a_job:
            with engine.begin() as conn:
                conn.execute(sa.text(
                    "INSERT INTO cronkit_jobs (site, type, name, status, priority, payload, "
                    "run_after, progress, status_text, created_at, attempts, canceled) VALUES "
                    "('plone', 'export', 'made by version 1', 'pending', 0, '{}', :at, 0, '', "
                    ":at, 0, false)"), {"at": MICROS})
    finally:
        engine.dispose()


def drop_everything(url: str) -> None:
    engine = engine_for(url)
    try:
        tables = sa.MetaData()
        tables.reflect(engine)
        tables.drop_all(engine)
    finally:
        engine.dispose()


def test_every_version_has_its_migration():
    assert sorted(MIGRATIONS) == list(range(SCHEMA_VERSION))


def test_a_version_1_database_gets_the_indexes_added_since_and_version_2(database_url):
    make_version_1_database(database_url)
    assert not ADDED_IN_2 & {ix[0] for ix in schema_of(database_url)["cronkit_jobs"]["indexes"]}
    store = open_store(database_url)
    try:
        assert store.schema_version() == SCHEMA_VERSION >= 2
        [job] = store.list_jobs()
        assert (job["name"], job["run_after"]) == ("made by version 1", NOW)
        assert [r["id"] for r in store.claim(NOW, 5, "w:1")] == [job["id"]]
    finally:
        store.close()
    assert ADDED_IN_2 <= {ix[0] for ix in schema_of(database_url)["cronkit_jobs"]["indexes"]}
    assert stored_version(database_url) == str(SCHEMA_VERSION)


def test_migrating_from_version_1_gives_the_schema_of_a_new_database(database_url):
    open_store(database_url).close()
    fresh = schema_of(database_url)
    drop_everything(database_url)
    make_version_1_database(database_url, with_a_job=False)
    open_store(database_url).close()
    assert schema_of(database_url) == fresh
    assert {"cronkit_jobs", "cronkit_crons", "cronkit_logs", "cronkit_history"} <= set(fresh)


def test_migrations_are_idempotent(database_url):
    make_version_1_database(database_url)
    open_store(database_url).close()
    migrated = schema_of(database_url)
    engine = engine_for(database_url)
    try:
        with engine.begin() as conn:
            for version in sorted(MIGRATIONS):
                MIGRATIONS[version](conn)   # again, on a database that has it all
    finally:
        engine.dispose()
    assert schema_of(database_url) == migrated


def test_opening_a_current_database_takes_no_write_lock(tmp_path):
    """The version is read, not migrated, when it is current: opening works while
    another process holds the write lock (an earlier cronkit waited for it, 60 s)."""
    url = f"sqlite:///{tmp_path / 'cronkit.db'}"
    open_store(url).close()
    writer = sqlite3.connect(tmp_path / "cronkit.db", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        store = open_store(url)
        assert store.schema_version() == SCHEMA_VERSION
        store.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_read_only_store_that_needs_a_migration_says_to_open_it_writable(tmp_path):
    url = f"sqlite:///{tmp_path / 'cronkit.db'}"
    make_version_1_database(url)
    with pytest.raises(ReadOnlyStore, match="version 1.*open it once writable"):
        open_store(url + "?mode=ro")
    assert stored_version(url) == "1"
