"""Fleet history on a real PostgreSQL: round trip, range reads, pruning, the table's size."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from gepetto_core.adapters.pg_history import (
    PgHistory,
    decode_servers,
    encode_servers,
    pack_servers,
)
from gepetto_core.models.history import SlotState
from gepetto_sandbox.fleet_samples import T0, sample_fleet, sample_history


async def test_snapshot_round_trips_with_every_server_slot(pool: asyncpg.Pool) -> None:
    history = PgHistory(pool)
    fleet = sample_fleet(100, 8)
    assert await history.add(fleet)
    assert not await history.add(fleet), "one snapshot per instant"
    back = await history.latest()
    assert back == fleet
    assert back.count(SlotState.CRASHING) == fleet.count(SlotState.CRASHING) > 0


async def test_totals_read_a_window_oldest_first_without_servers(pool: asyncpg.Pool) -> None:
    history = PgHistory(pool)
    rows = sample_history(30, servers=5)
    for row in reversed(rows):
        await history.add(row)
    got = await history.totals(T0 + timedelta(minutes=10), T0 + timedelta(minutes=20))
    assert [t.taken_at for t in got] == [r.taken_at for r in rows[10:20]]
    assert got == [r.totals() for r in rows[10:20]]
    latest = await history.latest(before=T0 + timedelta(minutes=5))
    assert latest is not None and latest.taken_at == T0 + timedelta(minutes=4)


async def test_prune_removes_only_rows_older_than_the_cutoff(pool: asyncpg.Pool) -> None:
    history = PgHistory(pool)
    for row in sample_history(10, servers=2, every=timedelta(days=1)):
        await history.add(row)
    removed = await history.prune(T0 + timedelta(days=7))
    assert removed == 7
    left = await history.totals(T0, T0 + timedelta(days=30))
    assert [t.taken_at for t in left] == [T0 + timedelta(days=d) for d in (7, 8, 9)]


def test_server_encoding_keeps_chutes_and_reasons_apart() -> None:
    fleet = sample_fleet(20, 8)
    assert decode_servers(encode_servers(fleet.servers)) == fleet.servers


async def test_unchanged_servers_are_stored_once_and_read_back(pool: asyncpg.Pool) -> None:
    history = PgHistory(pool)
    fleet = sample_fleet(10, 8)
    for k in range(5):
        await history.add(fleet.model_copy(update={"taken_at": T0 + timedelta(minutes=k)}))
    full = await pool.fetchval(
        "SELECT count(*) FROM gepetto_fleet_history WHERE servers IS NOT NULL"
    )
    assert full == 1
    back = await history.latest()
    assert back is not None and back.servers == fleet.servers
    assert back.taken_at == T0 + timedelta(minutes=4)
    # An hour later a full row again, so pruning the first never orphans the newest rows.
    await history.add(fleet.model_copy(update={"taken_at": T0 + timedelta(minutes=61)}))
    await history.prune(T0 + timedelta(minutes=30))
    back = await history.latest()
    assert back is not None and back.servers == fleet.servers


async def test_a_day_of_a_100_server_fleet_stays_small(pool: asyncpg.Pool) -> None:
    """One snapshot a minute for a day, 100 servers x 8 GPUs, every row different (the worst
    case: a real fleet repeats itself and stores most rows without detail): measured on disk
    (table, TOAST, index). The figure quoted in the docs comes from this test's print."""
    history = PgHistory(pool)
    rows = [sample_fleet(100, 8, seed=k % 50, at=T0 + timedelta(minutes=k)) for k in range(1440)]
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO gepetto_fleet_history (taken_at, mode, gpus, states, idle, "
            "earning_per_hour, cost_per_hour, expected_value, deploys, failed_deploys, servers) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            [
                (
                    r.taken_at,
                    r.mode,
                    r.gpus,
                    {k.value: v for k, v in r.totals().states.items()},
                    r.idle_by_reason(),
                    r.earning_per_hour,
                    r.cost_per_hour,
                    r.expected_value,
                    r.deploys,
                    r.failed_deploys,
                    pack_servers(r.servers),
                )
                for r in rows
            ],
        )
        await conn.execute("VACUUM ANALYZE gepetto_fleet_history")
    size = await history.table_bytes()
    print(f"fleet history, 100 servers x 8 GPUs, 1440 snapshots: {size / 1e6:.2f} MB per day")
    assert size < 4_000_000, size
    assert len(await history.totals(T0, T0 + timedelta(days=1))) == 1440
