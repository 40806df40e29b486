"""The server fixtures give real, working PostgreSQL and Redis servers."""

import psycopg
import redis
import sqlalchemy as sa

pytest_plugins = ["tests.servers"]


def _psycopg_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_postgres_fixtures_give_a_working_database_per_test(postgres_url, pg_db):
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    assert postgres_url.endswith("/cronkit_test")
    engine = sa.create_engine(pg_db)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (n int)"))
            conn.execute(sa.text("INSERT INTO t VALUES (42)"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT n FROM t")).scalar_one() == 42
            assert (
                conn.execute(sa.text("SELECT current_database()")).scalar_one()
                != "cronkit_test"
            )
    finally:
        engine.dispose()
    with psycopg.connect(_psycopg_url(postgres_url)) as conn:
        addr = conn.execute("SELECT inet_server_addr()::text").fetchone()[0]
        assert addr.startswith("127.0.0.1")
        listen = conn.execute("SHOW listen_addresses").fetchone()[0]
        assert listen == "127.0.0.1"


def test_redis_fixture_gives_a_working_server(redis_url):
    assert redis_url.startswith("redis://127.0.0.1:")
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
        client.set("cronkit", "ok")
        assert client.get("cronkit") == b"ok"
        config = client.config_get("bind")["bind"]
        assert config.split() == ["127.0.0.1"]
        assert client.config_get("save")["save"] == ""
    finally:
        client.close()
