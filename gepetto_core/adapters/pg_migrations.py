"""Versioned SQL migrations, applied in order and recorded in `gepetto_schema_migrations`.

Files are `gepetto_core/migrations/NNNN_name.sql`. Each runs in its own transaction under a
PostgreSQL advisory lock, so two replicas starting together apply each migration once. A
migration whose file changed after it was applied is refused (its checksum no longer matches):
the database and the code disagree and an operator must look.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import asyncpg

from gepetto_core.errors import StoreError

# Any constant works; it only has to be the same for every gepetto process.
_ADVISORY_LOCK_KEY = 0x6765_7065_7474_6F  # "gepetto"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS gepetto_schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        VARCHAR NOT NULL,
    checksum    VARCHAR NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    name: str
    applied_at: datetime | None


def load_migrations() -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files("gepetto_core.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"duplicate migration versions in {versions}")
    return found


async def _applied(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    rows = await conn.fetch(
        "SELECT version, name, checksum, applied_at FROM gepetto_schema_migrations"
    )
    return {row["version"]: row for row in rows}


async def upgrade(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Apply the pending migrations; returns the versions applied now."""
    migrations = load_migrations() if migrations is None else migrations
    applied_now: list[int] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
        try:
            await conn.execute(_CREATE_LEDGER)
            done = await _applied(conn)
            for migration in migrations:
                previous = done.get(migration.version)
                if previous is not None:
                    if previous["checksum"] != migration.checksum:
                        raise StoreError(
                            f"migration {migration.version:04d}_{migration.name} was changed "
                            "after it was applied; refusing to continue"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO gepetto_schema_migrations (version, name, checksum) "
                        "VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                applied_now.append(migration.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)
    except asyncpg.PostgresError as e:
        raise StoreError(f"database migration failed: {e}") from e
    return applied_now


async def status(conn: asyncpg.Connection) -> list[MigrationStatus]:
    try:
        exists = await conn.fetchval("SELECT to_regclass('gepetto_schema_migrations') IS NOT NULL")
        done = await _applied(conn) if exists else {}
    except asyncpg.PostgresError as e:
        raise StoreError(f"cannot read migration status: {e}") from e
    return [
        MigrationStatus(
            m.version, m.name, done[m.version]["applied_at"] if m.version in done else None
        )
        for m in load_migrations()
    ]
