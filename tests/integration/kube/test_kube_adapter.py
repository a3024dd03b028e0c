"""KubeCluster against the sandbox over real HTTP with kubernetes-asyncio: what only the
sandbox can stage (injected API errors and latency, the request log). The behaviour both
backends share is the contract suite, test_contract.py."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client

from gepetto_core import kube_objects as ko
from gepetto_core.adapters.kube import KubeCluster
from gepetto_core.errors import (
    ClusterConflictError,
    ClusterForbiddenError,
    ClusterNotFoundError,
    ClusterUnavailableError,
)
from gepetto_sandbox.cluster import FleetNode, SandboxCluster


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


async def test_undeploy_deletes_the_job_in_the_foreground(
    cluster: KubeCluster, sandbox: SandboxCluster, fleet: list[FleetNode], rows: Any
) -> None:
    server, chute = rows.server(fleet[3]), rows.chute()
    deployment = rows.deployment(chute, server)
    await cluster.deploy_chute(chute, server, rows.gpus(fleet[3], 1), deployment, ko.LaunchParams())
    dep_id = deployment.deployment_id
    assert await cluster.undeploy(dep_id, wait_seconds=60)
    job_deletes = [
        r for r in sandbox.requests if r.method == "DELETE" and r.path.endswith(f"/chute-{dep_id}")
    ]
    assert "propagationPolicy=Foreground" in job_deletes[0].query


async def test_request_timeout(
    settings: ko.JobSettings, sandbox: SandboxCluster, api: client.ApiClient
) -> None:
    slow = KubeCluster(api, settings, request_timeout=0.2)
    sandbox.inject_api_error(r"^/api/v1/nodes$", status=None, delay=2.0)
    with pytest.raises(ClusterUnavailableError, match="timed out"):
        await slow.list_nodes()
    sandbox.clear_faults()


async def test_read_fleet_reads_the_one_cluster_and_reports_a_failed_listing_as_unknown(
    cluster: KubeCluster, sandbox: SandboxCluster, fleet: list[FleetNode], rows: Any
) -> None:
    server, chute = rows.server(fleet[6]), rows.chute()
    deployment = rows.deployment(chute, server)
    await cluster.deploy_chute(chute, server, rows.gpus(fleet[6], 1), deployment, ko.LaunchParams())
    reading = await cluster.read_fleet()
    assert deployment.deployment_id in {j.deployment_id for j in reading.jobs or ()}
    assert reading.nodes and reading.services is not None and reading.unknown == {}
    assert [(h.name, h.state) for h in cluster.cluster_health()] == [("*", "reachable")]

    sandbox.inject_api_error(r"/namespaces/chutes/jobs$", method="GET", status=503)
    reading = await cluster.read_fleet()
    # One failed listing is None (unknown), never an empty list; the others still come back.
    assert reading.jobs is None and reading.nodes
    health = cluster.cluster_health()[0]
    assert health.state == "unreachable" and "503" in (health.error or "")
    assert await cluster.delete_preflight(deployment.deployment_id, server.server_id) is None
    await cluster.undeploy(deployment.deployment_id, wait_seconds=0)


async def test_a_slow_write_is_waited_for_longer_than_a_read(
    settings: ko.JobSettings,
    sandbox: SandboxCluster,
    api: client.ApiClient,
    fleet: list[FleetNode],
    rows: Any,
) -> None:
    """Reads give up after the call timeout; a create a busy API server answers late still
    counts (giving up would leave a Service we think was never made)."""
    patient = KubeCluster(api, settings, request_timeout=0.5, write_timeout=30)
    server, chute = rows.server(fleet[2]), rows.chute()
    deployment = rows.deployment(chute, server)
    sandbox.inject_api_error(r"/namespaces/chutes/services$", status=None, delay=2.0)
    try:
        with pytest.raises(ClusterUnavailableError, match="timed out"):
            await patient.list_chute_services()
        made = await patient.deploy_chute(
            chute, server, rows.gpus(fleet[2], 1), deployment, ko.LaunchParams()
        )
    finally:
        sandbox.clear_faults()
    dep_id = deployment.deployment_id
    assert sandbox.objects("services", "chutes", f"chutes/deployment-id={dep_id}")
    assert made.job_name in {j.name for j in await patient.list_chute_jobs()}
    assert await patient.undeploy(dep_id, wait_seconds=60)
