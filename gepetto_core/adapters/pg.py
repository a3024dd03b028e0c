"""The asyncpg pool (one per process) and the translation of database errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from gepetto_core.errors import StoreError


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSONB columns come back as Python objects and accept them on the way in.
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Open the process's pool. The error text never includes the DSN (it holds a password)."""
    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=_init_connection, timeout=10
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as e:
        raise StoreError(f"cannot connect to PostgreSQL: {type(e).__name__}: {_safe(e)}") from e
    assert pool is not None
    return pool


def _safe(error: BaseException) -> str:
    """An error message without anything that looks like a connection string."""
    text = str(error)
    return "connection failed" if "://" in text else text


@asynccontextmanager
async def translate_errors(what: str) -> AsyncIterator[None]:
    """Turn asyncpg and socket errors into StoreError naming what was being done."""
    try:
        yield
    except (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.exceptions.InternalClientError,  # e.g. a connection lost mid-protocol
        OSError,
    ) as e:
        raise StoreError(f"database error while {what}: {_safe(e)}") from e
