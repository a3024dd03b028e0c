"""The `gepetto` console entry point.

Errors are one line on stderr and a non-zero exit code; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from gepetto_core.adapters.embedded_pg import EmbeddedPostgres
from gepetto_core.adapters.pg import translate_errors
from gepetto_core.adapters.pg_migrations import status as migration_status
from gepetto_core.adapters.pg_migrations import upgrade
from gepetto_core.config import Settings, load_settings
from gepetto_core.errors import ConfigError, GepettoError

EXIT_ERROR = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gepetto", description="Scheduler and ChatOps bot for Chutes GPU miners."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply pending migrations")
    db_sub.add_parser("status", help="list migrations and when they were applied")

    sub.add_parser("demo", help="run gepetto against embedded sandboxes (no setup needed)")
    return parser


async def _connect(settings: Settings) -> asyncpg.Connection:
    dsn = settings.postgres_dsn()
    if dsn is None:
        raise ConfigError("POSTGRESQL", "is not set (gepetto demo runs an embedded database)")
    async with translate_errors("connecting"):
        return await asyncpg.connect(dsn, timeout=10)


async def _db_command(settings: Settings, command: str) -> None:
    conn = await _connect(settings)
    try:
        if command == "upgrade":
            applied = await upgrade(conn)
            print(f"applied {len(applied)} migration(s)" + (f": {applied}" if applied else ""))
        for row in await migration_status(conn):
            when = row.applied_at.isoformat(timespec="seconds") if row.applied_at else "pending"
            print(f"{row.version:04d}  {row.name:<28} {when}")
    finally:
        await conn.close()


async def _demo(settings: Settings) -> None:
    data = Path(settings.data_dir)
    pg = EmbeddedPostgres(data / "pgdata")
    print("starting the embedded PostgreSQL ...", flush=True)
    pg.start()
    try:
        conn = await asyncpg.connect(pg.dsn)
        try:
            applied = await upgrade(conn)
        finally:
            await conn.close()
        print(f"database ready: {pg.dsn} ({len(applied)} migration(s) applied now)")
        print(
            "not yet in this build: the validator and cluster sandboxes, the autoscaler loop "
            "and the interactive console"
        )
    finally:
        pg.stop()
        print("embedded PostgreSQL stopped")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "db":
            asyncio.run(_db_command(settings, args.db_command))
        elif args.command == "demo":
            asyncio.run(_demo(settings))
        return 0
    except GepettoError as e:
        if args.debug:
            raise
        print(f"gepetto: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
