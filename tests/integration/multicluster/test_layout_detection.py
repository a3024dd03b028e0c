"""Layout detection against sandbox clusters over real HTTP: a control plane with a k3s node is
the multi-cluster layout, one without is the single layout, and a control plane that cannot be
read is an error naming GEPETTO_CLUSTER_LAYOUT, never a silent guess."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio import client

from gepetto_core.adapters.kube_connect import connect_api
from gepetto_core.adapters.kube_layout import Layout, LayoutCluster, detect_layout
from gepetto_core.errors import ClusterForbiddenError, ClusterUnavailableError
from gepetto_sandbox.cluster import FleetNode, SandboxCluster
from gepetto_sandbox.cluster.sandbox import kubeconfig_dict
from gepetto_sandbox.multicluster import CONTROL_PLANE_NAME, MultiClusterSandbox

from .conftest import FAST


@pytest_asyncio.fixture
async def control_plane(clusters: MultiClusterSandbox) -> AsyncIterator[client.ApiClient]:
    api = await connect_api(clusters.control_plane_kubeconfig(), context=CONTROL_PLANE_NAME)
    yield api
    await api.close()


@pytest_asyncio.fixture
async def single(fleet: list[FleetNode]) -> AsyncIterator[SandboxCluster]:
    """The older layout: every GPU server a node of one cluster (no k3s label)."""
    cluster = SandboxCluster(seed=3, nodes=fleet, timings=FAST)
    await cluster.start()
    yield cluster
    await cluster.stop()


async def test_a_k3s_control_plane_node_means_multi(control_plane: client.ApiClient) -> None:
    assert await detect_layout(control_plane) == "multi"


async def test_no_k3s_node_means_single(single: SandboxCluster) -> None:
    assert single.url is not None
    api = await connect_api(kubeconfig_dict(single.url))
    try:
        nodes = (await client.CoreV1Api(api).list_node()).items
        assert len(nodes) == 3  # GPU nodes there are, just none labelled k3s
        assert await detect_layout(api) == "single"
    finally:
        await api.close()


async def test_a_refused_control_plane_is_an_error_naming_the_setting(
    clusters: MultiClusterSandbox, control_plane: client.ApiClient
) -> None:
    await clusters.control_plane.stop_api()
    with pytest.raises(ClusterUnavailableError) as refused:
        await detect_layout(control_plane, request_timeout=5)
    message = str(refused.value)
    assert message.startswith("GEPETTO_CLUSTER_LAYOUT=auto cannot tell the cluster layout")
    assert "set GEPETTO_CLUSTER_LAYOUT=single or GEPETTO_CLUSTER_LAYOUT=multi" in message
    assert "Cannot connect to host 127.0.0.1" in message  # what actually went wrong
    await clusters.control_plane.start_api()


async def test_a_refused_credential_is_an_error_naming_the_setting(
    clusters: MultiClusterSandbox, control_plane: client.ApiClient
) -> None:
    clusters.control_plane.set_tokens({"someone-else"})
    with pytest.raises(ClusterForbiddenError) as forbidden:
        await detect_layout(control_plane, request_timeout=5)
    assert forbidden.value.status == 401
    assert "GEPETTO_CLUSTER_LAYOUT" in str(forbidden.value)
    assert clusters.control_plane_token not in str(forbidden.value)


class Built:
    """What LayoutCluster asked to build (the adapter itself is never called here)."""

    def __init__(self) -> None:
        self.layouts: list[Layout] = []

    def __call__(self, layout: Layout) -> Any:
        self.layouts.append(layout)
        return _Stub(layout)


class _Stub:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    async def read_fleet(self) -> str:
        return self.layout


async def test_layout_cluster_retries_a_failed_detection_and_keeps_a_good_one(
    clusters: MultiClusterSandbox, control_plane: client.ApiClient
) -> None:
    calls = 0

    async def detect() -> Layout:
        nonlocal calls
        calls += 1
        return await detect_layout(control_plane, request_timeout=5)

    built = Built()
    auto = LayoutCluster(detect, built)
    assert [h.state for h in auto.cluster_health()] == ["unknown"]  # not read: unknown
    await clusters.control_plane.stop_api()
    with pytest.raises(ClusterUnavailableError, match="GEPETTO_CLUSTER_LAYOUT"):
        await auto.read_fleet()
    assert auto.layout is None and built.layouts == []  # nothing guessed, nothing built
    await clusters.control_plane.start_api()
    assert await auto.read_fleet() == "multi"
    await clusters.control_plane.stop_api()  # detected once: no further look
    assert await auto.read_fleet() == "multi"
    assert (calls, built.layouts, auto.layout) == (2, ["multi"], "multi")
    await clusters.control_plane.start_api()
