"""The SQL store's sites and crontabs: the CrontabStore half of SQLStore.

A crontab is saved as one transaction that bumps its site's version, so a reader can
tell with one cheap query whether what it holds is still current.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa

from .base import CronRow, CrontabData, CrontabStore, LogEntry, SiteRow
from .schema import CRON_COLUMNS, chunks, crons, insert, logs, sites


class CrontabQueries(CrontabStore):
    """Sites and crontabs on SQLAlchemy Core; mixed into SQLStore, which gives the
    transactions."""

    dialect: str

    @abstractmethod
    def _tx(self, write: bool = True) -> AbstractContextManager[sa.Connection]:
        """One transaction (a write one unless ``write`` is false)."""

    # -- sites ----------------------------------------------------------------

    def ensure_site(self, site: str) -> None:
        with self._tx() as conn:
            self._ensure_site(conn, site)

    def _ensure_site(self, conn: sa.Connection, site: str) -> None:
        conn.execute(insert(self.dialect, sites)
                     .values(name=site, marked=False, activated=True, version=0)
                     .on_conflict_do_nothing())

    def _bump(self, conn: sa.Connection, site: str) -> int:
        self._ensure_site(conn, site)
        conn.execute(sites.update().where(sites.c.name == site).values(version=sites.c.version + 1))
        return conn.execute(sa.select(sites.c.version).where(sites.c.name == site)).scalar_one()

    def sites(self) -> list[SiteRow]:
        with self._tx(write=False) as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(sites).order_by(sites.c.name))]

    def mark_site(self, site: str, marked: bool = True) -> None:
        with self._tx() as conn:
            self._ensure_site(conn, site)
            conn.execute(sites.update().where(sites.c.name == site).values(marked=marked))

    def marked_sites(self) -> list[str]:
        with self._tx(write=False) as conn:
            return list(conn.execute(sa.select(sites.c.name).where(sites.c.marked.is_(True))
                                     .order_by(sites.c.name)).scalars())

    # -- crontabs -------------------------------------------------------------

    def crontab_version(self, site: str) -> int:
        with self._tx(write=False) as conn:
            return conn.execute(sa.select(sites.c.version).where(sites.c.name == site)).scalar() or 0

    def load_crontab(self, site: str, uid: str | None = None) -> CrontabData:
        with self._tx(write=False) as conn:
            head = conn.execute(sa.select(sites.c.version, sites.c.activated)
                                .where(sites.c.name == site)).first()
            q = sa.select(crons).where(crons.c.site == site).order_by(crons.c.position)
            lq = sa.select(logs).where(logs.c.site == site).order_by(logs.c.id.desc())
            if uid is not None:
                q = q.where(crons.c.uid == uid)
                lq = lq.where(logs.c.cron_uid == uid)
            rows = conn.execute(q).all()
            log_rows = conn.execute(lq).all()
        by_uid: dict[str, list[LogEntry]] = {}
        for r in log_rows:
            by_uid.setdefault(r.cron_uid, []).append(
                {"id": r.id, "date": r.date, "status": r.status, "messages": json.loads(r.messages)})
        out = []
        for r in rows:
            data = {c: getattr(r, c) for c in CRON_COLUMNS}
            data["environ"] = json.loads(data["environ"])
            data["logs"] = by_uid.get(r.uid, [])
            data["position"] = r.position
            out.append(data)
        return {"version": head.version if head else 0,
                "activated": bool(head.activated) if head else True, "crons": out}

    def save_crontab(self, site: str, activated: bool | None, upserts: list[CronRow],
                     deletes: Iterable[str], new_logs: list[tuple[str, LogEntry]],
                     deleted_logs: Iterable[int]) -> tuple[int, list[int]]:
        deletes = list(deletes)
        deleted_logs = list(deleted_logs)
        with self._tx() as conn:
            self._ensure_site(conn, site)
            if activated is not None:
                conn.execute(sites.update().where(sites.c.name == site).values(activated=activated))
            for chunk in chunks(deletes):
                conn.execute(crons.delete().where(crons.c.site == site, crons.c.uid.in_(chunk)))
                conn.execute(logs.delete().where(logs.c.site == site, logs.c.cron_uid.in_(chunk)))
            if upserts:
                rows = [dict(u, site=site, environ=json.dumps(u["environ"])) for u in upserts]
                stmt = insert(self.dialect, crons)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[crons.c.site, crons.c.uid],
                    set_={c: stmt.excluded[c] for c in CRON_COLUMNS + ["position"] if c != "uid"})
                for batch in chunks(rows):
                    conn.execute(stmt, batch)
            for some in chunks(deleted_logs):
                conn.execute(logs.delete().where(logs.c.site == site, logs.c.id.in_(some)))
            ids = [self._insert_log(conn, site, uid, entry) for uid, entry in new_logs]
            limits = {u["uid"]: u["logs_limit"] for u in upserts}
            for uid in {uid for uid, _ in new_logs}:
                self._trim_logs(conn, site, uid, limits.get(uid, 25))
            return self._bump(conn, site), ids

    def _insert_log(self, conn: sa.Connection, site: str, uid: str, entry: LogEntry) -> int:
        key: Any = conn.execute(logs.insert().values(
            site=site, cron_uid=uid, date=entry["date"], status=entry["status"],
            messages=json.dumps(entry["messages"]))).inserted_primary_key
        return int(key[0])

    def _trim_logs(self, conn: sa.Connection, site: str, uid: str, limit: int) -> None:
        keep = sa.select(logs.c.id).where(logs.c.site == site, logs.c.cron_uid == uid) \
            .order_by(logs.c.id.desc()).limit(limit)
        conn.execute(logs.delete().where(logs.c.site == site, logs.c.cron_uid == uid,
                                         logs.c.id.not_in(keep.scalar_subquery())))

    def add_log(self, site: str, cron_uid: str, entry: LogEntry, limit: int) -> tuple[int, int]:
        with self._tx() as conn:
            log_id = self._insert_log(conn, site, cron_uid, entry)
            self._trim_logs(conn, site, cron_uid, limit)
            return log_id, self._bump(conn, site)
