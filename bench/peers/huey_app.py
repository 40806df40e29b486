"""Huey for the benchmark: ``$BENCH_HUEY`` is ``sqlite`` (file ``$BENCH_HUEY_DB``) or
``redis`` (``$BENCH_REDIS_URL``). SQLite runs in WAL with synchronous=NORMAL, the same
durability as cronkit's store (Huey's default, FULL, would fsync every commit)."""

import os

from huey import RedisHuey, SqliteHuey
from huey.storage import SqliteStorage

from bench.record import record


class NormalSyncStorage(SqliteStorage):
    def _create_connection(self):
        conn = super()._create_connection()
        conn.execute("pragma synchronous=NORMAL")
        return conn


class BenchSqliteHuey(SqliteHuey):
    storage_class = NormalSyncStorage


if os.environ.get("BENCH_HUEY", "redis") == "sqlite":
    huey = BenchSqliteHuey("bench", filename=os.environ["BENCH_HUEY_DB"])
else:
    huey = RedisHuey("bench", url=os.environ["BENCH_REDIS_URL"])


@huey.task()
def noop():
    record()
