"""The multi-cluster layout against real API servers: two real control planes (etcd,
kube-apiserver, kube-controller-manager; gepetto_sandbox/control_plane), each one GPU server's
own single-node cluster as in the official layout, side by side on one machine (own ports, own
state directory, one shared PKI: about 420 MiB and 5 s each). gepetto reaches each one only
through the kubeconfig stored in its `servers` row, as its ServiceAccount bound to the Role of
k8s/, through `FleetCluster` with the direct source.

Deploy → reconcile → undeploy, and the delete preflight (which reads the server's cluster again
and compares real resourceVersions; a Job in another server's cluster is vetoed). Skipped like
the rest of the realkube tier when the control plane is not built (GEPETTO_REALKUBE=skip skips
it; CI=true makes that a failure)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from bittensor_wallet import Keypair
from kubernetes_asyncio import client

from gepetto_core import kube_objects as ko
from gepetto_core.adapters.direct_source import DirectSource
from gepetto_core.adapters.kube_fleet import FleetCluster
from gepetto_core.adapters.pg_inventory import PgInventory
from gepetto_core.adapters.pg_state import PgState
from gepetto_core.adapters.server_clusters import ServerClusters
from gepetto_core.adapters.signing import HotkeySigner
from gepetto_core.adapters.validator import HttpValidatorApi
from gepetto_core.models.inventory import Gpu, Server
from gepetto_core.models.validator import is_launch_config_version
from gepetto_core.services.deployer import Deployer, DeployRequest
from gepetto_core.services.reconcile_service import Reconciler
from gepetto_core.services.sync import SyncService
from gepetto_sandbox.cluster import FleetNode, PodTimings, build_fleet
from gepetto_sandbox.control_plane import RealCluster
from gepetto_sandbox.miner import hourly_cost
from gepetto_sandbox.multicluster.clusters import member_node
from gepetto_sandbox.multicluster.kubeconfig import stored_kubeconfig_text
from gepetto_sandbox.validator import SandboxValidator

pytestmark = pytest.mark.realkube
NAMESPACE = "chutes"
SEED = "0x" + "d2" * 32
MINER = Keypair.create_from_seed(SEED).ss58_address
FAST = PodTimings(start_seconds=0.02, ready_seconds=0.02, termination_seconds=0.05)
TIMEOUT = 10.0  # per cluster; a hang detector here, nothing hangs on purpose


@dataclass
class Member:
    """One GPU server: its node and the real control plane that is its whole cluster."""

    node: FleetNode
    real: RealCluster

    @property
    def name(self) -> str:
        return self.node.name

    def stored_kubeconfig(self) -> str:
        """`servers.kubeconfig` as registration stores it: context named after the server,
        gepetto's ServiceAccount token, the cluster's CA."""
        assert self.real.gepetto_token is not None
        plane = self.real.control_plane
        ca = base64.b64encode(plane.pki.ca.read_bytes()).decode()
        return stored_kubeconfig_text(self.name, plane.server, self.real.gepetto_token, ca)

    def batch(self) -> client.BatchV1Api:
        assert self.real.api is not None
        return client.BatchV1Api(self.real.api)

    async def job_names(self) -> set[str]:
        jobs = await self.batch().list_namespaced_job(NAMESPACE, label_selector="chutes/chute")
        return {j.metadata.name for j in jobs.items if j.metadata.deletion_timestamp is None}


@pytest.fixture(scope="module")
async def members(
    realkube_binaries: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Member]]:
    """Two GPU servers, each its own real cluster (started one after the other: the shared PKI
    is made once)."""
    fleet = build_fleet(seed=24, count=2, gpu_types=("h100", "a6000"))
    started: dict[str, Member] = {}
    try:
        for node in fleet:
            real = RealCluster(
                realkube_binaries,
                Path(tmp_path_factory.mktemp(f"control-plane-{node.name}")),
                nodes=[member_node(node)],
                timings=FAST,
            )
            started[node.name] = Member(node, real)
            await real.start()
            # the node as registered: its uid is the API server's (servers.server_id)
            [started[node.name].node] = real.fleet
        yield started
    finally:
        for member in started.values():
            await member.real.stop()


@dataclass
class Miner:
    inventory: PgInventory
    fleet: FleetCluster
    deployer: Deployer
    reconciler: Reconciler
    validator: SandboxValidator
    servers: dict[str, Server]


def launchable(validator: SandboxValidator, gpu_type: str, gpu_count: int) -> list[str]:
    """Public launch-config chutes that fit `gpu_count` GPUs of `gpu_type` (sorted ids)."""
    return sorted(
        c["chute_id"]
        for c in validator.world.chutes.values()
        if c["public"]
        and c["cords"]
        and not c.get("tee")
        and is_launch_config_version(c["chutes_version"])
        and gpu_type in c["node_selector"]["supported_gpus"]
        and c["node_selector"]["gpu_count"] <= gpu_count
    )


async def register(inventory: PgInventory, validator: SandboxValidator, m: Member) -> Server:
    node = m.node
    added = validator.add_server(
        MINER, name=node.name, gpu_identifier=node.gpu_type, gpu_count=node.gpu_count,
        host=node.external_ip, server_id=node.uid, is_tee=node.tee,
    )  # fmt: skip
    server = Server(
        server_id=node.uid,
        validator=validator.hotkey,
        name=node.name,
        ip_address=node.external_ip,
        status="Ready",
        labels=member_node(node).to_object()["metadata"]["labels"],
        gpu_count=node.gpu_count,
        cpu_per_gpu=4,
        memory_per_gpu=32,
        hourly_cost=hourly_cost(node.gpu_type),
        is_tee=node.tee,
        kubeconfig=m.stored_kubeconfig(),
    )
    await inventory.upsert_server(server)
    for gpu in added["gpus"]:
        await inventory.upsert_gpu(
            Gpu(
                gpu_id=gpu["uuid"],
                validator=validator.hotkey,
                server_id=node.uid,
                device_info={"uuid": gpu["uuid"], "index": gpu["device_index"]},
                model_short_ref=node.gpu_type,
                verified=True,
            )
        )
    return server


@pytest.fixture
async def miner(members: dict[str, Member], pool: asyncpg.Pool) -> AsyncIterator[Miner]:
    for member in members.values():
        await clear_chutes(member)
    validator = SandboxValidator(seed=24, miners=[MINER])
    validator.load_generated(40, seed=24)
    await validator.start()
    inventory = PgInventory(pool)
    servers = {name: await register(inventory, validator, m) for name, m in members.items()}
    job_settings = ko.JobSettings(miner_ss58=MINER, namespace=NAMESPACE, shutdown_seconds=5)
    clients = ServerClusters(job_settings, timeout=TIMEOUT)
    source = DirectSource(clients, namespace=NAMESPACE, timeout=TIMEOUT, fanout=8)
    fleet = FleetCluster(
        clients, source, inventory.list_servers, namespace=NAMESPACE, timeout=TIMEOUT, fanout=8
    )
    http = aiohttp.ClientSession()
    signer = HotkeySigner(SEED)
    validators = {
        validator.hotkey: HttpValidatorApi(http, signer, validator.base_url, validator.hotkey)
    }
    sync = SyncService(list(validators.values()))
    state = PgState(pool)
    deployer = Deployer(inventory, state, fleet, validators, undeploy_wait_seconds=60)
    reconciler = Reconciler(inventory, fleet, sync, deployer, validators, state)
    try:
        yield Miner(inventory, fleet, deployer, reconciler, validator, servers)
    finally:
        await fleet.close()
        await source.close()
        await clients.close()
        await http.close()
        await validator.stop()


async def clear_chutes(member: Member) -> None:
    """What an earlier test left, removed as admin."""
    assert member.real.api is not None
    core, batch = client.CoreV1Api(member.real.api), member.batch()
    selector = "chutes/chute"
    await batch.delete_collection_namespaced_job(
        NAMESPACE, label_selector=selector, propagation_policy="Background"
    )
    for service in (await core.list_namespaced_service(NAMESPACE, label_selector=selector)).items:
        await core.delete_namespaced_service(service.metadata.name, NAMESPACE)


async def until(check: Any, seconds: float = 60.0) -> Any:
    """Poll until `check` returns something truthy; fail (not time) after `seconds`."""
    async with asyncio.timeout(seconds):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.05)


def untracked_job(name: str, node: str) -> dict[str, Any]:
    """A chute Job no database row knows (left by a crashed process, say)."""
    labels = {"chutes/chute": "true", "chutes/deployment-id": name.removeprefix("chute-")}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeName": node,
                    "restartPolicy": "Never",
                    "containers": [{"name": "chute", "image": "alice/model:1.0"}],
                },
            },
        },
    }


async def deploy_one(miner: Miner, member: Member) -> str:
    chute_id = launchable(miner.validator, member.node.gpu_type, member.node.gpu_count)[0]
    miner.validator.set_target(chute_id, 10)
    server = miner.servers[member.name]
    result = await miner.deployer.deploy(
        DeployRequest(chute_id, server.server_id, requested_by="U")
    )
    return result.deployment.deployment_id


async def test_deploy_reconcile_undeploy_on_two_real_api_servers(
    miner: Miner, members: dict[str, Member]
) -> None:
    a, b = members.values()
    report = await miner.reconciler.run_once()  # the chutes into the database
    assert report.plan.complete, report.plan.problems

    # deploy: each Job lands in its own server's cluster, and only there
    on_a, on_b = await deploy_one(miner, a), await deploy_one(miner, b)
    assert await a.job_names() == {ko.job_name(on_a)}
    assert await b.job_names() == {ko.job_name(on_b)}

    async def both_ready() -> bool:
        jobs = [await miner.fleet.get_chute_job(d) for d in (on_a, on_b)]
        return all(j.ready for j in jobs)

    await until(both_ready)
    reading = await miner.fleet.read_fleet()
    assert not reading.unknown, reading.unknown
    assert {j.deployment_id for j in reading.jobs or []} == {on_a, on_b}
    assert {n.name for n in reading.nodes or []} == {a.name, b.name}
    assert {h.name: h.state for h in reading.health} == {a.name: "reachable", b.name: "reachable"}

    # reconcile: a Job no row knows, on b, is removed from b; the tracked ones stay
    stray = "chute-00000000-0000-4000-8000-000000000024"
    await b.batch().create_namespaced_job(NAMESPACE, untracked_job(stray, b.name))
    report = await miner.reconciler.run_once()
    assert report.plan.complete, report.plan.problems
    assert not report.failures, report.failures

    async def stray_gone() -> bool:
        return stray not in await b.job_names()

    await until(stray_gone)
    assert await a.job_names() == {ko.job_name(on_a)}
    assert await b.job_names() == {ko.job_name(on_b)}

    # undeploy: from the right cluster, the pods waited out, the GPUs freed
    undone = await miner.deployer.undeploy(on_a, "operator")
    assert undone.removed is not None, undone

    async def a_empty() -> bool:
        return not await a.job_names()

    await until(a_empty)
    assert await b.job_names() == {ko.job_name(on_b)}
    freed = await miner.inventory.list_gpus(miner.servers[a.name].server_id)
    assert all(g.deployment_id is None for g in freed)


async def test_delete_preflight_on_real_resource_versions(
    miner: Miner, members: dict[str, Member]
) -> None:
    a, b = members.values()
    await miner.reconciler.run_once()  # the chutes into the database
    deployment_id = await deploy_one(miner, a)
    server_a = miner.servers[a.name].server_id
    job = ko.job_name(deployment_id)

    await miner.fleet.read_fleet()
    assert await miner.fleet.delete_preflight(deployment_id, server_a) is None

    # the live Job changes after the round's read: the preflight reads the server's cluster
    # again and compares with that (real resourceVersions), so the change is no veto
    before = (await a.batch().read_namespaced_job(job, NAMESPACE)).metadata.resource_version
    await a.batch().patch_namespaced_job(
        job, NAMESPACE, {"metadata": {"annotations": {"touched": "after-the-read"}}}
    )
    after = (await a.batch().read_namespaced_job(job, NAMESPACE)).metadata.resource_version
    assert after != before
    assert await miner.fleet.delete_preflight(deployment_id, server_a) is None

    # the same deployment's Job also in the other server's cluster: not ours to delete blindly
    twin = untracked_job(job, b.name)
    twin["metadata"]["labels"]["chutes/deployment-id"] = deployment_id
    await b.batch().create_namespaced_job(NAMESPACE, twin)
    try:
        await miner.fleet.read_fleet()
        veto = await miner.fleet.delete_preflight(deployment_id, server_a)
        assert veto is not None and b.name in veto, veto
    finally:
        with contextlib.suppress(client.ApiException):
            await b.batch().delete_namespaced_job(job, NAMESPACE, propagation_policy="Background")
