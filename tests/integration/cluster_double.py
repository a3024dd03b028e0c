"""A Cluster-port double for the multi-cluster behaviour of the services: the real single-layout
`KubeCluster` over the cluster sandbox (every call goes to it over HTTP), posing as one cluster
per GPU server (each sandbox node is the cluster named after its server). A test marks clusters
unreachable (reads then leave their objects out and name them in `unknown`, as
`FleetCluster.read_fleet` does) and scripts the delete preflight's vetoes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gepetto_core.adapters.kube import KubeCluster
from gepetto_core.errors import ClusterUnavailableError
from gepetto_core.models.cluster import ClusterHealth, FleetReading, NodeDisk, NodeView, PodListing


class SplitCluster:
    def __init__(self, inner: KubeCluster, names: Sequence[str]) -> None:
        self._inner = inner
        self.names = list(names)
        self.down: dict[str, str] = {}  # cluster name -> why it cannot be read
        self.vetoes: dict[str, str] = {}  # deployment id -> the preflight's veto
        self.preflights: list[tuple[str, str | None]] = []  # (deployment id, server id) asked

    def __getattr__(self, name: str) -> Any:  # everything else: the real cluster
        return getattr(self._inner, name)

    async def read_fleet(self) -> FleetReading:
        reading = await self._inner.read_fleet()
        jobs = reading.jobs
        hidden: set[str] = set()
        if jobs is not None:
            hidden = {j.deployment_id or "" for j in jobs if j.node_name in self.down}
            jobs = [j for j in jobs if j.node_name not in self.down]
        legacy = reading.legacy
        if legacy is not None:
            legacy = [d for d in legacy if d.node_name not in self.down]
        services = reading.services
        if services is not None:
            services = [s for s in services if s.deployment_id not in hidden]
        nodes = reading.nodes
        if nodes is not None:
            nodes = [n for n in nodes if n.name not in self.down]
        return FleetReading(
            jobs=jobs,
            legacy=legacy,
            services=services,
            nodes=nodes,
            unknown=dict(self.down),
            health=self.cluster_health(),
        )

    async def list_nodes(self, label_selector: str | None = None) -> list[NodeView]:
        return [n for n in await self._inner.list_nodes(label_selector) if n.name not in self.down]

    async def read_pods(self, namespace: str | None = None) -> PodListing:
        pods = (await self._inner.read_pods(namespace)).pods
        return PodListing(
            pods=[p for p in pods if p.node_name not in self.down], unread=dict(self.down)
        )

    async def node_disk(self, name: str) -> NodeDisk:
        if name in self.down:
            raise ClusterUnavailableError(f"cluster {name}: {self.down[name]}")
        return await self._inner.node_disk(name)

    def cluster_health(self) -> list[ClusterHealth]:
        return [
            ClusterHealth(
                name=name,
                state="unreachable" if name in self.down else "reachable",
                source="direct",
                error=self.down.get(name),
                data_age_seconds=None if name in self.down else 2.0,
            )
            for name in self.names
        ]

    async def delete_preflight(self, deployment_id: str, server_id: str | None) -> str | None:
        self.preflights.append((deployment_id, server_id))
        return self.vetoes.get(deployment_id)


def split_runtime_cluster(rt: Any, names: Sequence[str]) -> SplitCluster:
    """Put a `SplitCluster` (clusters `names`) under the runtime's services: `Runtime` builds
    each part on first use, so the parts that hold the cluster are built again around it."""
    double = SplitCluster(rt.cluster, names)
    rt.__dict__["cluster"] = double
    for part in ("deployer", "reconciler", "handlers"):
        rt.__dict__.pop(part, None)
    return double
