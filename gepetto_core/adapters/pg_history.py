"""Fleet history in PostgreSQL (`gepetto_fleet_history`, migration 0004).

A row's `servers` column is compact on purpose: per server `[name, gpu_type, hourly_cost,
runs]`, each run `[state code, GPUs, label index]`, where labels (chute names and idle reasons)
are listed once per row; the JSON is zlib-compressed (a 100-server, 800-GPU fleet: ~6 kB of
JSON, ~1.2 kB stored). A fleet rarely changes between two rounds, so a row whose servers are
the same as the previous row's stores NULL; a full row is written at least every
`KEYFRAME_EVERY`, so pruning never leaves the newest rows without their detail.
`tests/integration/db/test_history.py` measures a day of rows.
"""

from __future__ import annotations

import json
import zlib
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from gepetto_core.adapters.pg import translate_errors
from gepetto_core.models.history import (
    BUSY_STATES,
    FleetSnapshot,
    FleetTotals,
    ServerSlots,
    SlotRun,
    SlotState,
)

_CODE = {
    SlotState.RUNNING: "R",
    SlotState.STARTING: "S",
    SlotState.CRASHING: "C",
    SlotState.BACKED_OFF: "B",
    SlotState.IDLE: "I",
    SlotState.LOCKED: "L",
}
_STATE = {code: state for state, code in _CODE.items()}

KEYFRAME_EVERY = timedelta(hours=1)

_TOTALS_COLUMNS = (
    "taken_at, mode, gpus, states, idle, earning_per_hour, cost_per_hour, expected_value, "
    "deploys, failed_deploys"
)


def encode_servers(servers: list[ServerSlots]) -> dict[str, Any]:
    labels: dict[str, int] = {}

    def label(run: SlotRun) -> int:
        text = run.chute if run.state in BUSY_STATES else run.reason
        if text is None:
            return -1
        return labels.setdefault(text, len(labels))

    rows = [
        [s.name, s.gpu_type, s.hourly_cost, [[_CODE[r.state], r.count, label(r)] for r in s.runs]]
        for s in servers
    ]
    return {"labels": list(labels), "servers": rows}


def decode_servers(data: dict[str, Any]) -> list[ServerSlots]:
    labels: list[str] = list(data.get("labels", []))
    out: list[ServerSlots] = []
    for name, gpu_type, cost, runs in data.get("servers", []):
        slot_runs: list[SlotRun] = []
        for code, count, index in runs:
            state = _STATE[code]
            text = labels[index] if index >= 0 else None
            busy = state in BUSY_STATES
            slot_runs.append(
                SlotRun(
                    state=state,
                    count=count,
                    chute=text if busy else None,
                    reason=None if busy else text,
                )
            )
        out.append(ServerSlots(name=name, gpu_type=gpu_type, hourly_cost=cost, runs=slot_runs))
    return out


def pack_servers(servers: list[ServerSlots]) -> bytes:
    text = json.dumps(encode_servers(servers), separators=(",", ":"))
    return zlib.compress(text.encode(), 9)


def unpack_servers(data: bytes) -> list[ServerSlots]:
    return decode_servers(json.loads(zlib.decompress(data)))


def _totals(record: asyncpg.Record) -> FleetTotals:
    return FleetTotals(
        taken_at=record["taken_at"],
        mode=record["mode"],
        gpus=record["gpus"],
        states={SlotState(k): v for k, v in record["states"].items()},
        idle=record["idle"],
        earning_per_hour=record["earning_per_hour"],
        cost_per_hour=record["cost_per_hour"],
        expected_value=record["expected_value"],
        deploys=record["deploys"],
        failed_deploys=record["failed_deploys"],
    )


class PgHistory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # The servers this process last stored in full, and when (NULL rows refer back to it).
        self._keyframe: tuple[bytes, datetime] | None = None

    async def add(self, snapshot: FleetSnapshot) -> bool:
        """Store one snapshot; False if one with the same time is already there."""
        totals = snapshot.totals()
        packed = pack_servers(snapshot.servers)
        same = (
            self._keyframe is not None
            and self._keyframe[0] == packed
            and self._keyframe[1] < snapshot.taken_at < self._keyframe[1] + KEYFRAME_EVERY
        )
        async with translate_errors("recording fleet history"):
            result = await self._pool.execute(
                """
                INSERT INTO gepetto_fleet_history
                    (taken_at, mode, gpus, states, idle, earning_per_hour, cost_per_hour,
                     expected_value, deploys, failed_deploys, servers)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                ON CONFLICT (taken_at) DO NOTHING
                """,
                snapshot.taken_at,
                snapshot.mode,
                totals.gpus,
                {k.value: v for k, v in totals.states.items()},
                totals.idle,
                snapshot.earning_per_hour,
                snapshot.cost_per_hour,
                snapshot.expected_value,
                snapshot.deploys,
                snapshot.failed_deploys,
                None if same else packed,
            )
        stored = bool(result.endswith(" 1"))
        if stored and not same:
            self._keyframe = (packed, snapshot.taken_at)
        return stored

    async def totals(self, start: datetime, end: datetime) -> list[FleetTotals]:
        """Every snapshot in [start, end), oldest first, without server detail."""
        async with translate_errors("reading fleet history"):
            records = await self._pool.fetch(
                f"SELECT {_TOTALS_COLUMNS} FROM gepetto_fleet_history "
                "WHERE taken_at >= $1 AND taken_at < $2 ORDER BY taken_at",
                start,
                end,
            )
        return [_totals(r) for r in records]

    async def latest(self, before: datetime | None = None) -> FleetSnapshot | None:
        """The newest snapshot (taken before `before`, if given), with its servers."""
        async with translate_errors("reading fleet history"):
            record = await self._pool.fetchrow(
                f"SELECT {_TOTALS_COLUMNS}, servers FROM gepetto_fleet_history "
                "WHERE $1::timestamptz IS NULL OR taken_at < $1 "
                "ORDER BY taken_at DESC LIMIT 1",
                before,
            )
            if record is None:
                return None
            packed = record["servers"]
            if packed is None:  # unchanged: the servers of the newest full row before it
                packed = await self._pool.fetchval(
                    "SELECT servers FROM gepetto_fleet_history "
                    "WHERE taken_at < $1 AND servers IS NOT NULL "
                    "ORDER BY taken_at DESC LIMIT 1",
                    record["taken_at"],
                )
        totals = _totals(record)
        return FleetSnapshot(
            taken_at=totals.taken_at,
            mode=totals.mode,
            servers=unpack_servers(packed) if packed is not None else [],
            earning_per_hour=totals.earning_per_hour,
            cost_per_hour=totals.cost_per_hour,
            expected_value=totals.expected_value,
            deploys=totals.deploys,
            failed_deploys=totals.failed_deploys,
        )

    async def prune(self, older_than: datetime) -> int:
        """Delete snapshots taken before `older_than` (an index range scan on the key)."""
        async with translate_errors("pruning fleet history"):
            result = await self._pool.execute(
                "DELETE FROM gepetto_fleet_history WHERE taken_at < $1", older_than
            )
        return int(result.split()[-1])

    async def table_bytes(self) -> int:
        """The table's size on disk with its index and TOAST (for the note and the tests)."""
        async with translate_errors("measuring fleet history"):
            size = await self._pool.fetchval(
                "SELECT pg_total_relation_size('gepetto_fleet_history')"
            )
        return int(size)
