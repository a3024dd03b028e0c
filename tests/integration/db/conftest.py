from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from gepetto_core.adapters.pg import create_pool
from gepetto_core.adapters.pg_migrations import upgrade


@pytest.fixture
async def pool(fresh_db: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database with every migration applied."""
    pool = await create_pool(fresh_db, max_size=20)
    async with pool.acquire() as conn:
        await upgrade(conn)
    try:
        yield pool
    finally:
        await pool.close()
