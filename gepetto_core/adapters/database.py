"""`Database`: the process's PostgreSQL pool, opened and migrated on its first query.

Building it costs nothing and needs only the DSN, so a command that never reads the database
never connects, and one that does connects once. It answers the pool calls the stores use
(`execute`, `fetch`, `fetchrow`, `fetchval`, `acquire`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from gepetto_core.adapters.pg import create_pool, translate_errors
from gepetto_core.adapters.pg_migrations import MigrationStatus, status, upgrade


class Database:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def open(self) -> asyncpg.Pool:
        """The pool, connected and with gepetto's migrations applied (once per process)."""
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    pool = await create_pool(self._dsn)
                    try:
                        async with pool.acquire() as conn:
                            await upgrade(conn)
                    except BaseException:
                        await pool.close()
                        raise
                    self._pool = pool
        return self._pool

    async def execute(self, query: str, *args: Any, **kw: Any) -> Any:
        return await (await self.open()).execute(query, *args, **kw)

    async def fetch(self, query: str, *args: Any, **kw: Any) -> Any:
        return await (await self.open()).fetch(query, *args, **kw)

    async def fetchrow(self, query: str, *args: Any, **kw: Any) -> Any:
        return await (await self.open()).fetchrow(query, *args, **kw)

    async def fetchval(self, query: str, *args: Any, **kw: Any) -> Any:
        return await (await self.open()).fetchval(query, *args, **kw)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        pool = await self.open()
        async with pool.acquire() as conn:
            yield conn

    def terminate(self) -> None:
        if self._pool is not None:
            self._pool.terminate()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


async def migrate(dsn: str, *, apply: bool) -> tuple[list[int], list[MigrationStatus]]:
    """`gepetto db upgrade|status` on one connection (no pool, no automatic upgrade):
    the versions applied now (when `apply`) and every migration's status."""
    async with translate_errors("connecting"):
        conn = await asyncpg.connect(dsn, timeout=10)
    try:
        applied = await upgrade(conn) if apply else []
        return applied, await status(conn)
    finally:
        await conn.close()
