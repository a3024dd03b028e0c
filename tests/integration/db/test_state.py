"""gepetto's durable state on a real PostgreSQL: ledger, audit, pending actions, mode."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from gepetto_core.adapters.pg_inventory import PgInventory
from gepetto_core.adapters.pg_state import LedgerEntry, PendingAction, PgState

from .factories import chute, deployment, fleet, server

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def test_inventory_round_trip(pool: asyncpg.Pool) -> None:
    inv = PgInventory(pool)
    await inv.upsert_chute(chute(tee=True, supported_gpus=["h200", "b200"]))
    await inv.upsert_server(server(labels={"gpu-short-ref": "h200", "chutes/tee": "true"}))
    got = await inv.get_chute("chute-1")
    assert got is not None and got.tee and got.supported_gpus == ["h200", "b200"]
    srv = await inv.get_server("srv-1")
    assert srv is not None and srv.labels["chutes/tee"] == "true"
    assert await inv.set_server_locked("srv-1", True)
    assert (await inv.get_server("srv-1")).locked  # type: ignore[union-attr]
    assert not await inv.set_server_locked("missing", True)
    await inv.upsert_chute(chute(version="v2"))
    assert (await inv.get_chute("chute-1")).version == "v2"  # type: ignore[union-attr]


async def test_deployment_updates_are_limited_to_mutable_columns(pool: asyncpg.Pool) -> None:
    inv = PgInventory(pool)
    await fleet(inv, gpus=1)
    d = deployment()
    await inv.create_deployment(d, 1)
    updated = await inv.update_deployment(d.deployment_id, stub=False, host="10.0.0.1", port=31001)
    assert updated is not None and not updated.stub and updated.port == 31001
    try:
        await inv.update_deployment(d.deployment_id, chute_id="other")
    except ValueError as e:
        assert "chute_id" in str(e)
    else:
        raise AssertionError("chute_id must not be updatable")
    assert await inv.update_deployment("missing", stub=False) is None


async def test_ledger_end_is_recorded_once_and_survives_reconnect(pool: asyncpg.Pool) -> None:
    state = PgState(pool)
    entry = LedgerEntry(
        deployment_id="d1",
        chute_id="c1",
        server_id="s1",
        gpu_type="h100",
        validator="5Val",
        created_at=T0,
    )
    await state.record_deployment_start(entry)
    await state.record_deployment_start(entry)  # replay is harmless
    assert await state.record_deployment_end(
        "d1", T0 + timedelta(minutes=5), "pod crashed", counts_as_failure=True
    )
    assert not await state.record_deployment_end(
        "d1", T0 + timedelta(minutes=9), "later", counts_as_failure=False
    )
    [row] = await state.list_ledger()
    assert row.end_reason == "pod crashed" and row.counts_as_failure
    assert await state.forgive(T0 + timedelta(hours=1), "U1", chute_id="c1") == 1
    assert await state.forgive(T0 + timedelta(hours=1), "U1", chute_id="c1") == 0
    [row] = await state.list_ledger()
    assert row.forgiven_by == "U1"


async def test_audit_filters_by_actor_and_time(pool: asyncpg.Pool) -> None:
    state = PgState(pool)
    first = await state.add_audit(
        actor="U1",
        source="slack",
        verb="deploy",
        arguments={"chute": "x"},
        allowed=False,
        result="denied",
    )
    await state.add_audit(actor="U2", source="cli", verb="undeploy", arguments={}, allowed=True)
    await state.finish_audit(first, "denied: viewer")
    mine = await state.list_audit(actor="U1")
    assert [(e.verb, e.allowed, e.result) for e in mine] == [("deploy", False, "denied: viewer")]
    assert len(await state.list_audit()) == 2
    assert await state.list_audit(since=datetime.now(UTC) + timedelta(hours=1)) == []


async def test_a_pending_action_executes_once_under_double_clicks(pool: asyncpg.Pool) -> None:
    state = PgState(pool)
    await state.create_pending(
        PendingAction(
            action_id="act-1",
            verb="deploy",
            arguments={"chute": "c"},
            requested_by="U1",
            source="slack",
            policy="confirm",
            status="pending",
            created_at=T0,
            expires_at=T0 + timedelta(minutes=15),
        )
    )
    results = await asyncio.gather(
        *(
            state.transition_pending(
                "act-1", from_statuses=("pending",), to_status="executing", at=T0
            )
            for _ in range(20)
        )
    )
    assert sum(r is not None for r in results) == 1
    got = await state.get_pending("act-1")
    assert got is not None and got.status == "executing"


async def test_autoscaler_mode_persists(pool: asyncpg.Pool) -> None:
    state = PgState(pool)
    assert (await state.get_autoscaler_mode()).mode == "active"
    await state.set_autoscaler_mode("paused", "U1", paused_until=T0)
    mode = await state.get_autoscaler_mode()
    assert (mode.mode, mode.paused_until, mode.updated_by) == ("paused", T0, "U1")
    await state.set_autoscaler_mode("shadow", "U2", paused_until=T0)
    assert (await state.get_autoscaler_mode()).paused_until is None


async def test_a_server_removal_request_lasts_as_long_as_the_server_row(pool: asyncpg.Pool) -> None:
    inv, state = PgInventory(pool), PgState(pool)
    await inv.upsert_server(server())
    assert not await state.request_server_removal("missing", "deleted")  # no row, no request
    assert await state.request_server_removal("srv-1", "deleted")
    assert await state.request_server_removal("srv-1", "again")  # the first reason stays
    assert await state.list_server_removals() == {"srv-1": "deleted"}
    await inv.delete_server("srv-1")
    assert await state.list_server_removals() == {}


async def test_a_chute_removal_request_lasts_as_long_as_the_chute_row(pool: asyncpg.Pool) -> None:
    inv, state = PgInventory(pool), PgState(pool)
    await inv.upsert_chute(chute())
    assert not await state.request_chute_removal("missing", "deleted")  # no row, no request
    assert await state.request_chute_removal("chute-1", "deleted")
    assert await state.request_chute_removal("chute-1", "again")  # the first reason stays
    assert await state.list_chute_removals() == {"chute-1": "deleted"}
    assert await state.list_server_removals() == {}
    await inv.delete_chute("chute-1")
    assert await state.list_chute_removals() == {}
