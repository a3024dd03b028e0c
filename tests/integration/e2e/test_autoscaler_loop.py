"""The autoscaler loop on real PostgreSQL and the sandboxes: one round fills an empty fleet
within the validator's allowances without over-allocating a GPU; shadow mode changes nothing;
pause stops the loop and an expired pause resumes it."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import timedelta

from gepetto_core.scheduling.policy import PlanPolicy
from gepetto_core.scheduling.snapshot import Snapshot
from gepetto_core.services.autoscaler import Autoscaler
from gepetto_core.services.planning_input import load_snapshot, plan_policy
from tests.support.fleet_layouts import in_every_layout

from .conftest import Miner, eventually


def autoscaler(m: Miner, **policy_changes: object) -> Autoscaler:
    rt = m.rt

    async def build() -> Snapshot:
        await rt.sync.sync_all()
        loaded = await load_snapshot(rt.inventory, rt.state, rt.sync.snapshots, m.clock())
        return loaded.snapshot

    policy: PlanPolicy = replace(plan_policy(m.settings), **policy_changes)  # type: ignore[arg-type]
    return Autoscaler(
        rt.state,
        rt.deployer,
        rt.validators,
        build,
        policy=policy,
        interval=0.2,
        clock=m.clock,
        seed=1,
        synced=lambda: rt.sync.snapshots,
    )


@in_every_layout
async def test_one_round_fills_an_empty_fleet(miner: Miner) -> None:
    scaler = autoscaler(miner, max_deploys_per_round=None, max_pulls_per_server=None)
    report = await scaler.run_round()
    assert report.error is None and report.plan is not None
    assert report.count("deployed") >= 4, report.outcomes
    assert report.count("failed") == 0 and report.count("no capacity") == 0, [
        o for o in report.outcomes if o.result != "deployed"
    ]

    inv = miner.rt.inventory
    deployments = await inv.list_deployments()
    assert len(deployments) == report.count("deployed")
    gpus = await inv.list_gpus()
    # no GPU over-allocated: each claimed GPU once, per-server claims within capacity
    claims = Counter(g.server_id for g in gpus if g.deployment_id)
    servers = {s.server_id: s for s in await inv.list_servers()}
    assert all(claims[s] <= servers[s].gpu_count for s in claims)
    # within the validator's allowances: every deployment got its launch config (no 423)
    assert all(d.config_id for d in deployments)
    # every action is audited
    audited = await miner.rt.state.list_audit(actor="autoscaler")
    assert len(audited) == len(report.outcomes)
    # a second round finds the fleet full or the allowances used: it places far less
    again = await scaler.run_round()
    assert again.count("deployed") < report.count("deployed")


@in_every_layout
async def test_shadow_mode_plans_but_changes_nothing(miner: Miner) -> None:
    await miner.rt.state.set_autoscaler_mode("shadow", "U-test")
    report = await autoscaler(miner).run_round()
    assert report.mode == "shadow"
    assert report.plan is not None and report.plan.placements
    assert report.outcomes == []
    assert await miner.rt.inventory.list_deployments() == []
    assert miner.cluster.objects("jobs", "chutes") == []


async def test_pause_stops_the_loop_and_an_expired_pause_resumes_it(miner: Miner) -> None:
    state = miner.rt.state
    await state.set_autoscaler_mode(
        "paused", "U-test", paused_until=miner.clock() + timedelta(hours=1)
    )
    scaler = autoscaler(miner)
    stop = asyncio.Event()
    loop = asyncio.create_task(scaler.run(stop))
    try:
        # several rounds while paused (counted, not waited for: a loaded machine runs fewer
        # rounds in a given time)
        for _ in range(3):
            await _next_round(scaler)
        assert await miner.rt.inventory.list_deployments() == []
        assert scaler.last_report is not None and scaler.last_report.mode == "paused"

        miner.clock.advance(hours=2)  # the pause expires: the next round acts
        scaler.wake("test")

        async def deployed() -> bool:
            return bool(await miner.rt.inventory.list_deployments())

        await eventually(deployed)
        assert (await state.get_autoscaler_mode()).mode == "active"
    finally:
        stop.set()
        await loop


async def _next_round(scaler: Autoscaler) -> None:
    """Wake the loop and wait for its next report (of the round in progress, if any)."""
    previous = scaler.last_report
    scaler.wake("test")

    async def reported() -> bool:
        return scaler.last_report is not previous

    await eventually(reported)
