"""Kubernetes and PostgreSQL fail under the running loops. Kubernetes: 500s, 409 conflicts,
410 Gone on pod lists and watches, slow answers, flapping at seeded moments. PostgreSQL: a
private embedded server is stopped for a second and started again while the loops and commands
run. Expected: no removal on bad information, the loops keep running, commands answer (or say
cleanly what is down), and everything converges after recovery."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gepetto_core.adapters.embedded_pg import EmbeddedPostgres
from gepetto_core.commands.execute import execute
from gepetto_core.commands.registry import Caller
from gepetto_core.errors import GepettoError
from gepetto_core.process import GepettoProcess, start_process
from gepetto_core.services.deployer import DeployRequest

from .conftest import ChaosTally
from .invariants import check_invariants
from .world import ChaosWorld, chaos_world, eventually, free_pair, healthy_fleet

pytestmark = pytest.mark.chaos

VIEWER = Caller(actor="U-viewer", source="slack", role="viewer")
FAST_LOOPS = {
    "GEPETTO_SYNC_INTERVAL_SECONDS": "0.3",
    "GEPETTO_RECONCILE_INTERVAL_SECONDS": "0.3",
    "GEPETTO_AUTOSCALE_INTERVAL_SECONDS": "0.3",
}
K8S_PATHS = [
    "/apis/batch/v1/namespaces/chutes/jobs",
    "/api/v1/namespaces/chutes/pods",
    "/api/v1/namespaces/chutes/services",
    "/api/v1/namespaces/chutes/configmaps",
    "/api/v1/nodes",
]


async def commands_answer(rt: object, outcomes: Counter[str], stop: asyncio.Event) -> None:
    """An operator keeps asking while things fail: answers or clean errors only."""
    while not stop.is_set():
        try:
            await execute("nodes", VIEWER, rt)  # type: ignore[arg-type]
            outcomes["answered"] += 1
        except GepettoError as e:
            outcomes[f"refused cleanly: {type(e).__name__}"] += 1
        await asyncio.sleep(0.05)


async def run_with_loops(process: GepettoProcess) -> tuple[asyncio.Task[None], asyncio.Event]:
    stop = asyncio.Event()
    return asyncio.create_task(process.run_loops(stop), name="loops"), stop


@pytest.fixture
async def world(fresh_db: str, tmp_path: Path) -> AsyncIterator[ChaosWorld]:
    async with chaos_world(fresh_db, tmp_path, seed=17, nodes=3, chutes=40, **FAST_LOOPS) as w:
        w.open_targets(w.launchable())
        yield w


async def test_kubernetes_flaps_under_the_loops(world: ChaosWorld, tally: ChaosTally) -> None:
    rng = random.Random(410)
    process = await start_process(world.settings, clock=world.clock)
    rt = process.rt
    try:
        fleet = await healthy_fleet(rt, 3, world)
        world.clock.advance(minutes=10)  # every grace period is past: bad news would bite
        loops, stop = await run_with_loops(process)
        asked: Counter[str] = Counter()
        asking = asyncio.create_task(commands_answer(rt, asked, stop))
        cluster = world.sandbox.cluster
        for _ in range(40):
            kind = rng.choice(["500", "409", "410", "slow"])
            path = rng.choice(K8S_PATHS)
            if kind == "500":
                cluster.inject_api_error(path, status=500, times=rng.randint(1, 4))
            elif kind == "409":
                cluster.inject_api_error(path, method="POST", status=409, times=1)
            elif kind == "410":
                cluster.inject_api_error(path, method="GET", status=410, times=1, reason="Expired")
            else:
                cluster.inject_api_error(path, status=None, delay=0.4, times=2)
            tally.fault(f"kubernetes: {kind}")
            await asyncio.sleep(0.1)
            rows = {d.deployment_id for d in await rt.inventory.list_deployments()}
            tally.expect(set(fleet) <= rows, "a healthy deployment went while Kubernetes flapped")
            tally.expect(not loops.done(), "the loops stopped while Kubernetes flapped")
        world.heal()
        await asyncio.sleep(1.5)  # a few loop turns with Kubernetes answering again
        tally.expect(not loops.done(), "the loops stopped")
        stop.set()
        await loops
        await asking
        print(f"commands during the flapping: {dict(asked)}")
        tally.expect(asked["answered"] > 0, "no command answered")
        await rt.reconciler.run_once()
        await check_invariants(tally, world, rt, set(fleet), "kubernetes flapping")
        tally.run("kubernetes: 4 s of flapping faults under the loops")
    finally:
        await process.close()


async def test_postgres_restarts_under_load(
    tmp_path: Path, service_tmp_path: Path, tally: ChaosTally
) -> None:
    pg = EmbeddedPostgres(service_tmp_path / "pgdata", database="gepetto")
    await asyncio.to_thread(pg.start)
    try:
        async with chaos_world(pg.dsn, tmp_path, seed=19, nodes=3, chutes=40, **FAST_LOOPS) as w:
            w.open_targets(w.launchable())
            process = await start_process(w.settings, clock=w.clock)
            rt = process.rt
            try:
                fleet = await healthy_fleet(rt, 2, w)
                # the autoscaler plans (reads) but leaves room for the deploy at the end
                await rt.state.set_autoscaler_mode("shadow", "chaos test")
                loops, stop = await run_with_loops(process)
                asked: Counter[str] = Counter()
                asking = asyncio.create_task(commands_answer(rt, asked, stop))
                await asyncio.sleep(0.5)

                def restart() -> None:
                    """Fast shutdown (connections cut), a second of outage, start on the same
                    port (with a log file: pg_ctl would otherwise hold our output pipe)."""
                    ctl, data = str(pg._bin / "pg_ctl"), str(pg.data_dir)
                    pg._run(ctl, "-D", data, "-m", "fast", "-w", "stop")
                    time.sleep(1.0)
                    options = f"-h 127.0.0.1 -p {pg.port} -k {data} -c fsync=off"
                    log = str(pg.data_dir / "server.log")
                    pg._run(ctl, "-D", data, "-w", "-t", "30", "-l", log, "-o", options, "start")

                down_before = asked["refused cleanly: StoreError"]
                await asyncio.to_thread(restart)
                tally.fault("postgresql: fast shutdown and restart under load")
                await asyncio.sleep(1.5)
                ended = repr(loops.exception()) if loops.done() else ""
                tally.expect(
                    not loops.done(), f"the loops stopped after a PostgreSQL restart {ended}"
                )
                answered = asked["answered"]

                async def answering_again() -> bool:
                    return asked["answered"] > answered + 3

                await eventually(answering_again)
                # a deploy works again on the restarted database
                request = await free_pair(rt, world=w)
                assert request is not None
                await rt.deployer.deploy(DeployRequest(request.chute_id, request.server_id))
                stop.set()
                await loops
                await asking
                print(f"commands around the restart: {dict(asked)} (before: {down_before})")
                rows = {d.deployment_id for d in await rt.inventory.list_deployments()}
                tally.expect(set(fleet) <= rows, "a deployment was lost over a database restart")
                await rt.reconciler.run_once()
                await check_invariants(tally, w, rt, set(fleet), "postgresql restart")
                tally.run("postgresql: restart under load")
            finally:
                await process.close()
    finally:
        await asyncio.to_thread(pg.stop)
