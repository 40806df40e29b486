"""Schema version 1 as the first cronkit made it (commit 73b2d4b), frozen: never edit.

It is what a database made then holds (datetimes are BIGINT microseconds): the tables
and indexes of that version, without the indexes added later while the version stayed
1 (``ix_cronkit_jobs_site_id``, ``ix_cronkit_jobs_claim``; schema version 2 adds them).
``test_schema.py`` migrates it and compares the result with a fresh database.
"""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 1


def version_1() -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(
        "cronkit_meta", metadata,
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    sa.Table(
        "cronkit_sites", metadata,
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("marked", sa.Boolean, nullable=False, default=False),
        sa.Column("activated", sa.Boolean, nullable=False, default=True),
        sa.Column("version", sa.BigInteger, nullable=False, default=0),
    )
    sa.Table(
        "cronkit_crons", metadata,
        sa.Column("site", sa.String(200), primary_key=True),
        sa.Column("uid", sa.String(200), primary_key=True),
        sa.Column("position", sa.Float, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("periodicity", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(100)),
        sa.Column("activated", sa.Boolean, nullable=False),
        sa.Column("environ", sa.Text, nullable=False),
        sa.Column("logs_limit", sa.Integer, nullable=False),
        sa.Column("user", sa.String(200)),
        sa.Column("misfire", sa.String(10), nullable=False),
        sa.Column("misfire_grace", sa.Float),
    )
    sa.Table(
        "cronkit_logs", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("cron_uid", sa.String(200), nullable=False),
        sa.Column("date", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("messages", sa.Text, nullable=False),
        sa.Index("ix_cronkit_logs_cron", "site", "cron_uid", "id"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "cronkit_jobs", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False, default=0),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("run_after", sa.BigInteger, nullable=False),
        sa.Column("cron_uid", sa.String(200)),
        sa.Column("fire_at", sa.BigInteger),
        sa.Column("signature", sa.String(500)),
        sa.Column("unique_key", sa.String(64)),
        sa.Column("progress", sa.Integer, nullable=False, default=0),
        sa.Column("status_text", sa.Text, nullable=False, default=""),
        sa.Column("message", sa.Text),
        sa.Column("pid", sa.Integer),
        sa.Column("worker", sa.String(300)),
        sa.Column("heartbeat", sa.BigInteger),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.BigInteger),
        sa.Column("finished_at", sa.BigInteger),
        sa.Column("user", sa.String(200)),
        sa.Column("timeout", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("canceled", sa.Boolean, nullable=False, default=False),
        sa.Index("ux_cronkit_jobs_firing", "site", "cron_uid", "fire_at", unique=True),
        sa.Index("ix_cronkit_jobs_due", "status", "run_after"),
        sa.Index("ix_cronkit_jobs_site", "site", "status", "id"),
        sa.Index("ix_cronkit_jobs_unique", "unique_key"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "cronkit_history", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer, nullable=False, index=True),
        sa.Column("date", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    return metadata


def make_version_1(engine: sa.Engine) -> None:
    """Make the tables of version 1 in the empty database of ``engine``, and record
    the version as cronkit then did."""
    metadata = version_1()
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(metadata.tables["cronkit_meta"].insert().values(
            key="schema_version", value=str(VERSION)))
