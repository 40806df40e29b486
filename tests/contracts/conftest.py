"""The store backends the contract suite runs on: memory://, a SQLite file, PostgreSQL.

PostgreSQL is a real server (``tests/servers.py``), a fresh database per test. When
it cannot be started the test fails and says to run ``make test``; it never skips.
"""

from __future__ import annotations

import pytest

from cronkit.stores import open_store

STORES = ["memory", "sqlite", "postgresql"]


@pytest.fixture(params=STORES)
def store_url(request, tmp_path):
    """A URL of an empty store of each kind."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'contract.db'}"
    return request.getfixturevalue("pg_db")


@pytest.fixture
def open_another(store_url):
    """Open another store on the same database (another process would): memory:// is
    private to its object, so there it is the same store."""
    opened = []

    def another(first):
        if store_url == "memory://":
            return first
        store = open_store(store_url)
        opened.append(store)
        return store

    yield another
    for store in opened:
        store.close()


@pytest.fixture
def store(store_url):
    store = open_store(store_url)
    yield store
    store.close()
