"""Which cluster layout this miner runs (docs/multi-cluster.md#layout-detection).

`single`: every GPU server is a node of one cluster, reached through KUBECONFIG (or the pod's
service account). `multi`: every GPU server is its own k3s cluster, reached through the
kubeconfig the miner stored in `servers.kubeconfig`; the control plane is a cluster of its own.

The official miner tells them apart by the control-plane cluster's nodes: k3s labels its nodes
`node.kubernetes.io/instance-type=k3s`, the older microk8s layout does not. We look at the same
label, with two differences (docs/multi-cluster.md#what-we-do-differently):
- a failed look is an error that names GEPETTO_CLUSTER_LAYOUT, never a silent "single": guessing
  wrong sends every write of a multi-cluster fleet to the control plane;
- a failed look is not remembered: the next use looks again (`LayoutCluster`), and the process
  that fails at start exits, so its supervisor's restart back-off is the retry policy.
A successful look is kept for the life of the process: the two layouts keep different clients
and caches, so changing the layout of a fleet means restarting gepetto.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from kubernetes_asyncio import client

from gepetto_core.adapters.kube_errors import TRANSLATED, translate_error
from gepetto_core.adapters.kube_views import WORKER_LABEL
from gepetto_core.kube_objects import LaunchParams
from gepetto_core.models.cluster import (
    ChuteJobView,
    ClusterHealth,
    DeployedChute,
    FleetReading,
    LegacyDeploymentView,
    NodeDisk,
    NodeView,
    PodListing,
    ServiceView,
)
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server
from gepetto_core.services.ports import Cluster

log = logging.getLogger(__name__)

Layout = Literal["single", "multi"]
LAYOUT_SETTING = "GEPETTO_CLUSTER_LAYOUT"
# k3s puts this label on its own nodes; the official miner's chart runs its control plane on k3s
# exactly when it runs the multi-cluster layout.
K3S_NODE_SELECTOR = "node.kubernetes.io/instance-type=k3s"


async def detect_layout(api: client.ApiClient, *, request_timeout: float = 10.0) -> Layout:
    """`multi` iff a node of the cluster `api` reaches (the control plane) carries the k3s
    label. Raises the ClusterError subtype of the failure (unreachable, forbidden, ...) with a
    message naming GEPETTO_CLUSTER_LAYOUT, so the operator can set the layout instead; a
    ConfigError from loading the kubeconfig is raised as it is (it names KUBECONFIG)."""
    try:
        found = await client.CoreV1Api(api).list_node(
            label_selector=K3S_NODE_SELECTOR, limit=1, _request_timeout=request_timeout
        )
    except TRANSLATED as e:
        error = translate_error(e, "list the control plane's nodes")
        raise type(error)(
            f"{LAYOUT_SETTING}=auto cannot tell the cluster layout ({error}); "
            f"set {LAYOUT_SETTING}=single or {LAYOUT_SETTING}=multi",
            error.status,
        ) from e
    layout: Layout = "multi" if found.items else "single"
    log.info(
        "cluster layout: %s (%s)",
        layout,
        f"control-plane node {found.items[0].metadata.name} is k3s"
        if found.items
        else "no control-plane node is labelled " + K3S_NODE_SELECTOR,
    )
    return layout


class LayoutCluster:
    """The Cluster port for GEPETTO_CLUSTER_LAYOUT=auto: the first call detects the layout,
    builds that layout's adapter and hands every call to it from then on.

    Building this costs nothing and reads no setting, so a command that never touches the
    cluster never asks for a kubeconfig. A failed detection raises to the caller and is tried
    again on the next call; a successful one is final."""

    def __init__(
        self, detect: Callable[[], Awaitable[Layout]], build: Callable[[Layout], Cluster]
    ) -> None:
        self._detect = detect
        self._build = build
        self._cluster: Cluster | None = None
        self._resolving = asyncio.Lock()
        self.layout: Layout | None = None

    async def resolve(self) -> Cluster:
        """The layout's adapter, detecting the layout first if nobody has yet."""
        if self._cluster is None:
            async with self._resolving:
                if self._cluster is None:
                    layout = await self._detect()
                    self._cluster = self._build(layout)
                    self.layout = layout
        return self._cluster

    # -- the Cluster port, each call handed over -------------------------------------------------
    async def deploy_chute(
        self,
        chute: Chute,
        server: Server,
        gpus: Sequence[Gpu],
        deployment: Deployment,
        launch: LaunchParams,
    ) -> DeployedChute:
        return await (await self.resolve()).deploy_chute(chute, server, gpus, deployment, launch)

    async def undeploy(
        self, deployment_id: str, *, wait_seconds: float = 180.0, server_id: str | None = None
    ) -> bool:
        cluster = await self.resolve()
        return await cluster.undeploy(deployment_id, wait_seconds=wait_seconds, server_id=server_id)

    async def delete_preflight(self, deployment_id: str, server_id: str | None) -> str | None:
        return await (await self.resolve()).delete_preflight(deployment_id, server_id)

    async def read_fleet(self) -> FleetReading:
        return await (await self.resolve()).read_fleet()

    def cluster_health(self) -> list[ClusterHealth]:
        if self._cluster is None:  # nothing read yet: unknown, never an empty fleet
            return [
                ClusterHealth(
                    name="*", state="unknown", source="single", error="layout not detected yet"
                )
            ]
        return self._cluster.cluster_health()

    async def get_chute_job(self, deployment_id: str) -> ChuteJobView:
        return await (await self.resolve()).get_chute_job(deployment_id)

    async def read_pods(self, namespace: str | None = None) -> PodListing:
        return await (await self.resolve()).read_pods(namespace)

    async def node_disk(self, name: str) -> NodeDisk:
        return await (await self.resolve()).node_disk(name)

    async def list_nodes(self, label_selector: str | None = WORKER_LABEL) -> list[NodeView]:
        return await (await self.resolve()).list_nodes(label_selector)

    async def list_chute_jobs(self) -> list[ChuteJobView]:
        return await (await self.resolve()).list_chute_jobs()

    async def list_legacy_deployments(self) -> list[LegacyDeploymentView]:
        return await (await self.resolve()).list_legacy_deployments()

    async def list_chute_services(self) -> list[ServiceView]:
        return await (await self.resolve()).list_chute_services()

    async def pod_log_tail(self, deployment_id: str, lines: int = 10) -> list[str]:
        return await (await self.resolve()).pod_log_tail(deployment_id, lines)

    async def ensure_code_configmap(self, chute: Chute, *, replace: bool = False) -> str:
        return await (await self.resolve()).ensure_code_configmap(chute, replace=replace)

    async def delete_code_configmap(self, chute_id: str, version: str) -> None:
        await (await self.resolve()).delete_code_configmap(chute_id, version)
