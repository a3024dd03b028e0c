"""KubeCluster against the sandbox over real HTTP with kubernetes-asyncio."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from kubernetes_asyncio import client
from pydantic import SecretStr

from gepetto_core import kube_objects as ko
from gepetto_core.adapters.kube import KubeCluster
from gepetto_core.adapters.kube_connect import connect_api
from gepetto_core.errors import (
    ClusterConflictError,
    ClusterForbiddenError,
    ClusterNotFoundError,
    ClusterUnavailableError,
)
from gepetto_core.models.cluster import ChuteJobView
from gepetto_sandbox.cluster import FleetNode, PodFault, SandboxCluster
from gepetto_sandbox.cluster.controllers import PODS


def env_of(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


async def test_nodes_are_servers(cluster: KubeCluster, fleet: list[FleetNode]) -> None:
    nodes = {n.name: n for n in await cluster.list_nodes()}
    assert set(nodes) == {f.name for f in fleet}
    for fleet_node in fleet:
        view = nodes[fleet_node.name]
        assert view.server_id == fleet_node.uid
        assert view.ready and view.worker
        assert view.gpu_short_ref == fleet_node.gpu_type
        assert view.gpu_count == fleet_node.gpu_count
        assert view.is_tee == fleet_node.tee
        assert view.external_ip == fleet_node.external_ip
        assert view.validator == fleet_node.validator


async def test_deploy_reads_back_and_undeploy_waits_for_pods(
    cluster: KubeCluster,
    sandbox: SandboxCluster,
    fleet: list[FleetNode],
    rows: Any,
    eventually: Any,
) -> None:
    node = fleet[0]
    server, chute = rows.server(node), rows.chute(gpu_count=2)
    deployment = rows.deployment(chute, server, config_id="cfg-1")
    launch = ko.LaunchParams(
        launch_token=SecretStr("jwt-token"),
        job_ports=ko.normalize_job_ports([{"port": 7000, "proto": "tcp"}]),
    )
    deployed = await cluster.deploy_chute(chute, server, rows.gpus(node, 2), deployment, launch)
    dep_id = deployment.deployment_id
    assert deployed.job_name == f"chute-{dep_id}"
    assert deployed.service.name == f"chute-service-{dep_id}"

    # The Job's env carries the node ports the API server allocated to the Service.
    (raw_job,) = sandbox.objects("jobs", "chutes", f"chutes/deployment-id={dep_id}")
    env = env_of(raw_job)
    assert env["CHUTES_PORT_PRIMARY"] == str(deployed.primary_port)
    assert env["CHUTES_PORT_LOGGING"] == str(deployed.service.node_port(8001))
    assert env["CHUTES_PORT_TCP_7000"] == str(deployed.service.node_port(7000))
    assert env["NVIDIA_VISIBLE_DEVICES"].count("GPU-") == 2
    assert 30000 <= deployed.primary_port <= 32767

    async def ready() -> ChuteJobView | None:
        # The pod turns ready first; the Job controller counts it a moment later.
        job = await cluster.get_chute_job(dep_id)
        return job if job.ready and job.status.ready == 1 else None

    job = await eventually(ready)
    assert job.deployment_id == dep_id and job.chute_id == chute.chute_id
    assert job.config_id == "cfg-1" and job.node_name == node.name
    assert job.status.active == 1 and job.status.ready == 1
    (pod,) = job.pods
    assert pod.phase == "Running" and pod.state is not None and pod.state.state == "running"
    listed = {j.deployment_id: j for j in await cluster.list_chute_jobs()}
    assert listed[dep_id].pods[0].name == pod.name
    assert "cfg-1" in await cluster.config_ids_in_use()
    services = {s.deployment_id for s in await cluster.list_chute_services()}
    assert dep_id in services

    assert await cluster.undeploy(dep_id, wait_seconds=60) is True
    assert await cluster.list_pods("chutes", f"chutes/deployment-id={dep_id}") == []
    with pytest.raises(ClusterNotFoundError):
        await cluster.get_chute_job(dep_id)
    assert dep_id not in {s.deployment_id for s in await cluster.list_chute_services()}
    # The Job was deleted with foreground propagation (its pods first).
    pod_deletes = [
        r for r in sandbox.requests if r.method == "DELETE" and f"chute-{dep_id}" in r.path
    ]
    assert "propagationPolicy=Foreground" in pod_deletes[0].query
    # Deleting what is already gone is not an error.
    assert await cluster.undeploy(dep_id, wait_seconds=1) is True


async def test_freed_node_port_can_be_reused(
    cluster: KubeCluster, api: client.ApiClient, fleet: list[FleetNode], rows: Any
) -> None:
    server, chute = rows.server(fleet[1]), rows.chute()
    deployment = rows.deployment(chute, server)
    service = await cluster.create_service(chute, deployment, ko.LaunchParams())
    port = service.node_port(8000)
    core = client.CoreV1Api(api)
    clash = {
        "metadata": {"name": "clash"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]},
    }
    with pytest.raises(client.ApiException) as caught:
        await core.create_namespaced_service("chutes", clash)
    assert caught.value.status == 422
    assert await cluster.undeploy(deployment.deployment_id, wait_seconds=1)
    created = await core.create_namespaced_service("chutes", clash)
    assert created.spec.ports[0].node_port == port
    await core.delete_namespaced_service("clash", "chutes")


async def test_node_disk_arithmetic_and_cache(
    cluster: KubeCluster,
    sandbox: SandboxCluster,
    fleet: list[FleetNode],
    rows: Any,
    eventually: Any,
) -> None:
    node = fleet[2]
    disk = await cluster.node_disk(node.name)
    assert disk.total_gib == node.ephemeral_gib
    assert disk.requested_gib == 0
    assert disk.available_gib == node.ephemeral_gib - 20

    server, chute = rows.server(node), rows.chute()
    deployment = rows.deployment(chute, server)
    await cluster.deploy_chute(
        chute, server, rows.gpus(node, 1), deployment, ko.LaunchParams(disk_gb=150)
    )
    # deploy invalidated the cache: the new Job's pod (Pending or Running) counts once the
    # Job controller has made it.
    dep_selector = f"chutes/deployment-id={deployment.deployment_id}"
    await eventually(lambda: cluster.list_pods("chutes", dep_selector))
    after = await cluster.node_disk(node.name)
    assert after.requested_gib == 150
    assert after.available_gib == node.ephemeral_gib - 150 - 20
    assert await cluster.has_disk_available(node.name, after.available_gib)
    assert not await cluster.has_disk_available(node.name, after.available_gib + 1)

    # A pod made behind the adapter's back is only seen once the cache is invalidated.
    sandbox.core.create(
        PODS,
        "default",
        {
            "metadata": {"name": "squatter"},
            "spec": {
                "nodeName": node.name,
                "containers": [
                    {
                        "name": "c",
                        "image": "x",
                        "resources": {"requests": {"ephemeral-storage": "30Gi"}},
                    }
                ],
            },
        },
    )
    assert (await cluster.node_disk(node.name)).requested_gib == 150
    cluster.invalidate_disk(node.name)
    assert (await cluster.node_disk(node.name)).requested_gib == 180

    assert await cluster.undeploy(deployment.deployment_id, wait_seconds=60)
    assert (await cluster.node_disk(node.name)).requested_gib == 30


async def test_code_configmap_for_old_chutes(
    cluster: KubeCluster, api: client.ApiClient, fleet: list[FleetNode], rows: Any
) -> None:
    server, chute = rows.server(fleet[4]), rows.chute(chutes_version="0.2.9")
    deployment = rows.deployment(chute, server)
    await cluster.deploy_chute(chute, server, rows.gpus(fleet[4], 1), deployment, ko.LaunchParams())
    name = ko.code_configmap_name(chute.chute_id, chute.version)
    cm = await client.CoreV1Api(api).read_namespaced_config_map(name, "chutes")
    assert cm.data == {"chute_file.py": chute.code}
    changed = chute.model_copy(update={"code": "print('v2')"})
    await cluster.ensure_code_configmap(changed)  # kept: not forced
    cm = await client.CoreV1Api(api).read_namespaced_config_map(name, "chutes")
    assert cm.data == {"chute_file.py": chute.code}
    await cluster.ensure_code_configmap(changed, replace=True)
    cm = await client.CoreV1Api(api).read_namespaced_config_map(name, "chutes")
    assert cm.data == {"chute_file.py": "print('v2')"}
    await cluster.undeploy(deployment.deployment_id, wait_seconds=60)
    await cluster.delete_code_configmap(chute.chute_id, chute.version)
    await cluster.delete_code_configmap(chute.chute_id, chute.version)  # gone is fine
    with pytest.raises(client.ApiException):
        await client.CoreV1Api(api).read_namespaced_config_map(name, "chutes")


async def test_failed_job_creation_removes_the_service(
    cluster: KubeCluster, sandbox: SandboxCluster, fleet: list[FleetNode], rows: Any
) -> None:
    server, chute = rows.server(fleet[5]), rows.chute()
    deployment = rows.deployment(chute, server)
    sandbox.inject_api_error(r"/namespaces/chutes/jobs$", method="POST", status=500)
    with pytest.raises(ClusterUnavailableError):
        await cluster.deploy_chute(
            chute, server, rows.gpus(fleet[5], 1), deployment, ko.LaunchParams()
        )
    dep_id = deployment.deployment_id
    assert sandbox.objects("services", "chutes", f"chutes/deployment-id={dep_id}") == []


async def test_scripted_faults_show_in_job_views(
    cluster: KubeCluster,
    sandbox: SandboxCluster,
    fleet: list[FleetNode],
    rows: Any,
    eventually: Any,
) -> None:
    node = fleet[6]
    server = rows.server(node)
    pull_chute, crash_chute = rows.chute(), rows.chute()
    pull = rows.deployment(pull_chute, server)
    crash = rows.deployment(crash_chute, server)
    sandbox.script_fault(pull.deployment_id, PodFault("image_pull"))
    sandbox.script_fault(crash_chute.chute_id, PodFault("crash", exit_code=3, after_seconds=0.05))
    gpus = rows.gpus(node, 2)
    await cluster.deploy_chute(pull_chute, server, gpus[:1], pull, ko.LaunchParams())
    await cluster.deploy_chute(crash_chute, server, gpus[1:], crash, ko.LaunchParams())

    async def pull_backoff() -> ChuteJobView | None:
        job = await cluster.get_chute_job(pull.deployment_id)
        state = job.pods[0].state if job.pods else None
        return job if state is not None and state.reason == "ImagePullBackOff" else None

    job = await eventually(pull_backoff)
    assert not job.ready and job.pods[0].phase == "Pending"

    async def failed() -> ChuteJobView | None:
        job = await cluster.get_chute_job(crash.deployment_id)
        return job if job.status.failed == 1 else None

    job = await eventually(failed)
    (pod,) = job.pods
    assert pod.phase == "Failed" and pod.state is not None
    assert pod.state.state == "terminated" and pod.state.exit_code == 3
    assert job.status.active == 0 and not job.ready
    for dep in (pull, crash):
        assert await cluster.undeploy(dep.deployment_id, wait_seconds=60)


async def test_node_not_ready(
    cluster: KubeCluster, sandbox: SandboxCluster, fleet: list[FleetNode]
) -> None:
    name = fleet[7].name
    sandbox.set_node_ready(name, False)
    assert not (await cluster.get_node(name)).ready
    sandbox.set_node_ready(name, True)
    assert (await cluster.get_node(name)).ready


async def test_legacy_deployments_listed_and_undeployed(
    cluster: KubeCluster, api: client.ApiClient, eventually: Any
) -> None:
    dep_id = "legacy-0001"
    labels = {"chutes/chute": "true", "chutes/deployment-id": dep_id, "chutes/chute-id": "old"}
    body = {
        "metadata": {"name": f"chute-{dep_id}", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"chutes/deployment-id": dep_id}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"nodeName": "h100-0", "containers": [{"name": "chute", "image": "x"}]},
            },
        },
    }
    await client.AppsV1Api(api).create_namespaced_deployment("chutes", body)
    legacy = {d.deployment_id: d for d in await cluster.list_legacy_deployments()}
    assert legacy[dep_id].is_legacy and legacy[dep_id].node_name == "h100-0"
    assert legacy[dep_id].chute_id == "old"
    assert await cluster.undeploy(dep_id, wait_seconds=60)
    assert dep_id not in {d.deployment_id for d in await cluster.list_legacy_deployments()}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (403, ClusterForbiddenError),
        (500, ClusterUnavailableError),
        (409, ClusterConflictError),
        (404, ClusterNotFoundError),
    ],
)
async def test_api_errors_translate(
    cluster: KubeCluster, sandbox: SandboxCluster, status: int, error: type[Exception]
) -> None:
    sandbox.inject_api_error(r"^/api/v1/nodes$", method="GET", status=status)
    with pytest.raises(error) as caught:
        await cluster.list_nodes()
    assert "list nodes" in str(caught.value)
    assert await cluster.list_nodes()  # the fault was one-off


async def test_real_conflict_and_not_found(
    cluster: KubeCluster, api: client.ApiClient, fleet: list[FleetNode], rows: Any
) -> None:
    server, chute = rows.server(fleet[1]), rows.chute()
    deployment = rows.deployment(chute, server)
    service = await cluster.create_service(chute, deployment, ko.LaunchParams())
    with pytest.raises(ClusterConflictError):
        await cluster.create_service(chute, deployment, ko.LaunchParams())
    # The refused duplicate did not release the live Service's node ports.
    clash = {
        "metadata": {"name": "clash-2"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": service.node_port(8000)}]},
    }
    with pytest.raises(client.ApiException) as caught:
        await client.CoreV1Api(api).create_namespaced_service("chutes", clash)
    assert caught.value.status == 422
    with pytest.raises(ClusterNotFoundError):
        await cluster.get_node("no-such-node")
    with pytest.raises(ClusterNotFoundError):
        await cluster.get_chute_job("no-such-deployment")
    await cluster.undeploy(deployment.deployment_id, wait_seconds=1)


async def test_connection_refused_and_latency(
    settings: ko.JobSettings, sandbox: SandboxCluster, cluster: KubeCluster, api: client.ApiClient
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    config = sandbox.kubeconfig()
    config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{free_port}"
    dead_api = await connect_api(config)
    try:
        with pytest.raises(ClusterUnavailableError):
            await KubeCluster(dead_api, settings).list_nodes()
    finally:
        await dead_api.close()

    slow = KubeCluster(api, settings, request_timeout=0.2)
    sandbox.inject_api_error(r"^/api/v1/nodes$", status=None, delay=2.0)
    with pytest.raises(ClusterUnavailableError, match="timed out"):
        await slow.list_nodes()
    sandbox.clear_faults()
