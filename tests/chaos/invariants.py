"""The invariants every chaos run ends with (after recovery and reconcile):

1. every claimed GPU belongs to a live deployment (a row whose Job exists), with exactly the
   chute's GPU count;
2. every Job and Service belongs to a database row;
3. every validator instance of ours is tracked by a row (instance id or launch config id);
4. no healthy deployment was removed (unless the run removed it on purpose).
"""

from __future__ import annotations

import contextlib
from collections import Counter

from gepetto_core.models.inventory import Deployment
from gepetto_core.wiring import Runtime

from .conftest import ChaosTally
from .world import ChaosWorld, eventually


async def healthy(world: ChaosWorld, rt: Runtime) -> set[str]:
    """Deployments that are verified, active and have their Job: what must survive."""
    jobs = world.job_ids()
    return {
        d.deployment_id
        for d in await rt.inventory.list_deployments()
        if d.verified_at is not None and d.active and not d.stub and d.deployment_id in jobs
    }


async def check_invariants(
    tally: ChaosTally, world: ChaosWorld, rt: Runtime, protected: set[str], label: str
) -> dict[str, Deployment]:
    rows = {d.deployment_id: d for d in await rt.inventory.list_deployments()}
    chutes = {c.chute_id: c for c in await rt.inventory.list_chutes()}

    # 2. every Job and Service belongs to a row (foreground deletion may take a moment)
    async def none_untracked() -> bool:
        return not world.untracked_objects(set(rows))

    with contextlib.suppress(TimeoutError):
        await eventually(none_untracked)
    tally.expect(
        not world.untracked_objects(set(rows)),
        f"{label}: untracked cluster objects {world.untracked_objects(set(rows))}",
    )

    # 1. claimed GPUs belong to live deployments, with the chute's count
    jobs = world.job_ids()
    claims = Counter(g.deployment_id for g in await rt.inventory.list_gpus() if g.deployment_id)
    for deployment_id, n in claims.items():
        row = rows.get(deployment_id)
        tally.expect(row is not None, f"{label}: GPUs claimed by missing row {deployment_id}")
        assert row is not None
        tally.expect(
            deployment_id in jobs, f"{label}: GPUs claimed by {deployment_id} which has no Job"
        )
        chute = chutes.get(row.chute_id)
        tally.expect(
            chute is None or chute.gpu_count == n,
            f"{label}: {deployment_id} holds {n} GPUs",
        )
    tally.expect(set(rows) <= jobs, f"{label}: rows without a Job: {sorted(set(rows) - jobs)}")

    # 3. every validator instance of ours is tracked
    tracked = {d.instance_id for d in rows.values()} | {d.config_id for d in rows.values()}
    untracked = [
        i["instance_id"]
        for i in world.our_instances()
        if i["instance_id"] not in tracked and i.get("config_id") not in tracked
    ]
    tally.expect(not untracked, f"{label}: untracked validator instances {untracked}")

    # 4. healthy deployments survive
    removed = sorted(protected - set(rows))
    tally.expect(not removed, f"{label}: healthy deployments removed: {removed}")
    return rows
