"""Migrations on a real PostgreSQL: empty database, a database the official miner already set
up (with rows), an older miner database, applied twice, and a changed migration refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gepetto_core.adapters.pg_migrations import Migration, load_migrations, status, upgrade
from gepetto_core.errors import StoreError

INVENTORY = ("chutes", "servers", "gpus", "deployments")
OFFICIAL_SCHEMA = (Path(__file__).parent / "official_miner_schema.sql").read_text()


async def _columns(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    rows = await conn.fetch(
        """
        SELECT table_name, column_name, data_type, is_nullable, column_default
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = ANY($1::text[])
        ORDER BY table_name, column_name
        """,
        list(INVENTORY),
    )
    return [tuple(r) for r in rows]


async def _constraints(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    rows = await conn.fetch(
        """
        SELECT conrelid::regclass::text, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE conrelid::regclass::text = ANY($1::text[])
        ORDER BY 1, 2
        """,
        list(INVENTORY),
    )
    return [tuple(r) for r in rows]


async def _contents(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY 1")]
        for table in INVENTORY
    }


async def test_empty_database_gets_every_table(fresh_db: str) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        applied = await upgrade(conn)
        assert applied == [m.version for m in load_migrations()]
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        assert set(INVENTORY) <= tables
        assert {
            "gepetto_deployment_ledger",
            "gepetto_audit",
            "gepetto_pending_actions",
            "gepetto_autoscaler_mode",
            "gepetto_server_removals",
            "gepetto_chute_removals",
            "gepetto_schema_migrations",
        } <= tables
        columns = {(t, c) for t, c, *_ in await _columns(conn)}
        # the 2026 columns are there
        for needed in [
            ("chutes", "tee"),
            ("chutes", "preemptible"),
            ("servers", "is_tee"),
            ("servers", "kubeconfig"),
            ("deployments", "activated_at"),
            ("deployments", "config_id"),
            ("deployments", "job_id"),
        ]:
            assert needed in columns
        assert all(s.applied_at is not None for s in await status(conn))
    finally:
        await conn.close()


async def test_official_miner_database_is_left_untouched(fresh_db: str) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute(OFFICIAL_SCHEMA)
        before = (await _columns(conn), await _constraints(conn), await _contents(conn))
        await upgrade(conn)
        after = (await _columns(conn), await _constraints(conn), await _contents(conn))
        assert after == before
        # the miner's own dbmate table is not touched either
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 1
    finally:
        await conn.close()


async def test_older_miner_database_gains_new_columns_and_keeps_rows(fresh_db: str) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute(OFFICIAL_SCHEMA)
        # a 2025 miner: none of the N-only columns yet
        await conn.execute(
            "ALTER TABLE chutes DROP COLUMN tee, DROP COLUMN preemptible;"
            "ALTER TABLE servers DROP COLUMN is_tee, DROP COLUMN kubeconfig, DROP COLUMN agent_api;"
            "ALTER TABLE deployments DROP COLUMN activated_at, DROP COLUMN preemptible;"
        )
        rows_before = await conn.fetch("SELECT chute_id, name, code FROM chutes")
        gpus_before = await conn.fetch("SELECT gpu_id, deployment_id FROM gpus ORDER BY gpu_id")
        await upgrade(conn)
        assert await conn.fetch("SELECT chute_id, name, code FROM chutes") == rows_before
        assert await conn.fetch("SELECT gpu_id, deployment_id FROM gpus ORDER BY gpu_id") == (
            gpus_before
        )
        assert await conn.fetchval("SELECT preemptible FROM chutes WHERE chute_id='c-1'") is True
        assert await conn.fetchval("SELECT is_tee FROM servers WHERE server_id='s-1'") is False
    finally:
        await conn.close()


async def test_applied_twice_is_a_no_op(fresh_db: str) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        assert await upgrade(conn)
        columns = await _columns(conn)
        assert await upgrade(conn) == []
        assert await _columns(conn) == columns
        assert await conn.fetchval("SELECT count(*) FROM gepetto_autoscaler_mode") == 1
    finally:
        await conn.close()


async def test_two_processes_upgrading_at_once_apply_each_migration_once(fresh_db: str) -> None:
    conns = [await asyncpg.connect(fresh_db) for _ in range(3)]
    try:
        results = await asyncio.gather(*(upgrade(c) for c in conns))
        applied = sorted(v for result in results for v in result)
        assert applied == [m.version for m in load_migrations()]
    finally:
        for c in conns:
            await c.close()


async def test_a_migration_changed_after_it_was_applied_is_refused(fresh_db: str) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        await upgrade(conn)
        changed = [
            Migration(m.version, m.name, m.sql + "\n-- edited") if m.version == 2 else m
            for m in load_migrations()
        ]
        with pytest.raises(StoreError, match="changed after it was applied"):
            await upgrade(conn, changed)
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_half_applied(fresh_db: str) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        broken = [
            *load_migrations(),
            Migration(9999, "broken", "CREATE TABLE t1 (x int); SELEC 1;"),
        ]
        with pytest.raises(StoreError, match="migration failed"):
            await upgrade(conn, broken)
        assert await conn.fetchval("SELECT to_regclass('t1')") is None
        assert 9999 not in {s.version for s in await status(conn) if s.applied_at}
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM gepetto_schema_migrations WHERE version = 9999"
            )
            == 0
        )
    finally:
        await conn.close()
