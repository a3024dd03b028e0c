"""deploy → pod Running → crash → back-off, end to end on the real control plane: gepetto's
runtime (as its ServiceAccount, with the Role of k8s/) deploys a chute from the validator
sandbox onto a node the fake kubelet plays, the container crashes with exit 137, the real Job
controller fails the Job, and the next reconcile removes the deployment as a failure and backs
the chute off (the sandbox version is test_reconcile_safety.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from gepetto_core.adapters.kube_connect import connect_api
from gepetto_core.config import load_settings
from gepetto_core.scheduling.backoff import backoff_state
from gepetto_core.scheduling.policy import BackoffPolicy
from gepetto_core.scheduling.reconcile_actions import RemoveDeployment
from gepetto_core.services.deployer import DeployRequest
from gepetto_core.services.ledger import load_failure_records
from gepetto_core.wiring import build_runtime
from gepetto_sandbox.cluster import PodFault, build_fleet
from gepetto_sandbox.miner import SandboxMiner, register_fleet
from gepetto_sandbox.validator import SandboxValidator

from .conftest import FAST, MINER, SEED, Clock, Miner, eventually

pytestmark = pytest.mark.realkube
CHUTE_LABEL = "chutes/chute=true"


async def clear_chutes(api: client.ApiClient) -> None:
    """What earlier tests left in the shared namespace would be orphans to reconcile."""
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    await batch.delete_collection_namespaced_job(
        "chutes", label_selector=CHUTE_LABEL, propagation_policy="Background"
    )
    for service in (await core.list_namespaced_service("chutes", label_selector=CHUTE_LABEL)).items:
        await core.delete_namespaced_service(service.metadata.name, "chutes")
    await client.AppsV1Api(api).delete_collection_namespaced_deployment(
        "chutes", label_selector=CHUTE_LABEL
    )


@pytest.fixture
async def real_miner(fresh_db: str, tmp_path: Path, real_cluster: Any) -> AsyncIterator[Miner]:
    admin = await connect_api(real_cluster.kubeconfig())
    await clear_chutes(admin)
    validator = SandboxValidator(seed=11, miners=[MINER])
    validator.load_generated(60, seed=11)
    await validator.start()
    nodes = [
        dataclasses.replace(n, name=f"e2e-{n.name}")
        for n in build_fleet(seed=11, count=4, validator=validator.hotkey)
    ]
    fleet = [await real_cluster.kubelet.register(n) for n in nodes]
    kubeconfig = tmp_path / "gepetto.kubeconfig"
    kubeconfig.write_text(json.dumps(real_cluster.gepetto_kubeconfig()))
    settings = load_settings(
        {
            "MINER_SS58": MINER,
            "MINER_SEED": SEED,
            "VALIDATORS": json.dumps(
                {
                    "supported": [
                        {
                            "hotkey": validator.hotkey,
                            "api": validator.base_url,
                            "socket": validator.base_url,
                        }
                    ]
                }
            ),
            "POSTGRESQL": fresh_db,
            "KUBECONFIG": str(kubeconfig),
            "GEPETTO_EVENT_SOURCE": "socketio",
            "CHUTE_SHUTDOWN_TIME_SECONDS": "1",
        }
    )
    world = SandboxMiner(validator, real_cluster, MINER, fleet, kubeconfig)
    clock = Clock()
    rt = await build_runtime(settings, clock=clock)
    await register_fleet(world, rt.inventory)
    report = await rt.reconciler.run_once()
    assert report.plan.complete, report.plan.problems
    try:
        yield Miner(world, settings, clock, rt, bridge=None)  # type: ignore[arg-type]
    finally:
        await rt.close()
        await validator.stop()
        for node in nodes:
            await real_cluster.kubelet.unregister(node.name)
        with contextlib.suppress(client.ApiException):
            await clear_chutes(admin)
        await admin.close()


async def test_a_crashing_chute_fails_its_job_and_backs_off(
    real_miner: Miner, real_cluster: Any
) -> None:
    miner = real_miner
    chute = miner.launch_chute()
    server_id = miner.server_for(chute)
    real_cluster.script_fault(
        chute["chute_id"], PodFault("crash", exit_code=137, after_seconds=FAST.ready_seconds * 4)
    )
    result = await miner.rt.deployer.deploy(DeployRequest(chute["chute_id"], server_id))
    dep_id = result.deployment.deployment_id
    cluster = miner.rt.cluster

    async def running() -> bool:
        job = await cluster.get_chute_job(dep_id)
        return bool(job.pods and job.pods[0].phase == "Running")

    async def failed() -> bool:
        job = await cluster.get_chute_job(dep_id)
        return job.status.failed == 1

    # Running first (the fake kubelet plays the container), then the real Job controller
    # counts the crashed pod as failed.
    await eventually(running, 30)
    await eventually(failed, 30)
    job = await cluster.get_chute_job(dep_id)
    assert job.pods[0].state is not None and job.pods[0].state.exit_code == 137

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

    async def removed() -> bool:
        listing = await cluster.read_pods("chutes")
        return not [p for p in listing.pods if p.labels.get("chutes/deployment-id") == dep_id]

    await eventually(removed, 30)
