"""Reconcile never acts on partial information, and the failure ledger drives back-off."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gepetto_core.scheduling.backoff import backoff_state
from gepetto_core.scheduling.policy import BackoffPolicy
from gepetto_core.scheduling.reconcile_actions import RemoveDeployment
from gepetto_core.services.deployer import DeployRequest
from gepetto_core.services.ledger import load_failure_records
from gepetto_sandbox.cluster import PodFault
from gepetto_sandbox.validator import Fault
from tests.support.fleet_layouts import in_every_layout

from .conftest import Miner, eventually


async def two_deployments_one_broken(m: Miner) -> tuple[str, str]:
    """Two deployments; the second's Job is deleted behind gepetto's back (reconcile would
    remove it when the information is complete)."""
    chute = m.launch_chute()
    server_id = m.server_for(chute)
    ok = await m.rt.deployer.deploy(DeployRequest(chute["chute_id"], server_id))
    broken = await m.rt.deployer.deploy(DeployRequest(chute["chute_id"], server_id))
    await m.rt.cluster.undeploy(broken.deployment.deployment_id, wait_seconds=60)

    async def instance_up() -> bool:  # so the validator's instance stream is not empty
        return any(
            i.get("config_id") == ok.deployment.config_id
            for i in m.world.validator.world.instances.values()
        )

    await eventually(instance_up)
    return ok.deployment.deployment_id, broken.deployment.deployment_id


@pytest.mark.parametrize(
    "fault",
    [
        "cluster jobs 500",
        "cluster nodes 500",
        "validator instances 503",
        "validator instances truncated",
        "validator chutes bad line",
    ],
)
async def test_a_failed_listing_makes_reconcile_delete_nothing(miner: Miner, fault: str) -> None:
    ok, broken = await two_deployments_one_broken(miner)
    miner.clock.advance(minutes=10)
    match fault:
        case "cluster jobs 500":
            miner.cluster.inject_api_error(
                "/apis/batch/v1/namespaces/chutes/jobs", method="GET", status=500, times=None
            )
        case "cluster nodes 500":
            miner.cluster.inject_api_error("/api/v1/nodes", status=500, times=None)
        case "validator instances 503":
            miner.world.validator.inject_fault("instances", Fault(status=503))
        case "validator instances truncated":
            miner.world.validator.inject_fault("instances", Fault(truncate_after=0))
        case "validator chutes bad line":
            miner.world.validator.inject_fault("chutes", Fault(bad_line_after=3))
    report = await miner.rt.reconciler.run_once()
    assert not report.plan.complete
    assert report.plan.destructive == []
    assert {d.deployment_id for d in await miner.rt.inventory.list_deployments()} == {ok, broken}
    assert len(await miner.rt.inventory.list_chutes()) > 0

    # once the dependency recovers, the broken deployment (and only it) goes
    miner.cluster.clear_faults()
    miner.world.validator.clear_faults()
    report = await miner.rt.reconciler.run_once()
    assert [a.deployment_id for a in report.plan.of_type(RemoveDeployment)] == [broken]  # type: ignore[attr-defined]
    assert {d.deployment_id for d in await miner.rt.inventory.list_deployments()} == {ok}


@in_every_layout
async def test_a_deploy_that_dies_after_5_minutes_backs_off_the_chute(miner: Miner) -> None:
    chute = miner.launch_chute()
    server_id = miner.server_for(chute)
    miner.cluster.script_fault(
        chute["chute_id"], PodFault("crash", exit_code=137, after_seconds=0.1)
    )
    started = miner.clock()
    result = await miner.rt.deployer.deploy(DeployRequest(chute["chute_id"], server_id))

    async def crashed() -> bool:
        jobs = miner.cluster.objects(
            "jobs", "chutes", f"chutes/deployment-id={result.deployment.deployment_id}"
        )
        return bool(jobs and jobs[0].get("status", {}).get("failed"))

    await eventually(crashed)
    miner.clock.advance(minutes=5)
    report = await miner.rt.reconciler.run_once()
    [removal] = report.plan.of_type(RemoveDeployment)
    assert isinstance(removal, RemoveDeployment) and removal.end == "failure"
    assert "exit 137" in removal.reason

    policy = BackoffPolicy(chute_distinct_servers=1)
    records = await load_failure_records(miner.rt.state)
    state = backoff_state(records, miner.clock(), policy)
    assert state.chute_block(chute["chute_id"]) is not None
    assert state.pair_block(chute["chute_id"], server_id) is not None

    # the ledger survives a restart
    rt = await miner.restart()
    records = await load_failure_records(rt.state)
    assert backoff_state(records, miner.clock(), policy).chute_block(chute["chute_id"])

    # after the cool-down (1 h by default, from the recorded end) the chute is eligible again;
    # the end is read back because the clock also runs in real time while the crash is seen
    [ended_at] = [r.ended_at for r in records if r.chute_id == chute["chute_id"]]
    assert ended_at is not None and ended_at >= started + timedelta(minutes=5)
    later = ended_at + timedelta(hours=1, seconds=1)
    assert backoff_state(records, later, policy).chute_block(chute["chute_id"]) is None

    # an operator can clear it early
    assert await rt.state.forgive(miner.clock(), "U-operator", chute_id=chute["chute_id"]) == 1
    records = await load_failure_records(rt.state)
    assert backoff_state(records, miner.clock(), policy).chute_block(chute["chute_id"]) is None
