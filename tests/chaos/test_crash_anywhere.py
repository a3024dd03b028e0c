"""Crash anywhere (in-process): seeded runs on one long-lived sandbox miner, in each cluster
layout: 50 in the single one and 50 with each state source of the multi-cluster one (there leaks
are counted on every server's cluster). Each run starts a gepetto process, sets 2-5 operations
going at once (autoscaler rounds, operator deploys and undeploys, reconcile passes), kills the
process at the await point the seed picks (see `crash.py`), starts a fresh process on the same
database, moves the clock past the stub deadline, reconciles and checks the invariants. The
world carries over from run to run, so later runs crash on top of what earlier crashes and
recoveries left."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gepetto_core.errors import GepettoError
from gepetto_core.process import start_process
from gepetto_core.services.deployer import Deployer
from gepetto_core.wiring import build_runtime
from tests.support.fleet_layouts import Layout

from .conftest import ChaosTally
from .crash import DoomedProcess, ProcessDied
from .invariants import check_invariants, healthy
from .world import (
    SAFETY_NET_SECONDS,
    ChaosWorld,
    chaos_world,
    free_pair,
    reconcile_until_quiet,
    runtime_of,
    settle,
)

pytestmark = pytest.mark.chaos

RUNS = int(os.environ.get("GEPETTO_CHAOS_CRASH_RUNS", "50"))
# per state source of the multi-cluster layout (a run there costs about what it costs in the
# single one: 50 take 40-120 s on 2 cores, depending on what else runs)
MULTI_RUNS = int(os.environ.get("GEPETTO_CHAOS_MULTI_CRASH_RUNS", "50"))
BASE_SEED = int(os.environ.get("GEPETTO_CHAOS_SEED", "0"))
LAYOUTS: tuple[Layout, ...] = ("single", "multi-direct", "multi-monitor")


def runs_in(layout: Layout) -> int:
    return RUNS if layout == "single" else MULTI_RUNS


@pytest.fixture(params=LAYOUTS)
def layout(request: pytest.FixtureRequest) -> Layout:
    chosen: Layout = request.param
    return chosen


@pytest.fixture
async def world(
    fresh_db: str, tmp_path: Path, layout: Layout, request: pytest.FixtureRequest
) -> AsyncIterator[ChaosWorld]:
    redis = request.getfixturevalue("monitor_redis") if layout == "multi-monitor" else None
    async with chaos_world(
        fresh_db, tmp_path, seed=11, nodes=4, chutes=60, layout=layout, monitor_redis=redis
    ) as w:
        w.open_targets(w.launchable())
        yield w


async def one_run(world: ChaosWorld, tally: ChaosTally, seed: int, guarded: list[int]) -> str:
    rng = random.Random(seed)
    # Each run's recovery moves the clock 31 min on; rows get their created_at from the
    # database's real clock, so the shift starts from zero again (or every new row would look
    # hours old to the next run's reconcile).
    world.clock.shift = timedelta()
    # a healthy process works for a while: one autoscaler round, then pods come up
    process = await start_process(world.settings, clock=world.clock)
    try:
        await process.rt.sync.sync_all()
        await process.autoscaler.run_round()
        await settle(process.rt)
        protected = await healthy(world, process.rt)
        rows = [d.deployment_id for d in await process.rt.inventory.list_deployments()]
    finally:
        await process.close()

    rt = await build_runtime(world.settings, clock=world.clock)
    await rt.sync.sync_all()
    doomed = DoomedProcess(world, rt, trip_at=rng.randint(1, 40), seed=seed)
    removed_on_purpose: set[str] = set()
    operator = Deployer(
        doomed.deployer._inventory,
        doomed.deployer._state,
        doomed.deployer._cluster,
        doomed.deployer._validators,
        clock=world.clock,
        undeploy_wait_seconds=5,
    )
    undeploy = doomed.deployer.undeploy

    async def preempting_undeploy(deployment_id: str, reason: str, **kw: Any) -> Any:
        removed_on_purpose.add(deployment_id)  # the autoscaler's victims go on purpose
        return await undeploy(deployment_id, reason, **kw)

    doomed.deployer.undeploy = preempting_undeploy  # type: ignore[method-assign]

    work: list[Awaitable[object]] = []
    kinds = rng.choices(
        ["autoscale", "deploy", "undeploy", "reconcile"], weights=[3, 3, 2, 1], k=rng.randint(2, 5)
    )
    for kind in kinds:
        if kind == "autoscale":
            work.append(doomed.autoscaler.run_round())
        elif kind == "deploy":
            request = await free_pair(rt, rng)
            if request is not None:
                work.append(operator.deploy(request))
        elif kind == "undeploy" and rows:
            victim = rng.choice(rows)
            removed_on_purpose.add(victim)
            work.append(operator.undeploy(victim, "operator (chaos)"))
        elif kind == "reconcile":
            work.append(doomed.reconciler.run_once())
    tasks = [asyncio.ensure_future(w) for w in work]
    # What a task raised before the kill is the code's own doing; after it, the process is
    # dead (a local pool.terminate() makes asyncpg raise odd things no real SIGKILL would run).
    alive_when_done: dict[asyncio.Future[object], bool] = {}
    for task in tasks:
        task.add_done_callback(lambda t: alive_when_done.setdefault(t, not doomed.wire.tripped))
    tally.run("crash: operations in flight", len(tasks))
    if tasks:
        await asyncio.wait(tasks, timeout=SAFETY_NET_SECONDS)
    where = doomed.wire.where
    if where is None:  # the seeded point lay past the work: the process dies idle
        doomed.wire.where = "idle"
        rt.pool.terminate()
        world.sever()
        where = f"idle after {doomed.wire.count} ticks"
        tally.fault("crash: SIGKILL-equivalent while idle")
    else:
        tally.fault("crash: SIGKILL-equivalent mid-operation")
    for task in tasks:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    unexpected = [
        repr(o)
        for t, o in zip(tasks, outcomes, strict=True)
        if alive_when_done.get(t)
        and isinstance(o, BaseException)
        and not isinstance(o, ProcessDied | GepettoError | asyncio.CancelledError)
    ]
    tally.expect(not unexpected, f"seed {seed}: untranslated errors {unexpected}")
    world.heal()
    await rt.close()

    # restart on the same database; past the stub deadline, reconcile converges
    world.clock.advance(minutes=31)
    async with runtime_of(world) as fresh:
        await reconcile_until_quiet(world, fresh)
        await check_invariants(
            tally, world, fresh, protected - removed_on_purpose, f"seed {seed} ({where})"
        )
    tally.run(f"crash: in-process kill + restart + reconcile ({world.layout})")
    guarded.append(len(protected - removed_on_purpose))
    return where


async def test_crash_anywhere_in_process(world: ChaosWorld, tally: ChaosTally) -> None:
    points: list[str] = []
    guarded: list[int] = []
    runs = runs_in(world.layout)
    for run in range(runs):
        points.append(await one_run(world, tally, BASE_SEED * 1000 + run, guarded))
    print(f"{world.layout}: crash points: {points}")
    print(f"healthy deployments guarded per run: {guarded}")
    # the runs must have had healthy deployments at stake
    assert sum(1 for g in guarded if g) >= runs // 2, guarded
    # the seeds must have reached real work, not only idle processes
    mid = [p for p in points if not p.startswith("idle")]
    assert len(mid) >= runs // 3, points  # about two thirds here; a full fleet idles more
    assert any("cluster." in p for p in mid) and any("db." in p for p in mid), points
