"""Operators deploy and undeploy from Slack and the CLI while the autoscaler runs: 1,000
randomized operations (seeded). Slack deploys go through pending actions clicked by up to three
people at once, exactly as a button does (compare-and-set to `executing`, then the command layer);
CLI ones through the command layer directly. Checked throughout and at the end: no GPU is given
to two deployments (in the database and in the pods' NVIDIA_VISIBLE_DEVICES), every deployment
holds its chute's GPU count on its own server, and no pending action runs twice."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.approvals import PendingActions
from gepetto_core.commands.execute import execute
from gepetto_core.commands.registry import Caller
from gepetto_core.errors import GepettoError
from gepetto_core.process import start_process

from .conftest import ChaosTally
from .invariants import check_invariants
from .world import ChaosWorld, chaos_world

pytestmark = pytest.mark.chaos

OPERATIONS = int(os.environ.get("GEPETTO_CHAOS_OPERATIONS", "1000"))
CLI = Caller(actor="cli:chaos", source="cli", role="admin")
SLACK_USERS = [Caller(actor=f"U0OP{i}", source="slack", role="operator") for i in range(3)]


@pytest.fixture
async def world(fresh_db: str, tmp_path: Path) -> AsyncIterator[ChaosWorld]:
    async with chaos_world(fresh_db, tmp_path, seed=21, nodes=3, chutes=40) as w:
        w.open_targets(w.launchable(), target=500)
        yield w


def pod_devices(world: ChaosWorld) -> Counter[str]:
    """GPU uuids handed to live pods (each must appear once)."""
    seen: Counter[str] = Counter()
    for pod in world.sandbox.cluster.objects("pods", "chutes", "chutes/deployment-id"):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        env = {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env", [])}
        seen.update(d for d in str(env.get("NVIDIA_VISIBLE_DEVICES", "")).split(",") if d)
    return seen


async def test_thousand_operations_with_the_autoscaler_running(
    world: ChaosWorld, tally: ChaosTally
) -> None:
    rng = random.Random(1000)
    process = await start_process(world.settings, clock=world.clock)
    rt = process.rt
    pending = PendingActions(rt.state, clock=world.clock)
    chutes = [c.chute_id for c in await rt.inventory.list_chutes() if not c.tee][:12]
    servers = [s.server_id for s in await rt.inventory.list_servers()]
    executions: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    stop = asyncio.Event()

    async def autoscaler() -> None:
        while not stop.is_set():
            await process.autoscaler.run_round()
            await asyncio.sleep(0.05)

    async def check_gpus(label: str) -> None:
        # one statement, so the check sees one consistent moment
        wrong = await rt.pool.fetch(
            """
            SELECT d.deployment_id, count(g.gpu_id) AS held, c.gpu_count,
                   bool_and(g.server_id = d.server_id) AS same_server
            FROM deployments d
            JOIN chutes c ON c.chute_id = d.chute_id
            LEFT JOIN gpus g ON g.deployment_id = d.deployment_id
            GROUP BY d.deployment_id, c.gpu_count
            HAVING count(g.gpu_id) <> c.gpu_count OR NOT bool_and(g.server_id = d.server_id)
            """
        )
        tally.expect(not wrong, f"{label}: GPU claims off: {[dict(r) for r in wrong]}")
        doubled = [d for d, n in pod_devices(world).items() if n > 1]
        tally.expect(not doubled, f"{label}: GPUs given to two pods: {doubled}")

    async def click(action_id: str, user: Caller) -> None:
        action = await pending.get(action_id)
        assert action is not None
        started = await pending.move(action, "executing", by=user.actor, decision="confirmed")
        if started is None:
            outcomes["click: already taken"] += 1
            return
        executions[action_id] += 1
        try:
            await execute(list(action.arguments["argv"]), user, rt, confirmed=True)
            await pending.finish(started, True, "done")
            outcomes["slack deploy: done"] += 1
        except GepettoError as e:
            await pending.finish(started, False, str(e))
            outcomes[f"slack deploy: {type(e).__name__}"] += 1

    async def operation(i: int) -> None:
        kind = rng.choices(["cli deploy", "slack deploy", "undeploy", "read"], [4, 3, 3, 1])[0]
        argv = ["deploy", "-c", rng.choice(chutes), "-s", rng.choice(servers), "--no-wait"]
        try:
            if kind == "cli deploy":
                await execute(argv, CLI, rt, confirmed=True)
            elif kind == "slack deploy":
                requester = rng.choice(SLACK_USERS)
                offer = await pending.create(
                    verb="deploy",
                    arguments={"argv": argv},
                    requested_by=requester.actor,
                    policy="confirm",
                    ttl=timedelta(minutes=15),
                )
                clickers = rng.sample(SLACK_USERS, rng.randint(1, 3))
                await asyncio.gather(*(click(offer.action_id, u) for u in clickers))
            elif kind == "undeploy":
                rows = await rt.inventory.list_deployments()
                if rows:
                    victim = rng.choice(rows).deployment_id
                    await execute(["undeploy", "-i", victim], CLI, rt, confirmed=True)
            else:
                await execute(rng.choice(["nodes", "pods"]), rng.choice(SLACK_USERS), rt)
            outcomes[f"{kind}: ok"] += 1
        except GepettoError as e:
            outcomes[f"{kind}: {type(e).__name__}"] += 1
        except Exception as e:  # anything else escaping the command layer is a bug
            failures.append(f"operation {i} ({kind}): {e!r}")
        if i % 100 == 0:
            await check_gpus(f"after operation {i}")

    scaler = asyncio.create_task(autoscaler())
    try:
        gate = asyncio.Semaphore(12)

        async def gated(i: int) -> None:
            async with gate:
                await operation(i)

        await asyncio.gather(*(gated(i) for i in range(OPERATIONS)))
    finally:
        stop.set()
        await scaler
    tally.run("concurrency: randomized operations", OPERATIONS)
    tally.fault("concurrency: clicks that lost the race", outcomes["click: already taken"])
    print(f"outcomes: {dict(sorted(outcomes.items()))}")
    tally.expect(not failures, f"untranslated errors: {failures[:5]}")
    twice = [a for a, n in executions.items() if n > 1]
    tally.expect(not twice, f"pending actions executed twice: {twice}")
    await check_gpus("at the end")
    audit = [a for a in await rt.state.list_audit(limit=5000) if a.source == "slack"]
    # a click that won is audited when its plan still holds (a full server is refused
    # before anything is done); nothing is audited as run without a winning click
    tally.expect(
        len([a for a in audit if a.allowed and a.verb == "deploy"]) <= sum(executions.values()),
        "more Slack deploys audited than clicks that won",
    )
    # some of every kind really happened (the test exercised what it claims)
    assert outcomes["cli deploy: ok"] and outcomes["slack deploy: done"], outcomes
    assert outcomes["undeploy: ok"] and outcomes["click: already taken"], outcomes
    try:
        await rt.reconciler.run_once()
        await check_invariants(tally, world, rt, set(), "after 1,000 operations")
    finally:
        await process.close()
