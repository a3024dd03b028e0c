"""Crash anywhere in deploy or undeploy: the process dies after step N (its database, cluster and
validator connections go with it, so nothing is rolled back), a fresh process starts on the same
database, and the next reconcile pass converges without removing anything healthy."""

from __future__ import annotations

import pytest

from gepetto_core.errors import GepettoError
from gepetto_core.models.inventory import Deployment
from gepetto_core.services.deployer import DeployRequest, DeployStep
from gepetto_sandbox.validator import Fault
from gepetto_sandbox.validator.faults import ROUTES
from tests.support.fleet_layouts import in_every_layout

from .conftest import Miner, eventually


class ProcessDied(Exception):
    pass


async def sever(m: Miner) -> None:
    """Everything the dying process could still reach becomes unreachable to it."""
    await m.rt.pool.close()
    m.cluster.inject_api_error("/", status=500, times=None)
    for route in ROUTES - {"socket"}:
        m.world.validator.inject_fault(route, Fault(status=503))


def heal(m: Miner) -> None:
    m.cluster.clear_faults()
    m.world.validator.clear_faults()


async def healthy_deployment(m: Miner, chute: dict[str, object], server_id: str) -> Deployment:
    result = await m.rt.deployer.deploy(DeployRequest(str(chute["chute_id"]), server_id))
    report = None

    async def verified() -> bool:
        nonlocal report
        report = await m.rt.reconciler.run_once()
        row = await m.rt.inventory.get_deployment(result.deployment.deployment_id)
        return bool(row and row.verified_at and row.active)

    await eventually(verified)
    return result.deployment


async def assert_converged(m: Miner, keep: Deployment) -> None:
    rows = {d.deployment_id: d for d in await m.rt.inventory.list_deployments()}
    assert keep.deployment_id in rows, "a healthy deployment was removed"
    # every claimed GPU belongs to a live deployment (the FK guarantees the row exists)
    for gpu in await m.rt.inventory.list_gpus():
        if gpu.deployment_id:
            assert gpu.deployment_id in rows

    # every Job and Service belongs to a row (foreground deletion may take a moment)
    async def untracked() -> list[str]:
        return [
            f"{kind}/{obj['metadata']['name']}"
            for kind in ("jobs", "services")
            for obj in m.cluster.objects(kind, "chutes", "chutes/deployment-id")
            if obj["metadata"]["labels"]["chutes/deployment-id"] not in rows
        ]

    async def none_untracked() -> bool:
        return not await untracked()

    await eventually(none_untracked)
    # every row has its Job (no row points at nothing)
    jobs = {
        j["metadata"]["labels"]["chutes/deployment-id"]
        for j in m.cluster.objects("jobs", "chutes", "chutes/deployment-id")
    }
    assert set(rows) <= jobs
    # every validator instance of ours is tracked
    tracked = {d.instance_id for d in rows.values()} | {d.config_id for d in rows.values()}
    for inst in m.world.validator.world.instances.values():
        if inst["miner_hotkey"] == m.rt.miner_hotkey:
            assert inst["instance_id"] in tracked or inst.get("config_id") in tracked


@pytest.mark.parametrize(
    "crash_after",
    [DeployStep.CLAIMED, DeployStep.LAUNCH_CONFIG, DeployStep.SERVICE_AND_JOB, DeployStep.RECORDED],
)
@in_every_layout
async def test_deploy_crash_after_each_step_converges(
    miner: Miner, crash_after: DeployStep
) -> None:
    chute = miner.launch_chute()
    server_id = miner.server_for(chute)
    keep = await healthy_deployment(miner, chute, server_id)

    async def die(step: DeployStep, detail: str) -> None:
        if step is crash_after:
            await sever(miner)
            raise ProcessDied(step)

    with pytest.raises((ProcessDied, GepettoError)):
        await miner.rt.deployer.deploy(DeployRequest(chute["chute_id"], server_id), die)
    heal(miner)
    rt = await miner.restart()

    # a pass right away must not remove the healthy deployment nor a young half-made one
    await rt.reconciler.run_once()
    assert await rt.inventory.get_deployment(keep.deployment_id) is not None
    # past the stub deadline, what the crash left is either healthy (its pod came up and
    # the validator knows it) or gone
    miner.clock.advance(minutes=31)
    await rt.reconciler.run_once()
    await rt.reconciler.run_once()
    await assert_converged(miner, keep)


@pytest.mark.parametrize("crash_before", ["validator purge", "cluster delete"])
@in_every_layout
async def test_undeploy_crash_converges(miner: Miner, crash_before: str) -> None:
    chute = miner.launch_chute()
    server_id = miner.server_for(chute)
    keep = await healthy_deployment(miner, chute, server_id)
    doomed = await healthy_deployment(miner, chute, server_id)

    # The row goes first; then the process dies before the validator or the cluster heard.
    if crash_before == "validator purge":
        await miner.rt.inventory.delete_deployment(doomed.deployment_id)
    else:
        row = await miner.rt.inventory.delete_deployment(doomed.deployment_id)
        assert row is not None and row.instance_id
        await miner.rt.validators[row.validator].delete_instance(row.chute_id, row.instance_id)
    await sever(miner)
    heal(miner)
    rt = await miner.restart()
    report = await rt.reconciler.run_once()
    assert report.plan.complete, report.plan.problems
    await assert_converged(miner, keep)
    assert (
        miner.cluster.objects("jobs", "chutes", f"chutes/deployment-id={doomed.deployment_id}")
        == []
    )
