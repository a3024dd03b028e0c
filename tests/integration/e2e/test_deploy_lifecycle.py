"""Deploy -> pod ready -> instance activated -> undeploy, on real PostgreSQL and the sandboxes;
nothing may be left behind in any of the three places."""

from __future__ import annotations

import uuid

import pytest

from gepetto_core.errors import (
    ClusterUnavailableError,
    ConflictError,
    NoCapacityError,
    NotFoundError,
)
from gepetto_core.services.deployer import DeployRequest, DeployStep
from tests.support.fleet_layouts import in_every_layout

from .conftest import Miner, eventually


async def leftovers(m: Miner, deployment_id: str) -> dict[str, object]:
    """Everything that still refers to a deployment, in the database, cluster and validator."""
    rt = m.rt
    selector = f"chutes/deployment-id={deployment_id}"
    return {
        "row": await rt.inventory.get_deployment(deployment_id),
        "gpus": [g.gpu_id for g in await rt.inventory.list_gpus() if g.deployment_id],
        "jobs": m.cluster.objects("jobs", "chutes", selector),
        "services": m.cluster.objects("services", "chutes", selector),
        "pods": m.cluster.objects("pods", "chutes", selector),
        "instances": [
            i
            for i in m.world.validator.world.instances.values()
            if i["miner_hotkey"] == m.rt.miner_hotkey
        ],
    }


def nothing(found: dict[str, object]) -> bool:
    return not any(found.values())


@pytest.mark.usefixtures("events")
@in_every_layout
async def test_deploy_to_active_then_undeploy_leaves_nothing(miner: Miner) -> None:
    chute = miner.launch_chute()
    server_id = miner.server_for(chute)
    seen: list[DeployStep] = []

    async def progress(step: DeployStep, detail: str) -> None:
        seen.append(step)

    result = await miner.rt.deployer.deploy(DeployRequest(chute["chute_id"], server_id), progress)
    d = result.deployment
    assert seen == [
        DeployStep.CLAIMED,
        DeployStep.LAUNCH_CONFIG,
        DeployStep.SERVICE_AND_JOB,
        DeployStep.RECORDED,
    ]
    assert not d.stub and d.config_id and d.port and d.host
    assert len(result.gpus) == chute["node_selector"]["gpu_count"]

    # the pod comes up, claims its launch config; the validator's events reach gepetto
    async def active() -> bool:
        row = await miner.rt.inventory.get_deployment(d.deployment_id)
        return bool(row and row.active and row.instance_id and row.verified_at)

    await eventually(active)
    row = await miner.rt.inventory.get_deployment(d.deployment_id)
    assert row is not None
    activated_at = row.activated_at
    job = miner.cluster.objects("jobs", "chutes", f"chutes/deployment-id={d.deployment_id}")
    assert job and job[0]["spec"]["template"]["spec"]["nodeName"]

    undone = await miner.rt.deployer.undeploy(d.deployment_id, "operator")
    assert undone.was_present and undone.warnings == []
    assert nothing(await leftovers(miner, d.deployment_id))
    [entry] = await miner.rt.state.list_ledger()
    assert entry.end_reason == "operator" and not entry.counts_as_failure
    # the ledger keeps when it became active, for the planner's start-up estimate
    assert entry.activated_at is not None and entry.activated_at == activated_at

    # a second undeploy of the same id is a no-op
    again = await miner.rt.deployer.undeploy(d.deployment_id, "operator")
    assert not again.was_present and again.warnings == []


@in_every_layout
async def test_no_capacity_rolls_back_everything(miner: Miner) -> None:
    chute = miner.launch_chute()
    miner.world.validator.set_target(chute["chute_id"], 0)
    with pytest.raises(NoCapacityError):
        await miner.rt.deployer.deploy(DeployRequest(chute["chute_id"], miner.server_for(chute)))
    assert await miner.rt.inventory.list_deployments() == []
    assert not [g for g in await miner.rt.inventory.list_gpus() if g.deployment_id]
    assert miner.cluster.objects("jobs", "chutes") == []
    assert miner.cluster.objects("services", "chutes") == []
    # not the chute's fault: the ledger does not count it
    assert all(not e.counts_as_failure for e in await miner.rt.state.list_ledger())


@in_every_layout
async def test_a_cluster_failure_mid_deploy_rolls_back(miner: Miner) -> None:
    chute = miner.launch_chute()
    miner.cluster.inject_api_error(
        "/apis/batch/v1/namespaces/chutes/jobs", method="POST", status=500, times=1
    )
    with pytest.raises(ClusterUnavailableError):
        await miner.rt.deployer.deploy(DeployRequest(chute["chute_id"], miner.server_for(chute)))
    assert await miner.rt.inventory.list_deployments() == []
    assert miner.cluster.objects("services", "chutes") == []
    assert not [g for g in await miner.rt.inventory.list_gpus() if g.deployment_id]


async def test_bad_requests_are_refused_and_change_nothing(miner: Miner) -> None:
    chute = miner.launch_chute()
    with pytest.raises(NotFoundError, match="unknown chute"):
        await miner.rt.deployer.deploy(DeployRequest("no-such-chute", miner.server_for(chute)))
    with pytest.raises(NotFoundError, match="unknown server"):
        await miner.rt.deployer.deploy(DeployRequest(chute["chute_id"], "no-such-server"))
    server_id = miner.server_for(chute)
    await miner.rt.inventory.set_server_locked(server_id, True)
    with pytest.raises(ConflictError, match="server is locked"):
        await miner.rt.deployer.deploy(DeployRequest(chute["chute_id"], server_id))
    assert await miner.rt.inventory.list_deployments() == []


@in_every_layout
async def test_a_legacy_chute_is_announced_then_activated_when_ready(miner: Miner) -> None:
    from gepetto_core.services.activator import LegacyActivator

    modern = miner.launch_chute()
    chute = miner.world.validator.add_chute(
        {**modern, "chute_id": str(uuid.uuid4()), "chutes_version": "0.2.50", "version": "legacy1"}
    )
    miner.world.validator.set_target(chute["chute_id"], 20)
    await miner.rt.reconciler.run_once()  # the new chute reaches the inventory
    result = await miner.rt.deployer.deploy(
        DeployRequest(chute["chute_id"], miner.server_for(chute))
    )
    d = result.deployment
    assert d.instance_id and d.config_id is None  # announced, no launch config
    activator = LegacyActivator(miner.rt.inventory, miner.rt.cluster, miner.rt.validators)

    async def activated() -> bool:
        return d.deployment_id in await activator.run_once()

    await eventually(activated)
    row = await miner.rt.inventory.get_deployment(d.deployment_id)
    assert row is not None and row.active and row.activated_at
    assert miner.world.validator.world.instances[d.instance_id]["active"]
