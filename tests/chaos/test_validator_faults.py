"""The validator fails: 5xx for ten minutes (time injected), timeouts, truncated streams, and an
instances stream that says NO_ITEMS by mistake once. Nothing healthy is undeployed on bad
information, the loops go on, commands answer and say how old their data is, and everything
converges once the validator is back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gepetto_core.commands.execute import execute
from gepetto_core.commands.registry import Caller
from gepetto_core.process import start_process
from gepetto_core.render_text import render_text
from gepetto_core.scheduling.reconcile_actions import RemoveDeployment
from gepetto_core.views import Table
from gepetto_sandbox.validator import Fault
from gepetto_sandbox.validator.faults import ROUTES

from .conftest import ChaosTally
from .invariants import check_invariants
from .world import MINER, ChaosWorld, chaos_world, healthy_fleet, runtime_of

pytestmark = pytest.mark.chaos

VIEWER = Caller(actor="U-viewer", source="slack", role="viewer")


@pytest.fixture
async def world(fresh_db: str, tmp_path: Path) -> AsyncIterator[ChaosWorld]:
    async with chaos_world(
        fresh_db, tmp_path, seed=7, nodes=3, chutes=40, GEPETTO_SYNC_INTERVAL_SECONDS="0.5"
    ) as w:
        w.open_targets(w.launchable())
        yield w


async def test_instances_say_no_items_by_mistake_once(world: ChaosWorld, tally: ChaosTally) -> None:
    """A small fleet (below the mass-removal guard's minimum) must not be emptied because one
    instances fetch said NO_ITEMS."""
    async with runtime_of(world) as rt:
        fleet = await healthy_fleet(rt, 2, world)
        world.clock.advance(minutes=10)  # older than the missing-instance grace
        instances = world.sandbox.validator.world.instances
        ours = {k: v for k, v in instances.items() if v["miner_hotkey"] == MINER}
        for key in ours:
            del instances[key]  # the stream now answers `data: NO_ITEMS`
        tally.fault("validator: instances NO_ITEMS by mistake")
        report = await rt.reconciler.run_once()
        instances.update(ours)
        tally.expect(
            report.plan.of_type(RemoveDeployment) == [],
            f"NO_ITEMS once planned removals: {report.plan.of_type(RemoveDeployment)}",
        )
        # the next fetch lists them again: still nothing goes, and state converges
        report = await rt.reconciler.run_once()
        tally.expect(report.plan.of_type(RemoveDeployment) == [], "removal after NO_ITEMS")
        await check_invariants(tally, world, rt, set(fleet), "NO_ITEMS once")
        tally.run("validator: NO_ITEMS once")


async def test_an_instance_missing_for_the_grace_period_is_removed(
    world: ChaosWorld, tally: ChaosTally
) -> None:
    """The other side of the rule above: an instance the validator really dropped goes once it
    has been missing for the grace period, measured from when it was first seen missing."""
    async with runtime_of(world) as rt:
        [keep, doomed] = await healthy_fleet(rt, 2, world)
        row = await rt.inventory.get_deployment(doomed)
        assert row is not None and row.instance_id
        world.sandbox.validator.delete_instance(row.instance_id)
        world.clock.advance(minutes=10)
        report = await rt.reconciler.run_once()
        assert report.plan.of_type(RemoveDeployment) == []  # first seen missing now
        world.clock.advance(minutes=6)
        report = await rt.reconciler.run_once()
        removed = [a.deployment_id for a in report.plan.of_type(RemoveDeployment)]  # type: ignore[attr-defined]
        tally.expect(removed == [doomed], f"really missing instance not removed: {removed}")
        await check_invariants(tally, world, rt, {keep}, "instance really missing")


async def test_validator_5xx_for_ten_minutes_then_recovery(
    world: ChaosWorld, tally: ChaosTally
) -> None:
    process = await start_process(world.settings, clock=world.clock)
    rt = process.rt
    try:
        fleet = await healthy_fleet(rt, 3, world)
        for route in ROUTES - {"socket"}:
            world.sandbox.validator.inject_fault(route, Fault(status=503))
        tally.fault("validator: 503 on every route", len(ROUTES) - 1)
        # ten minutes of outage, one loop turn per minute of injected time
        for minute in range(10):
            world.clock.advance(minutes=1)
            report = await rt.reconciler.run_once()
            tally.expect(
                not report.plan.destructive, f"minute {minute}: removals on a 503 validator"
            )
            round_ = await process.autoscaler.run_round()
            tally.expect(round_.count("deployed") == 0, "deployed during a validator outage")
        rows = {d.deployment_id for d in await rt.inventory.list_deployments()}
        tally.expect(set(fleet) <= rows, "healthy deployments lost during a validator outage")

        # commands still answer, with data whose age they state
        time.sleep(1.1)  # noqa: ASYNC251 - real time must pass for the age to exceed the limit
        insts = await execute("insts", VIEWER, rt)
        assert isinstance(insts, Table)
        tally.expect(
            insts.data_age_seconds is None or insts.data_age_seconds > 1.0,
            f"insts shows validator data as fresh during an outage: {insts.data_age_seconds}",
        )
        text = render_text(insts)
        tally.expect(" old" in text or "unavailable" in text, f"no data age in:\n{text}")
        nodes = await execute("nodes", VIEWER, rt)
        tally.expect(isinstance(nodes, Table) and nodes.rows, "nodes did not answer")

        world.heal()
        world.clock.advance(minutes=1)
        report = await rt.reconciler.run_once()
        tally.expect(report.plan.complete, f"no recovery: {report.plan.problems}")
        await check_invariants(tally, world, rt, set(fleet), "after a 10 minute outage")
        tally.run("validator: 10 minutes of 5xx")
    finally:
        await process.close()


@pytest.mark.parametrize(
    "fault",
    [
        Fault(truncate_after=1, times=3),
        Fault(bad_line_after=0, times=3),
        Fault(delay=2.0, times=2),
        Fault(status=500, times=2),
    ],
    ids=["truncated", "bad line", "slow", "500"],
)
async def test_flaky_instance_streams_remove_nothing(
    world: ChaosWorld, tally: ChaosTally, fault: Fault
) -> None:
    async with runtime_of(world) as rt:
        fleet = await healthy_fleet(rt, 2, world)
        world.clock.advance(minutes=10)
        for route in ("instances", "chutes"):
            world.sandbox.validator.inject_fault(route, fault)
            tally.fault(f"validator: flaky {route} stream")
        for _ in range(3):
            report = await rt.reconciler.run_once()
            tally.expect(not report.plan.destructive, f"removals on a flaky stream: {report}")
        world.heal()
        await rt.reconciler.run_once()
        await check_invariants(tally, world, rt, set(fleet), f"flaky stream {fault}")
        tally.run("validator: flaky streams")
